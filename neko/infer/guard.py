"""The guard of ``auto`` mode: keep a generated correction only when it stays close to the hypotheses.

A generative corrector can hallucinate (rewrite, loop, stop early). The guard measures the normalised word
edit distance from the generated text to the closest hypothesis and the length ratio between them; outside
the thresholds it returns the best (first) hypothesis instead and flags the fallback.

A correction can also be wrong while staying close to the hypotheses: a small model may prefer the second
hypothesis where the recogniser's first was right. The margin check asks the model itself: an output that
differs from the first hypothesis is kept only when the model scores it at least ``min_margin`` nats
(sequence log-probability given the prompt) above the first hypothesis. ``calibrate_guard`` picks the edit
and margin thresholds that minimise the task's error on dev data, from a grid that includes "always fall
back", so the calibrated guard is never worse than the first hypothesis on that dev data;
``harmful_edit_rate`` counts the damage a corrector does to inputs that were already right.

Texts are compared after the task's own normaliser (``neko.metrics.normalizers``, the one its scores use:
``hyporadise`` for ASR, lowercase without punctuation; ``none`` for MT, OCR and GEC, where casing and
punctuation are part of the correction), then split into words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

from rapidfuzz.distance import Levenshtein

from neko.errors import ConfigError, unknown_keys
from neko.metrics.normalizers import get_normalizer
from neko.tasks import get_task

# Candidate margins (nats) of calibration: from "no check" to "always fall back".
MARGIN_GRID = (float("-inf"), 0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, float("inf"))


@dataclass
class GuardConfig:
    """Thresholds of the guard.

    Attributes:
        max_edit_rate: largest accepted word edit distance to the closest hypothesis, divided by that
            hypothesis's length in words.
        min_length_ratio, max_length_ratio: accepted range of (output words / closest hypothesis words).
        min_margin: an output whose words differ from the first hypothesis's is kept only when its score
            exceeds the first hypothesis's by at least this much (nats); ``-inf`` (default) skips the check
            and the extra scoring pass, ``inf`` always returns the first hypothesis.
    """

    max_edit_rate: float = 0.5
    min_length_ratio: float = 0.5
    max_length_ratio: float = 2.0
    min_margin: float = float("-inf")

    @property
    def needs_margin(self) -> bool:
        """True when the margin check is on (any output that changes the first hypothesis is checked)."""
        return self.min_margin != float("-inf")

    @property
    def needs_scores(self) -> bool:
        """True when the check needs the model's scores: a finite ``min_margin``."""
        return self.needs_margin and self.min_margin != float("inf")

    @classmethod
    def from_dict(cls, data: dict, where: str = "guard") -> GuardConfig:
        """The thresholds of a dict (e.g. the ``guard`` key of ``neko_config.json``); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or unknown_keys(data, known):
            bad = unknown_keys(data, known) if isinstance(data, dict) else type(data).__name__
            raise ConfigError(
                f"{where}: invalid guard settings {bad}; valid keys: {', '.join(sorted(known))}"
            )
        return cls(**{k: float(v) for k, v in data.items()})


@dataclass
class GuardVerdict:
    """The guard's decision on one output: accepted or not, and the figures it was based on."""

    accepted: bool
    closest: int
    edit_rate: float
    length_ratio: float


def words(text: str, task: str = "asr") -> list[str]:
    """The words of ``text`` after the task's default normaliser (ASR: lowercase, no punctuation)."""
    return get_normalizer(get_task(task).normalizer)(text).split()


def judge(output: str, hypotheses: Sequence[str], config: GuardConfig, task: str = "asr") -> GuardVerdict:
    """Compare ``output`` with each hypothesis; accepted when the closest one is within the thresholds."""
    if not hypotheses:
        raise ValueError("the guard needs at least one hypothesis")
    out = words(output, task)
    best = (float("inf"), 0, 0)
    for i, hyp in enumerate(hypotheses):
        ref = words(hyp, task)
        rate = Levenshtein.distance(out, ref) / max(len(ref), 1)
        if rate < best[0]:
            best = (rate, i, len(ref))
        if rate == 0:
            break
    rate, closest, n_ref = best
    # Two empty texts agree; an empty hypothesis against a non-empty output does not.
    ratio = len(out) / n_ref if n_ref else (1.0 if not out else float("inf"))
    accepted = rate <= config.max_edit_rate and config.min_length_ratio <= ratio <= config.max_length_ratio
    return GuardVerdict(accepted=accepted, closest=closest, edit_rate=rate, length_ratio=ratio)


def changes_first(output: str, hypotheses: Sequence[str], task: str = "asr") -> bool:
    """True when ``output``'s normalised words differ from those of the first hypothesis."""
    return words(output, task) != words(hypotheses[0], task)


def guard_output(
    output: str,
    hypotheses: Sequence[str],
    config: GuardConfig,
    task: str = "asr",
    margin: float | None = None,
) -> tuple[str, bool]:
    """(text, fallback): the output when the guard accepts it, else the first (best) hypothesis.

    An accepted output whose normalised words equal a hypothesis's is that hypothesis, as written.

    ``margin`` is score(output) - score(first hypothesis) under the model; it is needed only when
    ``config.needs_margin`` and the output changes the first hypothesis (None there is an error).
    """
    verdict = judge(output, hypotheses, config, task)
    if not verdict.accepted:
        return hypotheses[0], True
    if config.needs_margin and changes_first(output, hypotheses, task):
        if config.min_margin == float("inf"):
            return hypotheses[0], True  # no margin is enough: no need to have scored it
        if margin is None:
            raise ValueError("the guard's margin check needs the output's score margin")
        if margin < config.min_margin:
            return hypotheses[0], True
    if verdict.edit_rate == 0:
        # The words are a hypothesis's: return it as written. The guard compares normalised words (ASR:
        # no case, no punctuation), so it cannot vouch for a change of case or punctuation alone.
        return hypotheses[verdict.closest], False
    return output, False


def corpus_wer(outputs: Sequence[str], references: Sequence[str], task: str = "asr") -> float:
    """Corpus WER (``neko.metrics.wer``: total edits / total reference words) after the task's normaliser."""
    from neko.metrics.wer import corpus_wer as wer

    refs = [" ".join(words(r, task)) for r in references]
    hyps = [" ".join(words(o, task)) for o in outputs]
    return wer(refs, hyps).rate


def guard_outputs(
    outputs: Sequence[str],
    hypotheses: Sequence[Sequence[str]],
    margins: Sequence[float | None],
    config: GuardConfig,
    task: str = "asr",
) -> list[tuple[str, bool]]:
    """``guard_output`` of each output (a missing margin counts as 0.0): ``(text, fell back)`` per record."""
    return [
        guard_output(o, h, config, task, m if m is not None else 0.0)
        for o, h, m in zip(outputs, hypotheses, margins, strict=True)
    ]


def calibrate_guard(
    outputs: Sequence[str],
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[str],
    *,
    grid: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, float("inf")),
    margins: Sequence[float | None] | None = None,
    margin_grid: Sequence[float] = MARGIN_GRID,
    base: GuardConfig | None = None,
    wer: Callable[[Sequence[str], Sequence[str]], float] | None = None,
    task: str = "asr",
) -> tuple[GuardConfig, list[dict[str, float]]]:
    """Pick the ``max_edit_rate`` of ``grid`` (and ``min_margin`` of ``margin_grid``) with the lowest dev error.

    Args:
        outputs: generated corrections of the dev records.
        hypotheses: their n-best lists (best first), aligned with ``outputs``.
        references: their references, aligned with ``outputs``.
        grid: candidate edit thresholds; ``inf`` means no edit-distance check (length bounds still apply).
        margins: score(output) - score(first hypothesis) of each output (None where the output does not
            change the first hypothesis). Given, ``margin_grid`` is searched too; else the margin check
            stays as in ``base``.
        margin_grid: candidate ``min_margin`` values; ``inf`` (always fall back) is always added.
        base: the other thresholds (length ratio bounds); default ``GuardConfig()``.
        wer: corpus error ``(outputs, references) -> error`` (lower is better); default ``corpus_wer``
            after the task's normaliser.
        task: whose normaliser the records use.

    Returns:
        The chosen config, and one row per candidate: ``{max_edit_rate, min_margin, wer, fallback_rate}``.
        Ties go to the more cautious guard (larger margin, then smaller edit threshold).
    """
    if not (len(outputs) == len(hypotheses) == len(references)) or not outputs:
        raise ValueError("calibrate_guard needs the same non-zero number of outputs, lists and references")
    base = base or GuardConfig()
    wer = wer or (lambda outs, refs: corpus_wer(outs, refs, task))
    if margins is None:
        margin_values: Sequence[float] = [base.min_margin]
        margins = [None] * len(outputs)
    else:
        if len(margins) != len(outputs):
            raise ValueError("calibrate_guard needs one margin per output")
        margin_values = sorted(set(margin_grid) | {float("inf")})
    rows = []
    for min_margin in margin_values:
        for threshold in grid:
            config = replace(base, max_edit_rate=threshold, min_margin=min_margin)
            guarded = guard_outputs(outputs, hypotheses, margins, config, task)
            rows.append(
                {
                    "max_edit_rate": threshold,
                    "min_margin": min_margin,
                    "wer": wer([g[0] for g in guarded], references),
                    "fallback_rate": sum(g[1] for g in guarded) / len(guarded),
                }
            )
    best = min(rows, key=lambda row: (row["wer"], -row["min_margin"], row["max_edit_rate"]))
    return replace(base, max_edit_rate=best["max_edit_rate"], min_margin=best["min_margin"]), rows


def harmful_edit_rate(
    outputs: Sequence[str],
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[str],
    task: str = "asr",
) -> float:
    """Share of the utterances whose 1-best was right that the corrector made wrong.

    "Right" compares the guard's normalised words. The denominator is the number of utterances whose 1-best
    equals its reference; 0.0 when there are none.
    """
    right = harmed = 0
    for out, hyps, ref in zip(outputs, hypotheses, references, strict=True):
        if hyps and words(hyps[0], task) == words(ref, task):
            right += 1
            harmed += words(out, task) != words(ref, task)
    return harmed / right if right else 0.0

"""The guard of ``auto`` mode: keep a generated correction only when it stays close to the hypotheses.

A generative corrector can hallucinate (rewrite, loop, stop early). The guard measures the normalised word
edit distance from the generated text to the closest hypothesis and the length ratio between them; outside
the thresholds it returns the best (first) hypothesis instead and flags the fallback. ``calibrate_guard``
picks the edit threshold that minimises corpus WER on dev data; ``harmful_edit_rate`` counts the damage a
corrector does to inputs that were already right.

Texts are compared after the task's own normaliser (``neko.metrics.normalizers``, the one its scores use:
``hyporadise`` for ASR, lowercase without punctuation; ``none`` for MT, OCR and GEC, where casing and
punctuation are part of the correction), then split into words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

from rapidfuzz.distance import Levenshtein

from neko.errors import ConfigError
from neko.metrics.normalizers import get_normalizer
from neko.tasks import get_task


@dataclass
class GuardConfig:
    """Thresholds of the guard.

    Attributes:
        max_edit_rate: largest accepted word edit distance to the closest hypothesis, divided by that
            hypothesis's length in words.
        min_length_ratio, max_length_ratio: accepted range of (output words / closest hypothesis words).
    """

    max_edit_rate: float = 0.5
    min_length_ratio: float = 0.5
    max_length_ratio: float = 2.0

    @classmethod
    def from_dict(cls, data: dict, where: str = "guard") -> GuardConfig:
        """The thresholds of a dict (e.g. the ``guard`` key of ``neko_config.json``); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) - known:
            bad = sorted(set(data) - known) if isinstance(data, dict) else type(data).__name__
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


def guard_output(
    output: str, hypotheses: Sequence[str], config: GuardConfig, task: str = "asr"
) -> tuple[str, bool]:
    """(text, fallback): the output when the guard accepts it, else the first (best) hypothesis."""
    if judge(output, hypotheses, config, task).accepted:
        return output, False
    return hypotheses[0], True


def corpus_wer(outputs: Sequence[str], references: Sequence[str], task: str = "asr") -> float:
    """Corpus WER (``neko.metrics.wer``: total edits / total reference words) after the task's normaliser."""
    from neko.metrics.wer import corpus_wer as wer

    refs = [" ".join(words(r, task)) for r in references]
    hyps = [" ".join(words(o, task)) for o in outputs]
    return wer(refs, hyps).rate


def calibrate_guard(
    outputs: Sequence[str],
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[str],
    *,
    grid: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, float("inf")),
    base: GuardConfig | None = None,
    wer: Callable[[Sequence[str], Sequence[str]], float] | None = None,
    task: str = "asr",
) -> tuple[GuardConfig, list[dict[str, float]]]:
    """Pick the ``max_edit_rate`` of ``grid`` whose guarded outputs have the lowest dev WER.

    Args:
        outputs: generated corrections of the dev records.
        hypotheses: their n-best lists (best first), aligned with ``outputs``.
        references: their references, aligned with ``outputs``.
        grid: candidate thresholds; ``inf`` means no edit-distance check (length bounds still apply).
        base: the other thresholds (length ratio bounds); default ``GuardConfig()``.
        wer: corpus scorer ``(outputs, references) -> WER``; default ``corpus_wer`` after the task's
            normaliser.
        task: whose prompt and normaliser the records use.

    Returns:
        The chosen config, and one row per threshold: ``{max_edit_rate, wer, fallback_rate}``. Ties go to
        the smaller threshold (the more cautious guard).
    """
    if not (len(outputs) == len(hypotheses) == len(references)) or not outputs:
        raise ValueError("calibrate_guard needs the same non-zero number of outputs, lists and references")
    base = base or GuardConfig()
    wer = wer or (lambda outs, refs: corpus_wer(outs, refs, task))
    rows = []
    for threshold in grid:
        config = replace(base, max_edit_rate=threshold)
        guarded = [guard_output(o, h, config, task) for o, h in zip(outputs, hypotheses, strict=True)]
        rows.append(
            {
                "max_edit_rate": threshold,
                "wer": wer([g[0] for g in guarded], references),
                "fallback_rate": sum(g[1] for g in guarded) / len(guarded),
            }
        )
    best = min(rows, key=lambda row: (row["wer"], row["max_edit_rate"]))
    return replace(base, max_edit_rate=best["max_edit_rate"]), rows


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

"""The guard of ``auto`` mode: keep a generated correction only when it stays close to the hypotheses.

A generative corrector can hallucinate (rewrite, loop, stop early). The guard measures the normalised word
edit distance from the generated text to the closest hypothesis and the length ratio between them; outside
the thresholds it returns the best (first) hypothesis instead and flags the fallback. ``calibrate_guard``
picks the edit threshold that minimises corpus WER on dev data; ``harmful_edit_rate`` counts the damage a
corrector does to inputs that were already right.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rapidfuzz.distance import Levenshtein

_PUNCT = re.compile(r"[^\w\s']")


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


@dataclass
class GuardVerdict:
    """The guard's decision on one output: accepted or not, and the figures it was based on."""

    accepted: bool
    closest: int
    edit_rate: float
    length_ratio: float


def words(text: str) -> list[str]:
    """Lowercased words without punctuation: the guard compares content, not casing or commas."""
    return _PUNCT.sub(" ", text.lower()).split()


def judge(output: str, hypotheses: Sequence[str], config: GuardConfig) -> GuardVerdict:
    """Compare ``output`` with each hypothesis; accepted when the closest one is within the thresholds."""
    if not hypotheses:
        raise ValueError("the guard needs at least one hypothesis")
    out = words(output)
    best = (float("inf"), 0, 0)
    for i, hyp in enumerate(hypotheses):
        ref = words(hyp)
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


def guard_output(output: str, hypotheses: Sequence[str], config: GuardConfig) -> tuple[str, bool]:
    """(text, fallback): the output when the guard accepts it, else the first (best) hypothesis."""
    if judge(output, hypotheses, config).accepted:
        return output, False
    return hypotheses[0], True


def corpus_wer(outputs: Sequence[str], references: Sequence[str]) -> float:
    """Corpus WER (jiwer: total edits / total reference words) on the guard's word normalisation."""
    import jiwer

    refs = [" ".join(words(r)) for r in references]
    hyps = [" ".join(words(o)) for o in outputs]
    return float(jiwer.wer(refs, hyps))


def calibrate_guard(
    outputs: Sequence[str],
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[str],
    *,
    grid: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, float("inf")),
    base: GuardConfig | None = None,
    wer: Callable[[Sequence[str], Sequence[str]], float] = corpus_wer,
) -> tuple[GuardConfig, list[dict[str, float]]]:
    """Pick the ``max_edit_rate`` of ``grid`` whose guarded outputs have the lowest dev WER.

    Args:
        outputs: generated corrections of the dev records.
        hypotheses: their n-best lists (best first), aligned with ``outputs``.
        references: their references, aligned with ``outputs``.
        grid: candidate thresholds; ``inf`` means no edit-distance check (length bounds still apply).
        base: the other thresholds (length ratio bounds); default ``GuardConfig()``.
        wer: corpus scorer ``(outputs, references) -> WER``; default jiwer on the guard's normalisation.

    Returns:
        The chosen config, and one row per threshold: ``{max_edit_rate, wer, fallback_rate}``. Ties go to
        the smaller threshold (the more cautious guard).
    """
    if not (len(outputs) == len(hypotheses) == len(references)) or not outputs:
        raise ValueError("calibrate_guard needs the same non-zero number of outputs, lists and references")
    base = base or GuardConfig()
    rows = []
    for threshold in grid:
        config = replace(base, max_edit_rate=threshold)
        guarded = [guard_output(o, h, config) for o, h in zip(outputs, hypotheses, strict=True)]
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
    outputs: Sequence[str], hypotheses: Sequence[Sequence[str]], references: Sequence[str]
) -> float:
    """Share of the utterances whose 1-best was right that the corrector made wrong.

    "Right" compares the guard's normalised words. The denominator is the number of utterances whose 1-best
    equals its reference; 0.0 when there are none.
    """
    right = harmed = 0
    for out, hyps, ref in zip(outputs, hypotheses, references, strict=True):
        if hyps and words(hyps[0]) == words(ref):
            right += 1
            harmed += words(out) != words(ref)
    return harmed / right if right else 0.0

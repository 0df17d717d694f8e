"""Corpus BLEU and chrF with sacrebleu, against one or several references per segment.

Scores are on sacrebleu's 0-100 scale and come with sacrebleu's signature string (tokeniser, number of
references, smoothing, version), which every result row records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF


@dataclass(frozen=True)
class CorpusScore:
    """A sacrebleu corpus score (0-100) and the signature that says how it was computed."""

    score: float
    signature: str


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Turn per-segment reference lists into sacrebleu's per-reference streams.

    Segments with fewer references are padded with None, which sacrebleu reads as "no reference here"
    (its signature then says ``nrefs:var``). A segment without any reference raises: it cannot be scored.
    """
    if not references:
        raise ValueError("cannot score an empty corpus")
    width = max(len(refs) for refs in references)
    for index, refs in enumerate(references):
        if not refs:
            raise ValueError(f"segment {index} has no reference")
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


def _check(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]], **options) -> CorpusScore:
    """Corpus BLEU (sacrebleu defaults: 13a tokeniser, exponential smoothing) of ``hypotheses``.

    ``references[i]`` holds every reference of segment i; ``options`` go to ``sacrebleu.metrics.BLEU``.
    """
    _check(hypotheses, references)
    metric = BLEU(**options)
    score = metric.corpus_score(list(hypotheses), reference_streams(references))
    return CorpusScore(score=score.score, signature=str(metric.get_signature()))


def corpus_chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]], **options) -> CorpusScore:
    """Corpus chrF (sacrebleu defaults: character 6-grams, beta 2) of ``hypotheses``."""
    _check(hypotheses, references)
    metric = CHRF(**options)
    score = metric.corpus_score(list(hypotheses), reference_streams(references))
    return CorpusScore(score=score.score, signature=str(metric.get_signature()))

"""Corpus word and character error rates with jiwer.

The rate is the total number of edits over the whole corpus divided by the total number of reference units
(words or characters), never a mean of per-utterance rates. No utterance is dropped: an empty reference
counts the insertions of its hypothesis (and adds no reference units). Lists of different lengths raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jiwer


@dataclass(frozen=True)
class ErrorRate:
    """A corpus error rate and the counts it was computed from.

    Attributes:
        rate: (substitutions + deletions + insertions) / reference_units, a fraction (0.083, not 8.3).
        substitutions, deletions, insertions, hits: summed over the corpus.
        reference_units: total reference words (WER) or characters (CER).
        utterances: number of reference/hypothesis pairs scored.
    """

    rate: float
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    reference_units: int
    utterances: int

    @property
    def errors(self) -> int:
        """Total edits: substitutions + deletions + insertions."""
        return self.substitutions + self.deletions + self.insertions


def _check(references: Sequence[str], hypotheses: Sequence[str]) -> None:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("cannot score an empty corpus")
    for name, texts in (("reference", references), ("hypothesis", hypotheses)):
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"{name} {index} is {type(text).__name__}, not str")


def _rate(output, utterances: int, unit: str) -> ErrorRate:
    reference_units = output.hits + output.substitutions + output.deletions
    errors = output.substitutions + output.deletions + output.insertions
    if reference_units == 0:
        # An error rate over nothing is undefined; returning 0 or inf would hide a broken reference file.
        raise ValueError(f"the references hold no {unit}s: the error rate is undefined")
    return ErrorRate(
        rate=errors / reference_units,
        substitutions=output.substitutions,
        deletions=output.deletions,
        insertions=output.insertions,
        hits=output.hits,
        reference_units=reference_units,
        utterances=utterances,
    )


def split_words(texts: list[str]) -> list[list[str]]:
    """jiwer transform: words split on any whitespace (``str.split``).

    Same words as jiwer's default (collapse spaces, strip, split on " ") for space-separated text, and ~10x
    faster on large corpora; it also splits on tabs and newlines, where jiwer's default would glue words.
    """
    return [text.split() for text in texts]


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRate:
    """Corpus WER: words split on whitespace, one Levenshtein alignment per pair, counts summed."""
    _check(references, hypotheses)
    output = jiwer.process_words(
        list(references), list(hypotheses), reference_transform=split_words, hypothesis_transform=split_words
    )
    return _rate(output, len(references), "word")


def corpus_cer(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRate:
    """Corpus CER over characters, spaces included (runs of spaces collapsed, ends stripped: jiwer's default)."""
    _check(references, hypotheses)
    return _rate(jiwer.process_characters(list(references), list(hypotheses)), len(references), "character")

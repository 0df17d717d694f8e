"""Minimum Bayes risk selection among MT candidates with chrF as the utility.

For each segment the chosen candidate is the one with the highest mean sentence chrF (sacrebleu, default
settings) against every OTHER candidate of the list, duplicates included (a translation several systems
produced is a likelier one). Ties go to the earlier candidate. With one candidate it is chosen.

Speed: sacrebleu's ``sentence_score`` re-extracts the n-grams of both sides on every call; a WMT segment with
15 systems needs 210 comparisons, so the n-grams of each distinct candidate are extracted once and compared
with sacrebleu's own statistics and F-score routines (sacrebleu is pinned; a test checks that the result
equals ``CHRF().sentence_score``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import CHRF


def pairwise_chrf(candidates: Sequence[str], metric: CHRF | None = None) -> list[list[float]]:
    """``matrix[i][k]``: sentence chrF of candidate i scored against candidate k as the reference."""
    metric = metric or CHRF()
    distinct = sorted(set(candidates))
    where = {text: index for index, text in enumerate(distinct)}
    # n-gram counters of each distinct text, the same extraction sacrebleu applies to hypotheses and references.
    ngrams = metric._extract_reference_info([metric._preprocess_segment(t) for t in distinct])["ref_ngrams"]
    cache: dict[tuple[int, int], float] = {}

    def score(a: int, b: int) -> float:
        if (a, b) not in cache:
            stats: list[int] = []
            for hyp, ref in zip(ngrams[a], ngrams[b], strict=True):
                stats.extend(metric._get_match_statistics(hyp, ref))
            cache[(a, b)] = metric._compute_f_score(stats)
        return cache[(a, b)]

    ids = [where[text] for text in candidates]
    return [[score(a, b) for b in ids] for a in ids]


def consensus(candidates: Sequence[str], metric: CHRF | None = None) -> list[float]:
    """Each candidate's mean chrF against every OTHER candidate (duplicates included); at least 2 candidates."""
    matrix = pairwise_chrf(candidates, metric)
    return [(sum(row) - row[i]) / (len(row) - 1) for i, row in enumerate(matrix)]


def mbr_select(candidates: Sequence[str], metric: CHRF | None = None) -> int:
    """Index of the candidate with the highest mean chrF against the other candidates (earliest on ties)."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    if len(candidates) == 1:
        return 0
    means = consensus(candidates, metric)
    return means.index(max(means))

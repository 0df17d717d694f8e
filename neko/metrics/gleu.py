"""GLEU for grammatical error correction (Napoles et al. 2015, updated 2016: "GLEU without tuning").

This is the multi-reference GLEU of the JFLEG repository's ``eval/gleu.py``, re-written (not copied) for
Python 3 and checked against hand-computed examples:

- sentences are split on whitespace (JFLEG is tokenised already); n-grams of order 1..4;
- for a hypothesis h, its source s and ONE reference r, the n-gram numerator is
  ``max(0, |h & r| - |h & (s \\ r)|)`` where ``&`` is the clipped multiset intersection and ``s \\ r`` the
  source n-grams whose type does not occur in r at all (n-grams the correction should have changed: a
  hypothesis that keeps them is penalised); the denominator is ``max(0, len(h) + 1 - n)``;
- statistics (hypothesis length, reference length, numerators, denominators) are summed over the corpus, and
  ``GLEU = exp(min(0, 1 - r / c) + mean_n log(num_n / den_n))``: a BLEU-like brevity penalty and geometric mean;
  0 when any summed statistic is 0.

With several references the script draws ONE reference per sentence at random and repeats the corpus score for
500 draws, reporting their mean. We keep exactly that procedure, deterministic as in the script: draw j uses
a generator seeded with ``j * 101`` and Python 2's ``randint`` arithmetic (the published figures were computed
under Python 2; Python 3's ``randint`` would draw other references from the same seeds), so the JFLEG
leaderboard's SOURCE row (dev 38.21, test 40.54) is reproduced. The score is returned on a 0-100 scale, like
the JFLEG leaderboard and sacrebleu.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence

import numpy as np

ORDER = 4
ITERATIONS = 500
SEED_STEP = 101


def ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    """The multiset of n-grams (tuples) of order ``n`` of a token list."""
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) + 1 - n))


def sentence_stats(hypothesis: Sequence[str], source: Sequence[str], reference: Sequence[str]) -> list[int]:
    """GLEU statistics of one tokenised sentence against one reference.

    Returns ``[c, r, num_1, den_1, ..., num_4, den_4]`` with c and r the hypothesis and reference lengths.
    """
    stats = [len(hypothesis), len(reference)]
    for n in range(1, ORDER + 1):
        h = ngram_counts(hypothesis, n)
        s = ngram_counts(source, n)
        r = ngram_counts(reference, n)
        # Source n-grams absent from the reference: those a good correction removes.
        s_not_r = Counter({gram: count for gram, count in s.items() if gram not in r})
        matched = sum((h & r).values()) - sum((h & s_not_r).values())
        stats += [max(matched, 0), max(len(hypothesis) + 1 - n, 0)]
    return stats


def gleu_from_stats(stats: Sequence[int]) -> float:
    """GLEU (0-1) of summed statistics; 0 when any of them is 0, as in the reference script."""
    if any(value == 0 for value in stats):
        return 0.0
    c, r = stats[0], stats[1]
    log_precision = (
        sum(math.log(num / den) for num, den in zip(stats[2::2], stats[3::2], strict=True)) / ORDER
    )
    return math.exp(min(0.0, 1.0 - r / c) + log_precision)


def corpus_gleu(
    hypotheses: Sequence[str],
    sources: Sequence[str],
    references: Sequence[Sequence[str]],
    iterations: int = ITERATIONS,
) -> float:
    """Corpus GLEU on a 0-100 scale: the mean over ``iterations`` seeded draws of one reference per sentence.

    ``references[i]`` lists the references of sentence i; sentences may have different numbers of references
    (a draw picks uniformly among that sentence's own). With a single reference everywhere every draw is the
    same and the result is the plain corpus GLEU.
    """
    if not (len(hypotheses) == len(sources) == len(references)):
        raise ValueError(
            f"{len(hypotheses)} hypotheses, {len(sources)} sources, {len(references)} reference lists"
        )
    if not hypotheses:
        raise ValueError("cannot score an empty corpus")
    for index, refs in enumerate(references):
        if not refs:
            raise ValueError(f"sentence {index} has no reference")
    # The statistics of each sentence against each of its references, computed once and reused by every
    # draw; padded to the largest number of references (a draw never picks the padding).
    width = max(len(refs) for refs in references)
    table = np.zeros((len(hypotheses), width, 2 + 2 * ORDER), dtype=np.int64)
    for i, (h, s, refs) in enumerate(zip(hypotheses, sources, references, strict=True)):
        for k, r in enumerate(refs):
            table[i, k] = sentence_stats(h.split(), s.split(), r.split())
    counts = [len(refs) for refs in references]
    if width == 1:
        iterations = 1
    rows = np.arange(len(hypotheses))
    scores = []
    for j in range(iterations):
        draw = random.Random(j * SEED_STEP)
        chosen = [_python2_randint(draw, n) for n in counts]
        totals = table[rows, chosen].sum(axis=0)
        scores.append(gleu_from_stats(totals.tolist()))
    return 100.0 * sum(scores) / len(scores)


def _python2_randint(draw: random.Random, n: int) -> int:
    """``randint(0, n - 1)`` as Python 2 computed it, the interpreter behind the published JFLEG figures.

    Python 3's ``randint`` draws bits with rejection and picks other references for the same seed; Python
    2 scaled one float. Seeding an int is the same in both, so this reproduces the script's draws exactly.
    """
    return int(draw.random() * n)

"""Word confusion networks built from an n-best list by incremental ROVER-style alignment.

Definition used here (Fiscus 1997, ROVER, with its incremental alignment): the network is a sequence of
slots; each slot holds the words that the hypotheses put there, with a vote weight per word, and the empty
word ``EPS`` for the hypotheses that put nothing there. The 1-best hypothesis gives the first slots, one per
word. Each further hypothesis, in list order, is aligned to the current network by edit distance in which

- putting a word in a slot costs 0 if some earlier hypothesis put that word there, else 1 (substitution);
- passing a slot without a word costs 0 if the slot already holds EPS, else 1 (deletion);
- a word between two slots costs 1 and opens a new slot where every earlier hypothesis has EPS (insertion);

and ties prefer, in order, putting a word in a slot, passing a slot, opening a slot. Every hypothesis
therefore reads back exactly along its own path (``ConfusionNetwork.paths``). Identical hypotheses share
an alignment: only distinct strings are aligned, which keeps 5-best lists with repeats cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

EPS = ""

# Moves of an alignment of words onto slots (see ``align_to_slots``).
WORD, PASS, OPEN = 0, 1, 2


@dataclass
class ConfusionNetwork:
    """Slots of weighted words, and each hypothesis's path through them.

    Attributes:
        slots: per slot, word -> summed weight of the hypotheses that put it there (``EPS`` for none).
        paths: per hypothesis (input order), the word it puts in each slot (``EPS`` where it has none).
        weights: the vote weight of each hypothesis.
    """

    slots: list[dict[str, float]]
    paths: list[list[str]]
    weights: list[float]

    def hypothesis(self, index: int) -> str:
        """The words of hypothesis ``index`` read back along its path (its original text, spaces collapsed)."""
        return " ".join(word for word in self.paths[index] if word != EPS)

    def __len__(self) -> int:
        return len(self.slots)


def softmax_weights(scores: Sequence[float] | None, count: int) -> list[float]:
    """Vote weights: the softmax of the recogniser scores (higher is better), or 1 each when there are none.

    Scores that are not all finite (NaN, inf: the readers warn about them) count as none: one bad score
    would turn every weight into NaN.
    """
    if scores is not None and len(scores) != count:
        raise ValueError(f"{len(scores)} scores for {count} hypotheses")
    if scores is None or not all(math.isfinite(s) for s in scores):
        return [1.0] * count
    top = max(scores)
    exps = [math.exp(score - top) for score in scores]
    total = sum(exps)
    return [value / total for value in exps]


def align_to_slots(words: Sequence[str], slots: Sequence[dict[str, float]]) -> tuple[list[int], int]:
    """The cheapest moves placing ``words`` onto ``slots``, and their cost (costs in the module docstring).

    Moves are ``WORD`` (the next word goes into the next slot), ``PASS`` (the next slot gets no word) and
    ``OPEN`` (the next word goes between slots). The compositional oracle reuses this with the reference as
    ``words``: the costs are the same.
    """
    # A shared first word in a slot without EPS can always be matched first without loss (exchange argument:
    # any alignment that does otherwise pays a PASS of 1 or an OPEN of 1 that the match saves), and likewise
    # at the end; n-best lists differ in a few words, so trimming leaves a small table for the loop below.
    n, m = len(slots), len(words)
    head = 0
    while head < min(n, m) and EPS not in slots[head] and words[head] in slots[head]:
        head += 1
    tail = 0
    while (
        tail < min(n, m) - head
        and EPS not in slots[n - 1 - tail]
        and words[m - 1 - tail] in slots[n - 1 - tail]
    ):
        tail += 1
    mid_slots, mid_words = slots[head : n - tail], words[head : m - tail]
    middle, total = _align_table(mid_words, mid_slots)
    return [WORD] * head + middle + [WORD] * tail, total


def _align_table(words: Sequence[str], slots: Sequence[dict[str, float]]) -> tuple[list[int], int]:
    n = len(slots)
    pass_cost = [0 if EPS in slot else 1 for slot in slots]
    # cost[i][j]: first i slots and first j words placed. Only costs are stored (this loop is the hot spot of
    # the baselines); the backtrace re-derives each move with the same preference order.
    cost = [list(range(len(words) + 1))]
    for i in range(n):
        slot, skip, above = slots[i], pass_cost[i], cost[i]
        left = above[0] + skip
        row = [left]
        for j, word in enumerate(words):
            best = above[j] if word in slot else above[j] + 1
            passed = above[j + 1] + skip
            if passed < best:
                best = passed
            if left + 1 < best:
                best = left + 1
            row.append(best)
            left = best
        cost.append(row)
    steps = []
    i, j = n, len(words)
    while i > 0 or j > 0:
        here = cost[i][j]
        if i > 0 and j > 0 and here == cost[i - 1][j - 1] + (0 if words[j - 1] in slots[i - 1] else 1):
            steps.append(WORD)
            i, j = i - 1, j - 1
        elif i > 0 and here == cost[i - 1][j] + pass_cost[i - 1]:
            steps.append(PASS)
            i -= 1
        else:
            steps.append(OPEN)
            j -= 1
    steps.reverse()
    return steps, cost[n][len(words)]


def build_confusion_network(
    hypotheses: Sequence[str], weights: Sequence[float] | None = None
) -> ConfusionNetwork:
    """Align ``hypotheses`` (best first) into a confusion network; ``weights`` default to 1 per hypothesis."""
    if not hypotheses:
        raise ValueError("cannot build a confusion network from no hypotheses")
    weights = [1.0] * len(hypotheses) if weights is None else [float(w) for w in weights]
    if len(weights) != len(hypotheses):
        raise ValueError(f"{len(weights)} weights for {len(hypotheses)} hypotheses")
    first = hypotheses[0].split()
    slots: list[dict[str, float]] = [{word: weights[0]} for word in first]
    paths: list[list[str]] = [list(first)]
    seen: dict[str, int] = {" ".join(first): 0}
    for index in range(1, len(hypotheses)):
        words = hypotheses[index].split()
        weight = weights[index]
        twin = seen.setdefault(" ".join(words), index)
        if twin != index:
            path = list(paths[twin])
        else:
            path = []
            new_slots: list[dict[str, float]] = []
            new_paths: list[list[str]] = [[] for _ in paths]
            i = j = 0
            for how in align_to_slots(words, slots)[0]:
                if how == OPEN:
                    # A new slot: every earlier hypothesis passes it, so it starts with their weight on EPS.
                    new_slots.append({EPS: sum(weights[:index])})
                    for old in new_paths:
                        old.append(EPS)
                    path.append(words[j])
                    j += 1
                    continue
                new_slots.append(slots[i])
                for old, full in zip(new_paths, paths, strict=True):
                    old.append(full[i])
                if how == WORD:
                    path.append(words[j])
                    j += 1
                else:
                    path.append(EPS)
                i += 1
            slots, paths = new_slots, new_paths
        for slot, word in zip(slots, path, strict=True):
            slot[word] = slot.get(word, 0.0) + weight
        paths.append(path)
    return ConfusionNetwork(slots=slots, paths=paths, weights=weights)

"""Oracles: the best that selecting (o_nb) or recombining (o_cp) the n-best words could reach.

- ``nbest_oracle`` (o_nb, HyPoradise's "n-best oracle"): per utterance, the hypothesis with the fewest word
  edits against the reference (ties: the earlier, i.e. better ranked, hypothesis). Its corpus WER is the
  jiwer corpus WER of the chosen strings.
- ``compositional_oracle`` (o_cp, HyPoradise's "compositional oracle"): the path through the confusion
  network (``confusion_network.py``) closest to the reference: in each slot choose one of its words or EPS
  (EPS only where some hypothesis has it). Computed EXACTLY, not approximated: a dynamic programme over
  (slot, reference position) with moves "slot emits EPS" (cost 0), "slot emits a word aligned to the next
  reference word" (0 if that word is in the slot, else 1), "slot emits a word aligned to no reference word"
  (1; only useful in a slot without EPS) and "reference word left out" (1). Each slot emits at most one word,
  so every alignment of a path's text with the reference is one walk of this programme and the minimum is the
  edit distance of the best path; the path is rebuilt and returned as text, whose jiwer WER equals that minimum.
  HyPoradise does not spell out its o_cp algorithm, so published o_cp figures may come from another network
  construction; docs/BASELINES.md puts the two side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

from neko.baselines.confusion_network import EPS, OPEN, WORD, ConfusionNetwork, align_to_slots


def word_errors(reference: str, hypothesis: str) -> int:
    """Word-level edit distance (substitutions + deletions + insertions), words split on whitespace."""
    return Levenshtein.distance(reference.split(), hypothesis.split())


def nbest_oracle(hypotheses: Sequence[str], reference: str) -> int:
    """Index of the hypothesis with the fewest word errors against ``reference`` (earliest on ties)."""
    if not hypotheses:
        raise ValueError("no hypotheses to choose from")
    ref = reference.split()
    errors = [Levenshtein.distance(ref, hyp.split()) for hyp in hypotheses]
    return errors.index(min(errors))


def _best_word(slot: dict[str, float], preferred: str | None = None) -> str:
    if preferred is not None and preferred != EPS and preferred in slot:
        return preferred
    # The most voted real word; the sort key makes ties deterministic.
    return max((word for word in slot if word != EPS), key=lambda word: (slot[word], word))


def compositional_oracle(network: ConfusionNetwork, reference: str) -> tuple[str, int]:
    """The text of the confusion-network path closest to ``reference`` and its word edit count (exact)."""
    ref = reference.split()
    # Choosing a path is aligning the reference to the slots with the network's own costs: a WORD move is a
    # slot word against a reference word (0 if the slot holds it), PASS is a slot that emits EPS (0) or,
    # without EPS, an unaligned word (1), OPEN is a reference word no slot covers (1).
    steps, cost = align_to_slots(ref, network.slots)
    words: list[str] = []
    i = j = 0
    for how in steps:
        if how == OPEN:
            j += 1
            continue
        slot = network.slots[i]
        if how == WORD:
            words.append(_best_word(slot, ref[j]))
            j += 1
        elif EPS not in slot:
            words.append(_best_word(slot))
        i += 1
    return " ".join(words), cost

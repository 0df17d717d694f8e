"""ROVER voting over an n-best list (Fiscus 1997): in each confusion-network slot the heaviest word wins.

A hypothesis votes with weight 1 when the list has no scores (plain word frequency: repeated hypotheses
count again, as the recogniser found them again), else with the softmax of the scores. EPS takes part in the
vote, so a word that most hypotheses leave out is dropped. Ties go to the 1-best's word in that slot when it
is among the tied ones, else to the alphabetically last tied word (a fixed, documented rule).
"""

from __future__ import annotations

from collections.abc import Sequence

from neko.baselines.confusion_network import EPS, ConfusionNetwork, build_confusion_network, softmax_weights

# Vote totals are sums of floats: treat totals this close as a tie rather than letting rounding decide.
_TIE = 1e-9


def vote(network: ConfusionNetwork) -> str:
    """The text of the slot-wise winners of ``network`` (1-best's word on ties)."""
    words = []
    for index, slot in enumerate(network.slots):
        top = max(slot.values())
        tied = [word for word, weight in slot.items() if weight >= top - _TIE]
        first = network.paths[0][index]
        winner = first if first in tied else max(tied)
        if winner != EPS:
            words.append(winner)
    return " ".join(words)


def rover(hypotheses: Sequence[str], scores: Sequence[float] | None = None) -> str:
    """ROVER output for one n-best list (best first), weighted by ``softmax(scores)`` when scores are given."""
    weights = softmax_weights(scores, len(hypotheses))
    return vote(build_confusion_network(hypotheses, weights))

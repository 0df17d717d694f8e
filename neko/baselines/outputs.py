"""One output text per record for each non-neural baseline and oracle: the one implementation behind both
``neko baselines`` (``report.py``) and the experiment rows of ``make tables`` (``neko.experiments.methods``).

Oracles read the references (upper bounds, not systems). Records come in already normalised when the caller
wants normalised choices.
"""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein
from sacrebleu.metrics import CHRF

from neko.baselines.confusion_network import ConfusionNetwork, build_confusion_network, softmax_weights
from neko.baselines.mbr import mbr_select
from neko.baselines.oracle import compositional_oracle, nbest_oracle
from neko.baselines.rover import vote
from neko.records import Record


def one_best(records: Sequence[Record]) -> list[str]:
    """The recogniser's (or first system's) output, unchanged."""
    return [r.hypotheses[0] for r in records]


def oracle_nbest(records: Sequence[Record]) -> list[str]:
    """o_nb: per record, the hypothesis with the fewest word errors against the first reference."""
    return [r.hypotheses[nbest_oracle(r.hypotheses, r.references[0])] for r in records]


def _network(record: Record) -> ConfusionNetwork:
    return build_confusion_network(record.hypotheses, softmax_weights(record.scores, len(record.hypotheses)))


def oracle_compositional(records: Sequence[Record]) -> list[str]:
    """o_cp: the confusion-network path closest to the first reference (an upper bound of recombination)."""
    return [compositional_oracle(_network(r), r.references[0])[0] for r in records]


def rover(records: Sequence[Record]) -> list[str]:
    """ROVER voting over the confusion network, weighted by the recogniser's scores when present."""
    return [vote(_network(r)) for r in records]


def mbr_chrf(records: Sequence[Record]) -> list[str]:
    """MBR / consensus: the candidate with the highest mean chrF against the other candidates."""
    chrf = CHRF()
    return [r.hypotheses[mbr_select(r.hypotheses, chrf)] for r in records]


def oracle_chrf(records: Sequence[Record]) -> list[str]:
    """MT oracle: per segment the candidate of best sentence chrF against the references."""
    chrf = CHRF()
    return [
        max(r.hypotheses, key=lambda h, refs=r.references: chrf.sentence_score(h, refs).score)
        for r in records
    ]


def oracle_cer(records: Sequence[Record]) -> list[str]:
    """OCR oracle: per line the reading with the fewest character edits against the first reference."""
    return [
        min(r.hypotheses, key=lambda h, ref=r.references[0]: Levenshtein.distance(ref, h)) for r in records
    ]


def best_system(records: Sequence[Record], normalizer: str | None = None) -> tuple[list[str], str, float]:
    """The single MT system (candidate position) of best corpus BLEU on these records (an oracle pick): its
    outputs, its name (from ``meta["systems"]``, else ``candidate K``) and its BLEU."""
    from neko.metrics import score_corpus

    width = min(len(r.hypotheses) for r in records)
    bleu = [
        score_corpus("mt", [r.hypotheses[k] for r in records], records, normalizer)["bleu"]
        for k in range(width)
    ]
    best = bleu.index(max(bleu))
    systems = records[0].meta.get("systems") or []
    name = systems[best] if best < len(systems) else f"candidate {best}"
    return [r.hypotheses[best] for r in records], name, bleu[best]

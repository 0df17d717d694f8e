"""MT: a source sentence and candidate translations in, one translation out."""

from __future__ import annotations

from dataclasses import dataclass

from neko.records import Record
from neko.tasks.base import SHOWN_IN_ORDER, Task, distinct_indices, numbered

# Four candidates: WMT22 lists hold 9-14 systems, and each candidate is a full sentence (~30-40 tokens), so
# four keep the prompt near 200 tokens while still showing the model where systems disagree.
MAX_CANDIDATES = 4


@dataclass(frozen=True)
class MtTask(Task):
    """Translation candidate fusion: the source line, then up to 4 de-duplicated candidates, numbered, the
    most central first (``shown_indices``)."""

    def shown_indices(self, record: Record, limit: int | None = None) -> list[int]:
        """The candidates to show, most central first. MT candidates without ``scores`` are the outputs of
        several systems in no particular order (``neko prepare wmt``: sorted by system name), so they are
        ranked as an n-best would be: by their mean sentence chrF against every other candidate (chrF MBR,
        ``neko.baselines.mbr``; duplicates count as votes, ties keep the given order). The prompt then shows
        the 4 candidates the others agree with most, and the first of them is the MBR choice. Candidates with
        scores keep their order, and so do those of a record marked ``meta[SHOWN_IN_ORDER]`` (the shown view
        that ``neko.infer.prompt.prepare`` builds is already in this order)."""
        hypotheses = record.hypotheses
        if record.scores is not None or len(hypotheses) < 2 or record.meta.get(SHOWN_IN_ORDER):
            return super().shown_indices(record, limit)
        from neko.baselines.mbr import consensus

        means = consensus(hypotheses)
        order = sorted(range(len(hypotheses)), key=lambda i: -means[i])  # stable: ties keep the given order
        return [order[k] for k in distinct_indices([hypotheses[i] for i in order], self.shown_cap(limit))]

    def body(self, record: Record, numbers: bool = True) -> str:
        """``Source: ...`` then the candidates, numbered (the source is omitted when unknown)."""
        candidates = numbered(self.shown(record), numbers)
        if record.source:
            return f"Source: {' '.join(record.source.split())}\n{candidates}"
        return candidates


MT = MtTask(
    name="mt",
    instruction="Improve the English translation.",
    cue="Translation",
    metrics=("bleu", "chrf"),
    normalizer="none",
    expert=1,
    max_shown=MAX_CANDIDATES,
)

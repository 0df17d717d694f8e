"""MT: a source sentence and candidate translations in, one translation out."""

from __future__ import annotations

from dataclasses import dataclass

from neko.records import Record
from neko.tasks.base import Task, numbered

# Four candidates: WMT22 lists hold 9-14 systems, and each candidate is a full sentence (~30-40 tokens), so
# four keep the prompt near 200 tokens while still showing the model where systems disagree.
MAX_CANDIDATES = 4


@dataclass(frozen=True)
class MtTask(Task):
    """Translation candidate fusion: the source line, then up to 4 de-duplicated candidates, numbered."""

    def body(self, record: Record) -> str:
        """``Source: ...`` then the numbered candidates (the source is omitted when unknown)."""
        candidates = numbered(self.shown(record))
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

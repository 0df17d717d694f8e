"""GEC: an ungrammatical sentence in, the corrected sentence out."""

from __future__ import annotations

from dataclasses import dataclass

from neko.records import Record
from neko.tasks.base import Task


@dataclass(frozen=True)
class GecTask(Task):
    """Grammatical error correction of one sentence (the first hypothesis)."""

    def body(self, record: Record, numbers: bool = True) -> str:
        """``Sentence: <text>``."""
        return f"Sentence: {record.hypotheses[0]}"


GEC = GecTask(
    name="gec",
    instruction="Correct the grammar.",
    cue="Correction",
    metrics=("gleu",),
    normalizer="none",
    expert=3,
)

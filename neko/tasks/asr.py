"""ASR: an n-best list in, the transcript out."""

from __future__ import annotations

from dataclasses import dataclass

from neko.records import Record
from neko.tasks.base import Task, numbered

MAX_HYPOTHESES = 5  # HyPoradise ships 5-best lists; more costs tokens with little oracle gain


@dataclass(frozen=True)
class AsrTask(Task):
    """Speech recognition n-best correction: the de-duplicated n-best (best first, at most 5), numbered."""

    def body(self, record: Record, numbers: bool = True) -> str:
        """The de-duplicated hypotheses, numbered (repeats only waste tokens and fake a consensus)."""
        return numbered(self.shown(record), numbers)


ASR = AsrTask(
    name="asr",
    instruction="Correct the speech recognition n-best list.",
    cue="Transcript",
    metrics=("wer",),
    # HyPoradise's conventions: its speech references are lowercase without punctuation.
    normalizer="hyporadise",
    expert=0,
    max_shown=MAX_HYPOTHESES,
    tag="ASR:",
)

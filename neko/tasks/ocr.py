"""OCR: recognised text in, the clean text out."""

from __future__ import annotations

from dataclasses import dataclass

from neko.records import Record
from neko.tasks.base import Task


@dataclass(frozen=True)
class OcrTask(Task):
    """OCR post-correction: the first hypothesis (the OCR line) as is; only the first is shown."""

    def body(self, record: Record, numbers: bool = True) -> str:
        """``OCR: <text>``; whitespace is kept as is, since OCR spacing errors are part of what to fix."""
        return f"OCR: {record.hypotheses[0]}"


OCR = OcrTask(
    name="ocr",
    instruction="Correct the OCR errors.",
    cue="Text",
    metrics=("cer", "wer"),
    normalizer="none",
    expert=2,
)

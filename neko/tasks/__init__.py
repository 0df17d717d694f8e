"""The four correction tasks, each the one place of its name, prompt, target, n-best cap, metrics, default
normaliser and default expert; records, metrics, the model config and inference read them from ``TASKS``."""

from __future__ import annotations

from neko.errors import unknown_choice
from neko.tasks.asr import ASR
from neko.tasks.base import Task
from neko.tasks.encode import IGNORE_INDEX, encode_example, encode_prompt
from neko.tasks.gec import GEC
from neko.tasks.mt import MT
from neko.tasks.ocr import OCR

TASKS: dict[str, Task] = {"asr": ASR, "mt": MT, "ocr": OCR, "gec": GEC}


def get_task(name: str) -> Task:
    """The task called ``name``; a ConfigError lists the valid names otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise unknown_choice("task", name, TASKS) from None


__all__ = ["IGNORE_INDEX", "TASKS", "Task", "encode_example", "encode_prompt", "get_task"]

"""Input formats of ``neko correct``, ``neko eval``, ``neko baselines`` and ``neko.records.load_dataset``:
JSONL records (``jsonl.py``), HyPoradise JSON (``hyporadise.py``) and plain text (``text.py``).

Every reader turns the input into a list of ``Item``: one per input record, in input order, each holding a
valid ``Record`` or the ``InputError`` (file and line) that kept it from being one, so that the caller can
stop on the first bad record or write an error record in its place. ``read_items`` picks the reader;
``read_checked`` is the strict form that scoring commands use.
"""

from __future__ import annotations

import os
from pathlib import Path

from neko.errors import InputError, unknown_choice
from neko.readers.base import Item, read_bytes
from neko.readers.checks import input_warnings, warn_all
from neko.readers.hyporadise import parse_hyporadise
from neko.readers.jsonl import read_jsonl
from neko.readers.text import SEPARATOR, read_text
from neko.records import Record
from neko.tasks import TASKS

_EXTENSIONS = {".jsonl": "jsonl", ".json": "hyporadise", ".txt": "text"}


def read_hyporadise_items(name: str, data: bytes, task: str) -> list[Item]:
    """Items of a HyPoradise JSON array; an error anywhere in the array stops the whole file."""
    if task != "asr":
        raise InputError(name, None, f"HyPoradise files hold ASR n-best lists, not task {task!r}")
    dataset = "stdin" if name == "<stdin>" else None
    return [Item(r.id, i, record=r) for i, r in enumerate(parse_hyporadise(name, data, dataset), start=1)]


READERS = {"jsonl": read_jsonl, "hyporadise": read_hyporadise_items, "text": read_text}
FORMATS = tuple(READERS)


def detect_format(name: str, data: bytes) -> str:
    """The format of an input: by extension, else by its first non-blank character."""
    by_ext = _EXTENSIONS.get(Path(name).suffix.lower())
    if by_ext:
        return by_ext
    head = data.lstrip()[:1]
    return {b"[": "hyporadise", b"{": "jsonl"}.get(head, "text")


def read_items(
    path: str | os.PathLike, fmt: str = "auto", task: str | None = None, *, unique_ids: bool = True
) -> tuple[str, list[Item]]:
    """(format used, items) of an input file or stdin (``-``).

    ``unique_ids``: a repeated id becomes an error item (outputs are joined to inputs on ``id``).
    """
    if fmt != "auto" and fmt not in READERS:
        raise unknown_choice("input format", fmt, READERS)
    if task is not None and task not in TASKS:
        raise unknown_choice("task", task, TASKS)
    name, data = read_bytes(str(path))
    fmt = detect_format(name, data) if fmt == "auto" else fmt
    items = READERS[fmt](name, data, task or "asr")
    if unique_ids:
        first: dict[str, int] = {}
        for item in items:
            if item.error is None and item.id is not None:
                if item.id in first:
                    msg = f"duplicate id {item.id!r} (first at line {first[item.id]})"
                    item.error, item.record = InputError(name, item.where, msg), None
                else:
                    first[item.id] = item.where
    return fmt, items


def read_checked(
    path: str | os.PathLike,
    fmt: str = "auto",
    task: str | None = None,
    *,
    unique_ids: bool = True,
    empty_ok: bool = True,
) -> list[Record]:
    """The records of an input, stopping on its first bad record; suspicious input is warned about
    (``neko.readers.checks``). ``empty_ok`` False: an input without records is an error, not a warning."""
    _, items = read_items(path, fmt, task, unique_ids=unique_ids)
    for item in items:
        if item.error is not None:
            raise item.error
    if not items and not empty_ok:
        raise InputError(str(path), None, "no records")
    warn_all(input_warnings(str(path), items, duplicate_ids=not unique_ids))
    return [item.record for item in items if item.record is not None]


__all__ = ["FORMATS", "READERS", "SEPARATOR", "Item", "detect_format", "read_checked", "read_items"]

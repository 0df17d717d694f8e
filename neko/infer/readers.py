"""Input formats of ``neko correct``: JSONL records, HyPoradise JSON and plain text.

Every reader turns the input into a list of ``Item``: one per input record, in input order, each holding a
valid ``Record`` or the ``InputError`` (file and line) that kept it from being one, so that the caller can
stop on the first bad record or write an error record in its place.

Plain text: one input per non-blank line (blank lines are not records); an n-best list puts its
hypotheses on one line, best first, separated by ``|||`` (the separator of Moses n-best files); a line's
id is its line number. JSONL: one ``Record`` object a line; ``task`` may be left out (``--task``, default
``asr``) and so may ``dataset``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from neko.errors import InputError, unknown_choice
from neko.infer.corrector import as_record
from neko.records import TASK_NAMES, Record

FORMATS = ("jsonl", "hyporadise", "text")
SEPARATOR = "|||"
_EXTENSIONS = {".jsonl": "jsonl", ".json": "hyporadise", ".txt": "text"}


@dataclass
class Item:
    """One input record: ``record`` when it is valid, else ``error`` (``id`` is None when unknown)."""

    id: str | None
    where: int
    record: Record | None = None
    error: InputError | None = None


def read_bytes(path: str) -> tuple[str, bytes]:
    """(display name, content) of a file, or of stdin for ``-``."""
    if path == "-":
        return "<stdin>", sys.stdin.buffer.read()
    try:
        return path, Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, None, f"cannot open: {exc.strerror}") from None


def detect_format(name: str, data: bytes) -> str:
    """The format of an input: by extension, else by its first non-blank character."""
    by_ext = _EXTENSIONS.get(Path(name).suffix.lower())
    if by_ext:
        return by_ext
    head = data.lstrip()[:1]
    return {b"[": "hyporadise", b"{": "jsonl"}.get(head, "text")


def _lines(name: str, data: bytes):
    """(line number, text) of each non-blank line; a line that is not UTF-8 yields its InputError."""
    for lineno, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield lineno, InputError(name, lineno, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
            continue
        if line.strip():
            yield lineno, line


def read_jsonl(name: str, data: bytes, task: str) -> list[Item]:
    """Items of a JSONL file of records."""
    items = []
    for lineno, line in _lines(name, data):
        if isinstance(line, InputError):
            items.append(Item(None, lineno, error=line))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            err = InputError(name, lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
            items.append(Item(None, lineno, error=err))
            continue
        ident = str(obj["id"]) if isinstance(obj, dict) and isinstance(obj.get("id"), (str, int)) else None
        try:
            items.append(Item(ident, lineno, record=as_record(obj, task)))
        except ValueError as exc:
            items.append(Item(ident, lineno, error=InputError(name, lineno, str(exc))))
    return items


def read_text(name: str, data: bytes, task: str) -> list[Item]:
    """Items of a plain-text file: one input a line, n-best hypotheses separated by ``|||``."""
    items = []
    for lineno, line in _lines(name, data):
        if isinstance(line, InputError):
            items.append(Item(str(lineno), lineno, error=line))
            continue
        hyps = [" ".join(h.split()) for h in line.split(SEPARATOR)]
        record = Record(id=str(lineno), task=task, dataset="input", hypotheses=hyps)
        if not any(hyps):
            items.append(
                Item(str(lineno), lineno, error=InputError(name, lineno, "no hypotheses on this line"))
            )
        else:
            items.append(Item(str(lineno), lineno, record=record))
    return items


def read_hyporadise_items(name: str, data: bytes, task: str) -> list[Item]:
    """Items of a HyPoradise JSON array; an error anywhere in the array stops the whole file."""
    from data_prep.hyporadise import read_hyporadise

    if task != "asr":
        raise InputError(name, None, f"HyPoradise files hold ASR n-best lists, not task {task!r}")
    if name == "<stdin>":
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "stdin.json"
            path.write_bytes(data)
            records = list(read_hyporadise(path, dataset="stdin"))
    else:
        records = list(read_hyporadise(name))
    return [Item(r.id, i, record=r) for i, r in enumerate(records, start=1)]


READERS = {"jsonl": read_jsonl, "hyporadise": read_hyporadise_items, "text": read_text}


def read_items(path: str, fmt: str = "auto", task: str | None = None) -> tuple[str, list[Item]]:
    """(format used, items) of an input file or stdin (``-``); duplicate ids become errors."""
    if fmt != "auto" and fmt not in READERS:
        raise unknown_choice("input format", fmt, READERS)
    if task is not None and task not in TASK_NAMES:
        raise unknown_choice("task", task, TASK_NAMES)
    name, data = read_bytes(path)
    fmt = detect_format(name, data) if fmt == "auto" else fmt
    items = READERS[fmt](name, data, task or "asr")
    first: dict[str, int] = {}
    for item in items:
        if item.error is None and item.id is not None:
            if item.id in first:
                msg = f"duplicate id {item.id!r} (first at line {first[item.id]})"
                item.error, item.record = InputError(name, item.where, msg), None
            else:
                first[item.id] = item.where
    return fmt, items

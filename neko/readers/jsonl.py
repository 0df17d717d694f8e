"""JSON Lines input: one ``Record`` object a line; ``task`` may be left out (``--task``, default ``asr``),
and so may ``dataset``."""

from __future__ import annotations

import json

from neko.errors import InputError
from neko.readers.base import Item, lines
from neko.records import as_record


def read_jsonl(name: str, data: bytes, task: str) -> list[Item]:
    """Items of a JSONL file of records."""
    items = []
    for lineno, line in lines(name, data):
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

"""Plain-text input: one input per non-blank line (blank lines are not records); an n-best list puts its
hypotheses on one line, best first, separated by ``|||`` (the separator of Moses n-best files); a line's
id is its line number."""

from __future__ import annotations

from neko.errors import InputError
from neko.readers.base import Item, lines
from neko.records import Record

SEPARATOR = "|||"


def read_text(name: str, data: bytes, task: str) -> list[Item]:
    """Items of a plain-text file: one input a line, n-best hypotheses separated by ``|||``."""
    items = []
    for lineno, line in lines(name, data):
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

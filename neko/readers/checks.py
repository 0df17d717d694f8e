"""Suspicious but valid input: an empty file, records whose hypotheses are all empty, scores that are not
finite numbers, ids that repeat. Each kind is one warning line (a count and the first few places), never
an error: the input can still be processed, but the user should know before trusting the numbers."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from neko.errors import InputWarning
from neko.readers.base import Item
from neko.records import Record

_SHOWN = 3


class InputChecks:
    """Collects the suspicious records of one input as they stream by (``add``), then words the warnings.

    ``duplicate_ids`` False leaves repeated ids to the caller (``neko correct`` and ``neko eval`` refuse
    them as errors, since outputs are joined to inputs on ``id``).
    """

    def __init__(self, name: str, *, duplicate_ids: bool = True) -> None:
        self.name = name
        self.duplicate_ids = duplicate_ids
        self.records = 0
        self.found: dict[str, list[int]] = {"empty": [], "not_finite": [], "repeated": []}
        self._ids: set[str] = set()

    def add(self, where: int, record: Record) -> None:
        """Check one record; ``where`` is its line (or record number) in the input."""
        self.records += 1
        if not any(h.strip() for h in record.hypotheses):
            self.found["empty"].append(where)
        if record.scores is not None and not all(math.isfinite(s) for s in record.scores):
            self.found["not_finite"].append(where)
        if self.duplicate_ids and record.id in self._ids:
            self.found["repeated"].append(where)
        self._ids.add(record.id)

    def messages(self) -> list[str]:
        """One line per kind of problem found (none when the input looks fine)."""
        if not self.records:
            return [f"{self.name}: the input holds no records"]
        words = {
            "empty": "every hypothesis is empty",
            "not_finite": "scores that are NaN or infinite",
            "repeated": "an id that an earlier record already has (each copy is counted)",
        }
        out = []
        for kind, where in self.found.items():
            if where:
                shown = ", ".join(str(w) for w in where[:_SHOWN]) + (", ..." if len(where) > _SHOWN else "")
                out.append(f"{self.name}: {len(where)} record(s) with {words[kind]} (at {shown})")
        return out


def input_warnings(name: str, items: Sequence[Item], *, duplicate_ids: bool = True) -> list[str]:
    """The warnings of an input's valid items."""
    checks = InputChecks(name, duplicate_ids=duplicate_ids)
    for item in items:
        if item.record is not None:
            checks.add(item.where, item.record)
    if not checks.records and items:
        return []  # every item is an error: the errors say it all
    return checks.messages()


def warn_all(messages: Sequence[str]) -> int:
    """Issue each message as an ``InputWarning`` (the CLI prints it as one line); returns how many."""
    for message in messages:
        warnings.warn(message, InputWarning, stacklevel=2)
    return len(messages)

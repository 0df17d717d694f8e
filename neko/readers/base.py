"""What every input reader shares: the ``Item`` it returns, and strict reading of bytes, UTF-8 and lines.

A UTF-8 byte order mark at the start of a file (common in files saved by Windows tools) is dropped; any
other byte that is not UTF-8 is an error naming its line.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from neko.errors import InputError
from neko.records import Record


@dataclass
class Item:
    """One input record: ``record`` when it is valid, else ``error`` (``id`` is None when unknown)."""

    id: str | None
    where: int
    record: Record | None = None
    error: InputError | None = None


def read_bytes(path: str) -> tuple[str, bytes]:
    """(display name, content) of a file, or of stdin for ``-``; the byte order mark is removed."""
    if path == "-":
        name, data = "<stdin>", sys.stdin.buffer.read()
    else:
        try:
            name, data = path, Path(path).read_bytes()
        except IsADirectoryError:
            raise InputError(path, None, "is a folder, not an input file") from None
        except OSError as exc:
            raise InputError(path, None, f"cannot open: {exc.strerror}") from None
    return name, data.removeprefix(codecs.BOM_UTF8)


def decode_utf8(name: str, data: bytes) -> str:
    """``data`` decoded as UTF-8; a bad byte raises InputError naming the line it is on."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(name, line, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def lines(name: str, data: bytes) -> Iterator[tuple[int, str | InputError]]:
    """(line number, text) of each non-blank line; a line that is not UTF-8 yields its InputError."""
    for lineno, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield lineno, InputError(name, lineno, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
            continue
        if line.strip():
            yield lineno, line

"""What every dataset reader shares: strict text reading, the ``--src/--out`` flags, and the count report.

Readers stream ``Record`` objects and add their own counts (skipped spans, empty references, ...) to a
``Counter`` they are given; ``write_prepared`` adds the generic counts (records, hypotheses per record,
duplicate hypotheses) while writing, so nothing a reader leaves out goes unreported.
"""

from __future__ import annotations

import argparse
import codecs
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from neko.errors import InputError
from neko.readers.base import decode_utf8
from neko.readers.checks import InputChecks, warn_all
from neko.records import Record, write_records

# Keys of the generic counts, printed first and in this order.
GENERIC_KEYS = (
    "records",
    "hypotheses",
    "min_hypotheses",
    "max_hypotheses",
    "records_with_duplicate_hypotheses",
    "duplicate_hypotheses",
    "empty_hypotheses",
    "records_without_reference",
    "empty_references",
)


@dataclass
class PrepareReport:
    """What one preparation wrote: the output file and its counts (generic first, then reader-specific)."""

    name: str
    out: Path
    counts: Counter = field(default_factory=Counter)

    @property
    def records(self) -> int:
        """Number of records written."""
        return self.counts["records"]

    def lines(self) -> list[str]:
        """The report as ``key: value`` lines, in a fixed order so that two runs print the same thing."""
        counts = self.counts
        lines = [f"{self.name}: wrote {counts['records']} records to {self.out}"]
        if counts["records"]:
            mean = counts["hypotheses"] / counts["records"]
            lines.append(
                f"  hypotheses per record: min {counts['min_hypotheses']}, mean {mean:.2f}, "
                f"max {counts['max_hypotheses']}"
            )
        for key in GENERIC_KEYS[4:]:
            lines.append(f"  {key.replace('_', ' ')}: {counts[key]}")
        for key in sorted(set(counts) - set(GENERIC_KEYS)):
            lines.append(f"  {key.replace('_', ' ')}: {counts[key]}")
        return lines


def tally(records: Iterable[Record], counts: Counter) -> Iterator[Record]:
    """Pass records through unchanged while adding the generic counts to ``counts``."""
    for record in records:
        n = len(record.hypotheses)
        counts["records"] += 1
        counts["hypotheses"] += n
        counts["min_hypotheses"] = n if counts["records"] == 1 else min(counts["min_hypotheses"], n)
        counts["max_hypotheses"] = max(counts["max_hypotheses"], n)
        distinct = len(set(record.hypotheses))
        if distinct < n:
            counts["records_with_duplicate_hypotheses"] += 1
            counts["duplicate_hypotheses"] += n - distinct
        counts["empty_hypotheses"] += sum(1 for h in record.hypotheses if not h.strip())
        if not record.references:
            counts["records_without_reference"] += 1
        counts["empty_references"] += sum(1 for r in record.references if not r.strip())
        yield record


def checked(records: Iterable[Record], checks: InputChecks) -> Iterator[Record]:
    """Pass records through unchanged while ``checks`` notes the suspicious ones (by record number)."""
    for number, record in enumerate(records, start=1):
        checks.add(number, record)
        yield record


def write_prepared(
    name: str, out: str | os.PathLike, records: Iterable[Record], counts: Counter
) -> PrepareReport:
    """Write records atomically to ``out`` and return the report; ``counts`` may already hold reader counts.

    Suspicious records (all hypotheses empty, scores not finite, a repeated id) are warned about
    (``neko.readers.checks``) and counted in ``counts["warnings"]``.
    """
    for key in GENERIC_KEYS:
        counts.setdefault(key, 0)
    checks = InputChecks(str(out))
    write_records(out, checked(tally(records, counts), checks))
    counts["warnings"] = warn_all(checks.messages())
    return PrepareReport(name=name, out=Path(out), counts=counts)


def read_text(path: str | os.PathLike) -> str:
    """A whole file decoded as UTF-8; bad bytes raise InputError naming the line they are on."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(str(path), None, f"cannot read: {exc.strerror}") from None
    # A byte order mark (files saved by Windows tools) is not part of the text.
    return decode_utf8(str(path), data.removeprefix(codecs.BOM_UTF8))


def read_lines(path: str | os.PathLike) -> list[str]:
    """The lines of a UTF-8 text file without their line ends (``\\n`` or ``\\r\\n``).

    Only ``\\n`` ends a line: ``str.splitlines`` would also split on U+2028 or form feeds that occur
    inside real segments and would break the line alignment of parallel files.
    """
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def add_io_arguments(parser: argparse.ArgumentParser, src_help: str) -> None:
    """The ``--src`` and ``--out`` flags every reader has."""
    parser.add_argument("--src", required=True, help=src_help)
    parser.add_argument("--out", required=True, help="output records file (JSONL), written atomically")


def print_report(report: PrepareReport) -> None:
    """Print the counts of one preparation."""
    print("\n".join(report.lines()))

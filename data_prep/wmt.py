"""WMT general-test system outputs (``wmt/wmt22``, ``wmt/wmt23``) to MT candidate lists.

A year folder holds ``sources/<test>.<pair>.src.<lang>``, ``references/<test>.<pair>.ref.<name>.<lang>`` and
``system-outputs/<test>.<pair>.hyp.<system>.<lang>``, all line aligned. For each segment the outputs of all
systems, in sorted system order, become the hypotheses. The systems are not ranked, so the order says nothing
about quality; identical outputs are kept (the list is what the systems produced) and marked in
``meta["duplicate_of"]``.
"""

from __future__ import annotations

import argparse
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from data_prep.common import PrepareReport, add_io_arguments, print_report, read_lines, write_prepared
from neko.errors import InputError
from neko.records import Record

HELP = "WMT general-test system outputs of one language pair -> MT candidate lists (task mt)"

# <test set>.<pair>.<kind>[.<name>].<lang>; system names may hold dots and dashes, the language never does.
_FILE = re.compile(
    r"^(?P<test>[^.]+)\.(?P<pair>[a-z]{2,3}-[a-z]{2,3})\.(?P<kind>src|ref|hyp)(?:\.(?P<name>.+))?\.(?P<lang>[a-zA-Z_]+)$"
)


@dataclass
class PairFiles:
    """The files of one language pair in a year folder."""

    pair: str
    source: Path
    references: dict[str, Path]
    systems: dict[str, Path]


def _scan(folder: Path, kind: str) -> dict[str, dict[str, Path]]:
    """pair -> name -> path for the files of one kind (``src`` files get the name ``src``)."""
    found: dict[str, dict[str, Path]] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        match = _FILE.match(path.name)
        if match and match["kind"] == kind and path.is_file():
            found.setdefault(match["pair"], {})[match["name"] or "src"] = path
    return found


def available_pairs(year_dir: str | os.PathLike) -> list[str]:
    """The language pairs of a year folder that have a source, a reference and at least one system."""
    year_dir = Path(year_dir)
    sources = _scan(year_dir / "sources", "src")
    refs = _scan(year_dir / "references", "ref")
    hyps = _scan(year_dir / "system-outputs", "hyp")
    return sorted(set(sources) & set(refs) & set(hyps))


def pair_files(year_dir: str | os.PathLike, pair: str) -> PairFiles:
    """Locate the files of ``pair``; a missing pair raises InputError listing the pairs that exist."""
    year_dir = Path(year_dir)
    if not (year_dir / "system-outputs").is_dir():
        raise InputError(str(year_dir), None, "not a WMT year folder (no system-outputs/ inside)")
    pairs = available_pairs(year_dir)
    if pair not in pairs:
        raise InputError(
            str(year_dir), None, f"language pair {pair!r} not found; available: {', '.join(pairs) or 'none'}"
        )
    return PairFiles(
        pair=pair,
        source=_scan(year_dir / "sources", "src")[pair]["src"],
        references=dict(sorted(_scan(year_dir / "references", "ref")[pair].items())),
        systems=dict(sorted(_scan(year_dir / "system-outputs", "hyp")[pair].items())),
    )


def duplicate_of(hypotheses: list[str]) -> list[int | None]:
    """For each hypothesis, the index of its first identical copy if it is a repeat, else None."""
    first: dict[str, int] = {}
    marks: list[int | None] = []
    for i, hyp in enumerate(hypotheses):
        marks.append(first[hyp] if hyp in first else None)
        first.setdefault(hyp, i)
    return marks


def read_wmt(year_dir: str | os.PathLike, pair: str, *, counts: Counter | None = None) -> Iterator[Record]:
    """Stream one record per segment of ``pair`` in a WMT year folder (e.g. ``.../wmt/wmt22``, ``cs-en``).

    Raises:
        InputError: the pair is missing (the message lists those present), a file is not UTF-8, or the
            files of the pair do not have the same number of lines.
    """
    year_dir = Path(year_dir)
    files = pair_files(year_dir, pair)
    counts = counts if counts is not None else Counter()
    sources = read_lines(files.source)
    refs = {name: read_lines(path) for name, path in files.references.items()}
    hyps = {name: read_lines(path) for name, path in files.systems.items()}
    for path, lines in [
        *zip(files.references.values(), refs.values(), strict=True),
        *zip(files.systems.values(), hyps.values(), strict=True),
    ]:
        if len(lines) != len(sources):
            raise InputError(
                str(path), None, f"{len(lines)} lines but the source {files.source.name} has {len(sources)}"
            )
    year = year_dir.name
    systems = list(files.systems)
    counts["systems"] = len(systems)
    counts["references_per_segment"] = len(refs)
    for i, source in enumerate(sources):
        hypotheses = [hyps[name][i] for name in systems]
        marks = duplicate_of(hypotheses)
        yield Record(
            id=f"{year}-{pair}-{i + 1}",
            task="mt",
            dataset=f"{year}_{pair}",
            hypotheses=hypotheses,
            source=source,
            references=[refs[name][i] for name in refs],
            meta={
                "segment": i + 1,
                "pair": pair,
                "systems": systems,
                "reference_names": list(refs),
                "duplicate_of": marks,
            },
        )


def prepare_wmt(year_dir: str | os.PathLike, pair: str, out: str | os.PathLike) -> PrepareReport:
    """Convert one language pair of a WMT year folder to a records file and return the counts."""
    counts: Counter = Counter()
    return write_prepared(
        f"wmt {Path(year_dir).name} {pair}", out, read_wmt(year_dir, pair, counts=counts), counts
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``neko prepare wmt``."""
    add_io_arguments(parser, "a WMT year folder, e.g. ../shared/data/wmt/wmt22")
    parser.add_argument("--pair", required=True, help="language pair, e.g. cs-en")


def run(args: argparse.Namespace) -> int:
    """Run ``neko prepare wmt``."""
    print_report(prepare_wmt(args.src, args.pair, args.out))
    return 0

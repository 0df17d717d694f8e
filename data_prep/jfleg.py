"""JFLEG (``gec/jfleg/{dev,test}``) to GEC records with four references each.

A split folder holds ``<split>.src`` and ``<split>.ref0`` .. ``<split>.ref3``, line aligned and tokenised.
Lines are taken as they are except for surrounding whitespace (some lines end in a space), which no
token-based metric such as GLEU sees.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from data_prep.common import PrepareReport, add_io_arguments, print_report, read_lines, write_prepared
from neko.errors import InputError
from neko.records import Record

HELP = "JFLEG split folder (*.src + *.ref0..3) -> records with 4 references (task gec)"


def split_files(split_dir: Path) -> tuple[Path, list[Path]]:
    """The source file and the sorted reference files of a JFLEG split folder."""
    if not split_dir.is_dir():
        raise InputError(
            str(split_dir), None, "not a folder (expected a JFLEG split folder such as jfleg/test)"
        )
    sources = sorted(split_dir.glob("*.src"))
    if len(sources) != 1:
        raise InputError(str(split_dir), None, f"expected one *.src file, found {len(sources)}")
    source = sources[0]
    refs = sorted(split_dir.glob(f"{source.stem}.ref*"), key=lambda p: p.suffix)
    if not refs:
        raise InputError(
            str(split_dir), None, f"no reference files {source.stem}.ref0.. beside {source.name}"
        )
    return source, refs


def read_jfleg(split_dir: str | os.PathLike, *, counts: Counter | None = None) -> Iterator[Record]:
    """Stream one record per source line of a JFLEG split folder; the dataset is ``jfleg_<split>``.

    Raises:
        InputError: missing files, invalid UTF-8, or reference files whose line count differs from the source.
    """
    split_dir = Path(split_dir)
    source, ref_paths = split_files(split_dir)
    counts = counts if counts is not None else Counter()
    lines = read_lines(source)
    refs = [read_lines(path) for path in ref_paths]
    for path, ref_lines in zip(ref_paths, refs, strict=True):
        if len(ref_lines) != len(lines):
            raise InputError(str(path), None, f"{len(ref_lines)} lines but {source.name} has {len(lines)}")
    counts["references_per_record"] = len(refs)
    split = source.stem
    for i, line in enumerate(lines):
        references = [ref_lines[i].strip() for ref_lines in refs]
        counts["unchanged_in_all_references"] += all(r == line.strip() for r in references)
        yield Record(
            id=f"jfleg_{split}-{i + 1}",
            task="gec",
            dataset=f"jfleg_{split}",
            hypotheses=[line.strip()],
            references=references,
            meta={"line": i + 1},
        )


def prepare_jfleg(src: str | os.PathLike, out: str | os.PathLike) -> PrepareReport:
    """Convert one JFLEG split folder to a records file and return the counts."""
    counts: Counter = Counter()
    return write_prepared(f"jfleg {Path(src).name}", out, read_jfleg(src, counts=counts), counts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``neko prepare jfleg``."""
    add_io_arguments(parser, "a JFLEG split folder, e.g. ../shared/data/gec/jfleg/test")


def run(args: argparse.Namespace) -> int:
    """Run ``neko prepare jfleg``."""
    print_report(prepare_jfleg(args.src, args.out))
    return 0

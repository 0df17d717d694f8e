"""``neko prepare all``: convert every dataset present in the data folder, make-like.

Outputs get fixed names in OUT_DIR (``hyporadise_<set>.jsonl``, and for a training file also
``hyporadise_<set>_fit.jsonl`` / ``_dev.jsonl``, its disjoint training and dev parts; ``wmt22_<pair>.jsonl``,
``overproof_dataset2.jsonl``, ``icdar2017.jsonl``, ``fce_<split>.jsonl``, ``jfleg_<split>.jsonl``). An output
newer than all of its inputs and than the reader's own source file is up to date and is not rebuilt, so a
second run does nothing; ``--force`` rebuilds everything. Absent sources are skipped with a note.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from data_prep import common, fce, hyporadise, icdar2017, jfleg, overproof, wmt
from data_prep.common import PrepareReport
from neko.errors import InputError
from neko.paths import data_dir

HELP = "convert every dataset found in the data folder into OUT_DIR (skips outputs that are up to date)"


@dataclass
class Job:
    """One output file, the inputs it is made from and how to make it."""

    name: str
    inputs: list[Path]
    make: Callable[[Path], PrepareReport]
    reader: Path


def _files(path: Path) -> list[Path]:
    """``path`` itself, or every file below it."""
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def _src(module) -> Path:
    """The source file of a reader module: a changed reader makes its outputs stale."""
    return Path(module.__file__)


def plan(data: str | os.PathLike) -> tuple[list[Job], list[str]]:
    """The jobs for everything present under ``data``, and notes about the sources that are absent."""
    data = Path(data)
    if not data.is_dir():
        raise InputError(str(data), None, "data folder not found (pass --src or set NEKO_DATA)")
    jobs: list[Job] = []
    notes: list[str] = []

    def present(folder: Path) -> bool:
        if not folder.is_dir():
            notes.append(f"skipped {folder}: not found")
        return folder.is_dir()

    if present(data / "hyporadise"):
        for path in sorted((data / "hyporadise").glob("*.json")):
            name = f"hyporadise_{hyporadise.dataset_name(path)}"
            jobs.append(Job(name, [path], partial(hyporadise.prepare_hyporadise, path), _src(hyporadise)))
            if path.name.startswith("train_"):  # a training file: also its fit / dev parts (for recipes)
                for part in ("fit", "dev"):
                    make = partial(hyporadise.prepare_hyporadise_part, path, part=part)
                    jobs.append(Job(f"{name}_{part}", [path], make, _src(hyporadise)))
    for year in ("wmt22", "wmt23"):
        if present(data / "wmt" / year):
            for pair in wmt.available_pairs(data / "wmt" / year):
                files = wmt.pair_files(data / "wmt" / year, pair)
                inputs = [files.source, *files.references.values(), *files.systems.values()]
                make = partial(wmt.prepare_wmt, data / "wmt" / year, pair)
                jobs.append(Job(f"{year}_{pair}", inputs, make, _src(wmt)))
    if present(data / "ocr" / "overproof"):
        for path in sorted((data / "ocr" / "overproof").glob("*_allArticles.txt")):
            make = partial(overproof.prepare_overproof, path)
            jobs.append(Job(overproof.dataset_name(path), [path], make, _src(overproof)))
    if present(data / "ocr" / "icdar2017"):
        folder = data / "ocr" / "icdar2017"
        make = partial(icdar2017.prepare_icdar2017, folder)
        jobs.append(Job("icdar2017", _files(folder), make, _src(icdar2017)))
    if present(data / "gec" / "fce"):
        for path in sorted((data / "gec" / "fce").glob("*.json")):
            split = fce.split_name(path)
            if split:
                jobs.append(Job(f"fce_{split}", [path], partial(fce.prepare_fce, path), _src(fce)))
            else:
                notes.append(f"skipped {path}: no train/dev/test in the file name")
    if present(data / "gec" / "jfleg"):
        for folder in sorted(p for p in (data / "gec" / "jfleg").iterdir() if p.is_dir()):
            make = partial(jfleg.prepare_jfleg, folder)
            jobs.append(Job(f"jfleg_{folder.name}", _files(folder), make, _src(jfleg)))
    return jobs, notes


def up_to_date(out: Path, job: Job) -> bool:
    """Whether ``out`` exists and is newer than every input and than the reader code."""
    if not out.is_file():
        return False
    newest = max(p.stat().st_mtime for p in [*job.inputs, job.reader, Path(common.__file__)])
    return out.stat().st_mtime >= newest


def prepare_all(
    data: str | os.PathLike, out_dir: str | os.PathLike, *, force: bool = False, verbose: bool = True
) -> list[tuple[str, str, int, Path]]:
    """Run every stale job; returns ``(name, status, records, output)`` rows, status ``written`` or ``up to date``."""
    out_dir = Path(out_dir)
    jobs, notes = plan(data)
    for note in notes:
        print(note)
    rows = []
    for job in jobs:
        out = out_dir / f"{job.name}.jsonl"
        if not force and up_to_date(out, job):
            with open(out, "rb") as handle:
                count = sum(1 for _ in handle)
            rows.append((job.name, "up to date", count, out))
            continue
        report = job.make(out)
        if verbose:
            common.print_report(report)
        rows.append((job.name, "written", report.records, out))
    return rows


def format_table(rows: list[tuple[str, str, int, Path]]) -> str:
    """The rows as a fixed-width table."""
    width = max([len("output"), *(len(r[0]) for r in rows)])
    lines = [f"{'output':<{width}}  {'status':<10}  {'records':>8}"]
    lines += [f"{name:<{width}}  {status:<10}  {count:>8}" for name, status, count, _ in rows]
    lines.append(f"{'total':<{width}}  {'':<10}  {sum(r[2] for r in rows):>8}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``neko prepare all``."""
    parser.add_argument("--src", default=None, help="the data folder (default: $NEKO_DATA or ../shared/data)")
    parser.add_argument("--out", required=True, help="output folder for the records files")
    parser.add_argument("--force", action="store_true", help="rebuild outputs even when they are up to date")
    parser.add_argument("--quiet", action="store_true", help="print only the final table")


def run(args: argparse.Namespace) -> int:
    """Run ``neko prepare all``."""
    rows = prepare_all(data_dir(args.src), args.out, force=args.force, verbose=not args.quiet)
    print(format_table(rows))
    return 0

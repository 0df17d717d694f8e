"""Overproof OCR evaluation sets (``ocr/overproof/dataset{2,3}_allArticles.txt``) to OCR line records.

A file is a sequence of articles: a header line ``*$*OVERPROOF*$* <article id> year ... title ...`` and then
one line per printed line, ``OCR||@@||human ground truth||@@||overproof output``. The third field is another
system's correction and is ignored.

Line policy (every case is counted, none is dropped silently):

- ``||@@||||@@||`` (OCR and ground truth both empty) marks a paragraph break in the article: skipped and
  counted as ``blank_lines``.
- Ground truth empty but OCR not: the human deleted that OCR line (mostly noise such as ``-»``). It is kept
  as a record with the empty reference ``""``, marked ``meta["empty_reference"] = True`` and counted, because
  learning to delete garbage is part of the task; ``--skip-empty-reference`` drops them (still counted).
- OCR empty but ground truth not: the OCR missed a line. Kept with hypothesis ``""`` and counted.
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

HELP = "Overproof OCR/ground-truth article lines -> records (task ocr)"

HEADER = "*$*OVERPROOF*$*"
SEPARATOR = "||@@||"


def dataset_name(path: str | os.PathLike) -> str:
    """``dataset2_allArticles.txt`` -> ``overproof_dataset2``."""
    return "overproof_" + Path(path).name.split("_")[0].removesuffix(".txt")


def read_overproof(
    path: str | os.PathLike,
    dataset: str | None = None,
    *,
    skip_empty_reference: bool = False,
    counts: Counter | None = None,
) -> Iterator[Record]:
    """Stream one record per OCR line of an Overproof ``*_allArticles.txt`` file.

    Records carry ``meta`` ``article`` (the id in the header), ``article_index`` (1-based order in the
    file), ``article_line`` (1-based line within the article) and ``line`` (1-based line in the file).

    Raises:
        InputError: a content line before the first header, a line without exactly two ``||@@||``
            separators, or invalid UTF-8; the message names the file line.
    """
    path = Path(path)
    dataset = dataset or dataset_name(path)
    counts = counts if counts is not None else Counter()
    article: str | None = None
    article_index = 0
    article_line = 0
    for lineno, line in enumerate(read_lines(path), start=1):
        if line.startswith(HEADER):
            fields = line[len(HEADER) :].split()
            if not fields:
                raise InputError(str(path), lineno, "article header without an article id")
            article, article_index, article_line = fields[0], article_index + 1, 0
            counts["articles"] += 1
            continue
        if not line.strip():
            # A wholly empty line is not part of the format; count it rather than fail on stray blank lines.
            counts["empty_file_lines"] += 1
            continue
        if article is None:
            raise InputError(str(path), lineno, f"content before the first {HEADER} article header")
        parts = line.split(SEPARATOR)
        if len(parts) != 3:
            raise InputError(
                str(path),
                lineno,
                f"expected 'OCR{SEPARATOR}GT{SEPARATOR}other', found {len(parts) - 1} separator(s)",
            )
        article_line += 1
        ocr, truth = parts[0], parts[1]
        if not ocr.strip() and not truth.strip():
            counts["blank_lines"] += 1
            continue
        if not truth.strip():
            counts["empty_reference_lines"] += 1
            if skip_empty_reference:
                counts["skipped_empty_reference_lines"] += 1
                continue
        if not ocr.strip():
            counts["empty_ocr_lines"] += 1
        yield Record(
            id=f"{dataset}-{lineno}",
            task="ocr",
            dataset=dataset,
            hypotheses=[ocr],
            references=[truth],
            meta={
                "article": article,
                "article_index": article_index,
                "article_line": article_line,
                "line": lineno,
                "empty_reference": not truth.strip(),
            },
        )


def prepare_overproof(
    src: str | os.PathLike, out: str | os.PathLike, *, skip_empty_reference: bool = False
) -> PrepareReport:
    """Convert one Overproof file to a records file and return the counts."""
    counts: Counter = Counter()
    records = read_overproof(src, skip_empty_reference=skip_empty_reference, counts=counts)
    return write_prepared(f"overproof {dataset_name(src)}", out, records, counts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``neko prepare overproof``."""
    add_io_arguments(parser, "an Overproof file, e.g. ../shared/data/ocr/overproof/dataset3_allArticles.txt")
    parser.add_argument(
        "--skip-empty-reference",
        action="store_true",
        help="drop OCR lines whose ground truth is empty (counted); by default they are kept with reference ''",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``neko prepare overproof``."""
    print_report(prepare_overproof(args.src, args.out, skip_empty_reference=args.skip_empty_reference))
    return 0

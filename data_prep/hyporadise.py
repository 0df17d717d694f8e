"""``neko prepare hyporadise``: HyPoradise ASR n-best lists (``hyporadise/*.json``) to records.

The reader itself (``read_hyporadise``, ``write_hyporadise``, ``dataset_name``) lives in
``neko.readers.hyporadise``, where ``neko correct``, ``neko eval`` and ``neko baselines`` read the same files.

Its four JSON schemas are described there.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter

from data_prep.common import PrepareReport, add_io_arguments, print_report, write_prepared
from neko.readers.hyporadise import dataset_name, read_hyporadise, write_hyporadise

HELP = "HyPoradise ASR n-best JSON (any of its four schemas) -> records (task asr)"

__all__ = ["dataset_name", "prepare_hyporadise", "read_hyporadise", "write_hyporadise"]


def prepare_hyporadise(
    src: str | os.PathLike, out: str | os.PathLike, dataset: str | None = None
) -> PrepareReport:
    """Convert one HyPoradise file to a records file and return the counts."""
    counts: Counter = Counter()
    return write_prepared("hyporadise", out, read_hyporadise(src, dataset, counts=counts), counts)


def prepare_hyporadise_part(src: str | os.PathLike, out: str | os.PathLike, part: str) -> PrepareReport:
    """One part of a HyPoradise *training* file: ``dev`` = the seeded records that ``neko adapt`` carves off
    as its dev split (``neko.train.adapt.split_dev``: 10%, at most 200, seed 0), ``fit`` = the rest. A recipe
    trains on ``fit`` and calibrates on ``dev``, so no record is both."""
    from neko.train.adapt import split_dev

    fit, dev = split_dev(list(read_hyporadise(src)))
    records = {"fit": fit, "dev": dev}[part]
    with_scores = sum(r.scores is not None for r in records)  # the reader's counts, for this part only
    counts = Counter(with_scores=with_scores, without_scores=len(records) - with_scores)
    return write_prepared("hyporadise", out, records, counts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``neko prepare hyporadise``."""
    add_io_arguments(parser, "a HyPoradise .json file, e.g. ../shared/data/hyporadise/test_chime4.json")
    parser.add_argument(
        "--dataset",
        default=None,
        help="dataset name (default: from the file name, test_chime4.json -> chime4)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``neko prepare hyporadise``."""
    print_report(prepare_hyporadise(args.src, args.out, args.dataset))
    return 0

"""ICDAR 2017 post-OCR competition files (``ocr/icdar2017/eng_*/N.txt``) to OCR chunk records.

Each file holds three lines: ``[OCR_toInput] ...``, ``[OCR_aligned] ...`` and ``[ GS_aligned] ...``. The two
aligned lines have the same length and are aligned character by character: ``@`` is an alignment gap and
``#`` in the ground truth marks a span without ground truth.

A document is cut into chunks at columns where both aligned sides hold whitespace, so that every chunk's OCR
text and ground truth cover the same stretch of the page. Words (runs between such cuts) whose ground truth
holds ``#`` form skipped spans (counted); the clean runs between them are cut into chunks of about
``target_words`` ground-truth words (never more than ``max_words`` when a cut exists). Gaps (``@``) are then
removed from both sides. Clean runs shorter than ``min_words`` (fragments squeezed between ``#`` spans) are
skipped and counted too.
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

HELP = (
    "ICDAR 2017 post-OCR aligned files -> chunks of ~20 words (task ocr), spans without ground truth skipped"
)

TAGS = {"input": "[OCR_toInput] ", "ocr": "[OCR_aligned] ", "gs": "[ GS_aligned] "}
GAP = "@"
NO_TRUTH = "#"


def _fields(path: Path) -> tuple[str, str]:
    """The aligned OCR and ground-truth lines of one file, checked."""
    found: dict[str, str] = {}
    for lineno, line in enumerate(read_lines(path), start=1):
        for key, tag in TAGS.items():
            if line.startswith(tag):
                found[key] = line[len(tag) :]
                break
        else:
            if line.strip():
                raise InputError(str(path), lineno, f"expected one of the tags {list(TAGS.values())}")
    missing = [TAGS[k].strip() for k in TAGS if k not in found]
    if missing:
        raise InputError(str(path), None, f"missing line(s) {missing}")
    ocr, truth = found["ocr"], found["gs"]
    if len(ocr) != len(truth):
        raise InputError(
            str(path), None, f"aligned lines differ in length ({len(ocr)} vs {len(truth)} characters)"
        )
    return ocr, truth


def _words(ocr: str, truth: str) -> list[tuple[int, int]]:
    """Column spans of the runs between columns where both sides are whitespace."""
    spans = []
    start = None
    for i, (a, b) in enumerate(zip(ocr, truth, strict=True)):
        if a.isspace() and b.isspace():
            if start is not None:
                spans.append((start, i))
                start = None
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(ocr)))
    return spans


def _split(
    run: list[tuple[int, int]], weights: list[int], target: int, maximum: int
) -> list[list[tuple[int, int]]]:
    """Cut a run of word spans into consecutive pieces of about ``target`` words (by ``weights``)."""
    total = sum(weights)
    pieces = max(1, round(total / target))
    while pieces * maximum < total:
        pieces += 1
    size = total / pieces
    chunks: list[list[tuple[int, int]]] = [[]]
    done = 0
    for span, weight in zip(run, weights, strict=True):
        # Close the current chunk once it reaches its share, leaving the remainder to the next ones.
        if chunks[-1] and done + weight / 2 > size * len(chunks) and len(chunks) < pieces:
            chunks.append([])
        chunks[-1].append(span)
        done += weight
    return chunks


def chunk_document(
    ocr: str, truth: str, *, target_words: int = 20, max_words: int = 30, min_words: int = 3, counts: Counter
) -> Iterator[tuple[str, str, int]]:
    """Yield ``(ocr_text, ground_truth, start_column)`` chunks of one aligned document."""
    runs: list[list[tuple[int, int]]] = [[]]
    in_span = False
    for start, end in _words(ocr, truth):
        if NO_TRUTH in truth[start:end]:
            # Consecutive '#' words form one skipped span.
            counts["no_truth_spans"] += not in_span
            counts["no_truth_words"] += 1
            in_span = True
            if runs[-1]:
                runs.append([])
            continue
        in_span = False
        runs[-1].append((start, end))
    for run in runs:
        if not run:
            continue
        weights = [max(1, len(truth[s:e].replace(GAP, " ").split())) for s, e in run]
        if sum(weights) < min_words:
            counts["short_fragments_skipped"] += 1
            counts["short_fragment_words"] += sum(weights)
            continue
        for chunk in _split(run, weights, target_words, max_words):
            start, end = chunk[0][0], chunk[-1][1]
            # Removing gaps can leave two spaces side by side; one space is what the text means.
            hyp = " ".join(ocr[start:end].replace(GAP, "").split())
            ref = " ".join(truth[start:end].replace(GAP, "").split())
            yield hyp, ref, start


def read_icdar2017(
    src: str | os.PathLike,
    *,
    target_words: int = 20,
    max_words: int = 30,
    min_words: int = 3,
    counts: Counter | None = None,
) -> Iterator[Record]:
    """Stream chunk records from the icdar2017 folder, one ``eng_*`` subfolder, or one file.

    Files are visited in a fixed order (subfolder name, then numeric file name). Record ids are
    ``icdar2017-<subfolder>-<file stem>-<chunk>``.
    """
    src = Path(src)
    counts = counts if counts is not None else Counter()
    if src.is_file():
        files = [src]
    elif src.is_dir():
        files = sorted(
            (p for p in src.rglob("*.txt") if p.is_file()),
            key=lambda p: (str(p.parent), int(p.stem) if p.stem.isdigit() else 0, p.stem),
        )
        if not files:
            raise InputError(
                str(src), None, "no .txt files found (expected the icdar2017 folder or eng_* inside)"
            )
    else:
        raise InputError(str(src), None, "no such file or folder")
    for path in files:
        ocr, truth = _fields(path)
        counts["documents"] += 1
        subset = path.parent.name
        chunks = chunk_document(
            ocr, truth, target_words=target_words, max_words=max_words, min_words=min_words, counts=counts
        )
        for k, (hyp, ref, column) in enumerate(chunks, start=1):
            yield Record(
                id=f"icdar2017-{subset}-{path.stem}-{k}",
                task="ocr",
                dataset="icdar2017",
                hypotheses=[hyp],
                references=[ref],
                meta={"subset": subset, "file": path.name, "chunk": k, "column": column},
            )


def prepare_icdar2017(src: str | os.PathLike, out: str | os.PathLike, **chunking: int) -> PrepareReport:
    """Convert ICDAR 2017 files to a records file and return the counts (``chunking``: the word limits)."""
    counts: Counter = Counter()
    return write_prepared("icdar2017", out, read_icdar2017(src, counts=counts, **chunking), counts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``neko prepare icdar2017``."""
    add_io_arguments(parser, "the icdar2017 folder, one eng_* subfolder, or one file")
    parser.add_argument(
        "--target-words", type=int, default=20, help="aimed chunk length in words (default 20)"
    )
    parser.add_argument(
        "--max-words", type=int, default=30, help="longest chunk where a cut exists (default 30)"
    )
    parser.add_argument(
        "--min-words",
        type=int,
        default=3,
        help="shorter clean fragments between '#' spans are skipped (default 3)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``neko prepare icdar2017``."""
    report = prepare_icdar2017(
        args.src, args.out, target_words=args.target_words, max_words=args.max_words, min_words=args.min_words
    )
    print_report(report)
    return 0

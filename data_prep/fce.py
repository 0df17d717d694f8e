"""FCE v2.1 in BEA-2019 JSON (``gec/fce/fce-{train,dev,test}.json``) to sentence-level GEC pairs.

Each line is an essay: ``text`` and ``edits = [[annotator, [[start, end, correction, type], ...]], ...]`` with
character offsets into ``text``. Annotator 0's edits are applied. An edit whose correction is ``None`` is a
detection-only edit (an error was marked but no correction given): like the BEA-2019 ``json_to_m2.py``
script, the text is left as written there and the edit is counted. Insertions at the same offset are applied
in the order given.

Sentences: the source essay is cut at line breaks and after ``. ! ?`` (with closing quotes or brackets)
when the next word does not start in lower case and the word before is not a title such as ``Mr.``. A cut
that an edit spans is dropped, so every edit falls inside one source unit and each unit maps to its corrected
text exactly; a unit may therefore hold two sentences on either side. Runs of whitespace (the corpus leaves
double spaces where words were removed or are to be inserted) become one space on both sides.
"""

from __future__ import annotations

import argparse
import bisect
import os
import re
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

from data_prep.common import PrepareReport, add_io_arguments, print_report, write_prepared
from neko.errors import InputError
from neko.records import Record, iter_json_lines

HELP = "FCE (BEA-2019 JSON essays) -> corrected sentence pairs with annotator 0's edits (task gec)"

# A sentence ends after . ! or ? (and closing quotes/brackets) before whitespace and a word not in lower case.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s+[^\sa-z])")
_TITLES = ("Mr", "Mrs", "Ms", "Dr", "St", "Prof", "Mt")
SPLITS = ("train", "dev", "test")


def split_name(path: str | os.PathLike) -> str | None:
    """``fce-train.json`` -> ``train``; None when the file name names no split."""
    tokens = re.split(r"[^a-z]+", Path(path).name.lower())
    found = [split for split in SPLITS if split in tokens]
    return found[0] if len(found) == 1 else None


def _cuts(text: str) -> list[int]:
    """Candidate sentence boundaries (offsets) of an essay, in order."""
    cuts = set()
    for match in _SENTENCE_END.finditer(text):
        word = re.search(r"(\w+)\W*$", text[max(0, match.start() - 10) : match.start() + 1])
        if match.group().startswith(".") and word and word.group(1) in _TITLES:
            continue
        cuts.add(match.end())
    cuts.update(m.start() for m in re.finditer(r"\n", text))
    return sorted(cuts)


def _apply(text: str, edits: list[tuple[int, int, str]], lo: int, hi: int) -> str:
    """``text[lo:hi]`` with the edits (sorted, inside [lo, hi], non-overlapping) applied.

    The corpus places insertions between two spaces; in a handful of essays an inserted word touches a
    word of the text ("all |the other|stuff"), so a space is added there rather than gluing two words.
    """
    pieces, pos = [], lo
    for start, end, correction in edits:
        pieces.append(text[pos:start])
        if start == end and correction:
            if start > 0 and text[start - 1].isalnum() and correction[0].isalnum():
                correction = " " + correction
            if start < len(text) and text[start].isalnum() and correction[-1].isalnum():
                correction = correction + " "
        pieces.append(correction)
        pos = end
    pieces.append(text[pos:hi])
    return "".join(pieces)


def _spanned(cut: int, edits: list[tuple[int, int, str]]) -> bool:
    """Whether an edit covers text on both sides of ``cut`` (edits sorted and non-overlapping)."""
    i = bisect.bisect_left(edits, cut, key=lambda e: e[0]) - 1
    return i >= 0 and edits[i][1] > cut


def _edits(path: Path, lineno: int, essay: dict[str, Any], counts: Counter) -> list[tuple[int, int, str]]:
    """Annotator 0's correction edits, checked and sorted stably by offset."""
    annotations = essay.get("edits")
    if not isinstance(annotations, list):
        raise InputError(
            str(path), lineno, "missing or malformed 'edits' (expected [[annotator, [edits]], ...])"
        )
    by_annotator = {a[0]: a[1] for a in annotations if isinstance(a, list) and len(a) == 2}
    if annotations and 0 not in by_annotator:
        raise InputError(str(path), lineno, "no edits of annotator 0")
    text_len = len(essay["text"])
    edits = []
    for edit in by_annotator.get(0, []):
        if not (
            isinstance(edit, list)
            and len(edit) >= 3
            and isinstance(edit[0], int)
            and isinstance(edit[1], int)
        ):
            raise InputError(
                str(path), lineno, f"malformed edit {edit!r} (expected [start, end, correction, type])"
            )
        start, end, correction = edit[0], edit[1], edit[2]
        if not 0 <= start <= end <= text_len:
            raise InputError(
                str(path), lineno, f"edit {edit!r} lies outside the text ({text_len} characters)"
            )
        if correction is None:
            counts["detection_only_edits"] += 1
            continue
        if not isinstance(correction, str):
            raise InputError(str(path), lineno, f"edit {edit!r}: correction must be a string or null")
        edits.append((start, end, correction))
    edits.sort(key=lambda e: (e[0], e[1]))
    for before, after in pairwise(edits):
        if after[0] < before[1]:
            raise InputError(str(path), lineno, f"overlapping edits {list(before)} and {list(after)}")
    counts["applied_edits"] += len(edits)
    return edits


def read_fce(
    path: str | os.PathLike, split: str | None = None, *, counts: Counter | None = None
) -> Iterator[Record]:
    """Stream one record per source sentence (unit) of a BEA-2019 FCE JSON-lines file.

    Args:
        path: ``fce-train.json`` etc.
        split: ``train``, ``dev`` or ``test``; by default taken from the file name. The dataset is
            ``fce_<split>``.
        counts: optional counter for essays, edits, changed and unchanged sentences.

    Raises:
        InputError: invalid JSON or UTF-8, a line without ``text``/``edits``, a malformed or overlapping
            edit; the message names the file line (= essay).
    """
    path = Path(path)
    split = split or split_name(path)
    if split is None:
        raise InputError(
            str(path), None, f"cannot tell the split from the file name; pass --split {'|'.join(SPLITS)}"
        )
    dataset = f"fce_{split}"
    counts = counts if counts is not None else Counter()
    for lineno, essay in iter_json_lines(path):
        if not isinstance(essay, dict) or not isinstance(essay.get("text"), str):
            raise InputError(str(path), lineno, "expected an essay object with a 'text' string")
        text = essay["text"]
        edits = _edits(path, lineno, essay, counts)
        essay_id = str(essay.get("id", lineno))
        counts["essays"] += 1
        candidates = _cuts(text)
        cuts = [c for c in candidates if not _spanned(c, edits)]
        counts["sentence_cuts_dropped_inside_edits"] += len(candidates) - len(cuts)
        bounds = [0, *cuts, len(text)]
        sentence = 0
        k = 0
        for lo, hi in pairwise(bounds):
            inside = []
            while k < len(edits) and (edits[k][0] < hi or (edits[k][0] == hi and edits[k][1] == hi)):
                inside.append(edits[k])
                k += 1
            source = " ".join(text[lo:hi].split())
            corrected = " ".join(_apply(text, inside, lo, hi).split())
            if not source and not corrected:
                continue
            if not source:
                # Only possible if an insertion lands in an empty unit; it has nothing to correct.
                counts["units_without_source_skipped"] += 1
                continue
            sentence += 1
            changed = source != corrected
            counts["changed_sentences" if changed else "unchanged_sentences"] += 1
            yield Record(
                id=f"{dataset}-{essay_id}-{sentence}",
                task="gec",
                dataset=dataset,
                hypotheses=[source],
                references=[corrected],
                meta={"essay": essay_id, "sentence": sentence, "line": lineno, "changed": changed},
            )
        if k != len(edits):
            raise InputError(str(path), lineno, "internal error: edits left unassigned to sentences")


def prepare_fce(src: str | os.PathLike, out: str | os.PathLike, split: str | None = None) -> PrepareReport:
    """Convert one FCE JSON-lines file to a records file and return the counts."""
    counts: Counter = Counter()
    return write_prepared("fce", out, read_fce(src, split, counts=counts), counts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``neko prepare fce``."""
    add_io_arguments(parser, "an FCE BEA-2019 JSON-lines file, e.g. ../shared/data/gec/fce/fce-dev.json")
    parser.add_argument(
        "--split", choices=SPLITS, default=None, help="split name (default: from the file name)"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``neko prepare fce``."""
    print_report(prepare_fce(args.src, args.out, args.split))
    return 0

"""HyPoradise ASR n-best JSON (``hyporadise/*.json``) to records, and records back to HyPoradise JSON.

Each file is one JSON array. Four object schemas occur and are all read:

- ``{id, input[5], output, am_score[5]}`` (atis),
- ``{input[5], output, input1, input2}`` (chime4, cv, swbd: ``input1``/``input2`` are prompts built from
  ``input`` and are ignored),
- ``{instruction, input[5], output}`` (ls_clean, ls_other: the instruction is ignored),
- ``{input[5], output, score[5]}`` (wsj_score).

``input`` becomes the hypotheses exactly as given (order and duplicates kept), ``am_score``/``score`` the
scores, ``output`` the single reference. Keys of none of these schemas (another release's extra fields) are
ignored with one warning per file naming them and their first record; an item without ``input`` or
``output`` is an error. Records without an ``id`` get ``<dataset>-<index>``, the same ids
whichever command reads the file (``neko correct``, ``neko eval``, ``neko prepare``).
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from neko.errors import InputError, InputWarning, unknown_keys
from neko.fileio import atomic_output
from neko.readers.base import decode_utf8, read_bytes
from neko.records import Record

KNOWN_KEYS = {"id", "input", "output", "am_score", "score", "instruction", "input1", "input2"}
SCHEMAS = (
    "{id, input, output, am_score}",
    "{input, output, input1, input2}",
    "{instruction, input, output}",
    "{input, output, score}",
)
# File name prefixes that name a split; the split becomes a suffix so that test sets keep the bare name.
_SPLIT_PREFIXES = {"test_": "", "train_": "_train", "dev_": "_dev", "valid_": "_dev"}


def dataset_name(path: str | os.PathLike) -> str:
    """The dataset name a file stands for: ``test_chime4.json`` -> ``chime4``, ``train_atis.json`` -> ``atis_train``."""
    stem = Path(path).name.removesuffix(".json")
    for prefix, suffix in _SPLIT_PREFIXES.items():
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix) :] + suffix
    return stem


def _load_array(name: str, data: bytes) -> list:
    """The top-level JSON array; truncated or invalid JSON names the decoder's line and column."""
    text = decode_utf8(name, data)
    try:
        array = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(name, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(array, list):
        raise InputError(
            name, None, f"expected a JSON array of HyPoradise objects, got a JSON {type(array).__name__}"
        )
    return array


def _check(obj: Any) -> str | None:
    """Why ``obj`` is not a HyPoradise item, or None when it is one."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    if "input" not in obj or "output" not in obj:
        missing = [k for k in ("input", "output") if k not in obj]
        unknown = unknown_keys(obj, KNOWN_KEYS)
        also = f", unknown key(s) {unknown}" if unknown else ""
        return f"missing key(s) {missing}{also}; HyPoradise items are one of {', '.join(SCHEMAS)}"
    hyps = obj["input"]
    if not isinstance(hyps, list) or not all(isinstance(h, str) for h in hyps):
        return "'input' must be a list of strings (the n-best list)"
    if not hyps:
        return "record has no hypotheses ('input' is empty)"
    if not isinstance(obj["output"], str):
        return "'output' must be a string (the reference transcript)"
    if "am_score" in obj and "score" in obj:
        return "both 'am_score' and 'score' given; expected one"
    scores = obj.get("am_score", obj.get("score"))
    if scores is not None:
        if not isinstance(scores, list) or not all(
            isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores
        ):
            return "'am_score'/'score' must be a list of numbers"
        if len(scores) != len(hyps):
            return f"{len(scores)} scores for {len(hyps)} hypotheses"
    if "id" in obj and not isinstance(obj["id"], (str, int)):
        return "'id' must be a string"
    return None


def parse_hyporadise(
    name: str, data: bytes, dataset: str | None = None, *, counts: Counter | None = None
) -> Iterator[Record]:
    """The records of HyPoradise JSON ``data`` read from ``name`` (a path, or ``<stdin>``).

    Raises:
        InputError: invalid UTF-8 or JSON (with line and column), or an item of the wrong schema (with its
            1-based record index).
    """
    dataset = dataset or dataset_name(name)
    counts = counts if counts is not None else Counter()
    extra: dict[str, int] = {}  # key outside the schemas -> the first record that has it
    for index, obj in enumerate(_load_array(name, data), start=1):
        problem = _check(obj)
        if problem:
            raise InputError(name, index, problem, unit="record")
        for key in unknown_keys(obj, KNOWN_KEYS):
            extra.setdefault(key, index)
        scores = obj.get("am_score", obj.get("score"))
        counts["with_scores" if scores is not None else "without_scores"] += 1
        yield Record(
            id=str(obj["id"]) if "id" in obj else f"{dataset}-{index}",
            task="asr",
            dataset=dataset,
            hypotheses=list(obj["input"]),
            scores=[float(s) for s in scores] if scores is not None else None,
            references=[obj["output"]],
            meta={"file": Path(name).name, "index": index},
        )
    if extra:
        warnings.warn(
            InputWarning(
                f"{name}: ignored key(s) outside the HyPoradise schemas: "
                + ", ".join(f"{key!r} (first in record {first})" for key, first in extra.items())
            ),
            stacklevel=2,
        )


def read_hyporadise(
    path: str | os.PathLike, dataset: str | None = None, *, counts: Counter | None = None
) -> Iterator[Record]:
    """Stream the records of one HyPoradise JSON file.

    Args:
        path: a HyPoradise ``.json`` file (a JSON array of objects in one of the four schemas).
        dataset: the dataset name; by default derived from the file name (see ``dataset_name``).
        counts: optional counter that receives per-schema counts.

    Raises:
        InputError: unreadable file, invalid UTF-8 or JSON (with line and column), or an item of the wrong
            schema (with its 1-based record index).
    """
    name, data = read_bytes(str(path))
    return parse_hyporadise(name, data, dataset, counts=counts)


def write_hyporadise(records: Iterable[Record], path: str | os.PathLike) -> int:
    """Write records as a HyPoradise JSON array (``id``, ``input``, ``output``, ``score`` when known).

    ``output`` is the first reference (empty when there is none). One item per line keeps the file diffable;
    it is written to a temporary file and renamed, so a crash never leaves half a file. Returns the count.
    """
    items = []
    for record in records:
        item: dict[str, Any] = {
            "id": record.id,
            "input": list(record.hypotheses),
            "output": record.reference or "",
        }
        if record.scores is not None:
            item["score"] = list(record.scores)
        items.append(json.dumps(item, ensure_ascii=False))
    with atomic_output(path) as out:
        out.write("[\n" + ",\n".join(items) + ("\n" if items else "") + "]\n")
    return len(items)

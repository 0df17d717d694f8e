"""The one typed record that links data preparation, training, correction and evaluation.

A record is one recogniser output to correct: an ASR n-best list, a set of MT candidates, an OCR line or an
ungrammatical sentence, with its references when known. On disk records are JSON Lines, one object a line.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from neko.errors import InputError, unknown_keys


@dataclass
class Record:
    """One item to correct.

    Attributes:
        id: unique within its dataset.
        task: a name in the task registry, ``neko.tasks.TASKS``.
        dataset: name of the dataset the record comes from (the unit of mixing and of routing in training).
        hypotheses: recogniser outputs, best first; one element for OCR and GEC input text.
        scores: optional recogniser scores, aligned with ``hypotheses`` (higher is better).
        source: optional source text (the MT source sentence).
        references: reference texts; several for JFLEG and some WMT pairs; empty when unknown.
        meta: free-form provenance (file, line, condition, recogniser, ...).
    """

    id: str
    task: str
    dataset: str
    hypotheses: list[str]
    scores: list[float] | None = None
    source: str | None = None
    references: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """One JSON line (no trailing newline), keys in field order, non-ASCII kept as is."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @property
    def reference(self) -> str | None:
        """The first reference, or None."""
        return self.references[0] if self.references else None

    @property
    def single(self) -> bool:
        """True when it has one distinct hypothesis (a lone OCR line): ``FusionWeights.single`` decides it."""
        return len(set(self.hypotheses)) == 1

    @property
    def domain(self) -> str:
        """The domain its dataset names, without the split (``domain_of``)."""
        return domain_of(self.dataset)


# Words that name a split, not a domain: ``atis_train`` (a dev part of it) and ``atis`` (test) are one domain.
SPLIT_WORDS = frozenset({"train", "dev", "test", "valid", "validation", "fit", "eval"})


def domain_of(dataset: str) -> str:
    """The domain a dataset name stands for, its split words left out: ``atis_train`` and ``atis`` ->
    ``atis``, ``jfleg_dev`` -> ``jfleg``, ``wmt22_uk-en`` -> ``wmt22_uk_en``. Calibration decisions made
    for one dev source apply to the records of its domain (``FusionWeights.domains``)."""
    parts = [part for part in re.split(r"[_\-. ]+", dataset.lower()) if part]
    kept = [part for part in parts if part not in SPLIT_WORDS]
    return "_".join(kept or parts)


_FIELDS = {"id", "task", "dataset", "hypotheses", "scores", "source", "references", "meta"}


def validate(obj: Any, *, require_hypotheses: bool = True) -> Record:
    """Turn a parsed JSON object into a Record, raising ValueError with a precise message when it is not one."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = unknown_keys(obj, _FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; a record has {sorted(_FIELDS)}")
    for key in ("id", "task", "dataset", "hypotheses"):
        if key not in obj:
            raise ValueError(f"missing field {key!r}")
    if not isinstance(obj["id"], (str, int)):
        raise ValueError("field 'id' must be a string")
    from neko.tasks import TASKS  # late: the tasks import this module for the Record type

    if obj["task"] not in TASKS:
        raise ValueError(f"field 'task' is {obj['task']!r}; choose one of {list(TASKS)}")
    hyps = obj["hypotheses"]
    if not isinstance(hyps, list) or not all(isinstance(h, str) for h in hyps):
        raise ValueError("field 'hypotheses' must be a list of strings")
    if require_hypotheses and not hyps:
        raise ValueError("record has no hypotheses")
    scores = obj.get("scores")
    if scores is not None:
        if not isinstance(scores, list) or not all(isinstance(s, (int, float)) for s in scores):
            raise ValueError("field 'scores' must be a list of numbers or null")
        if len(scores) != len(hyps):
            raise ValueError(f"{len(scores)} scores for {len(hyps)} hypotheses")
    refs = obj.get("references", [])
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise ValueError("field 'references' must be a list of strings")
    if obj.get("source") is not None and not isinstance(obj["source"], str):
        raise ValueError("field 'source' must be a string or null")
    if not isinstance(obj.get("meta", {}), dict):
        raise ValueError("field 'meta' must be an object")
    return Record(
        id=str(obj["id"]),
        task=obj["task"],
        dataset=str(obj["dataset"]),
        hypotheses=list(hyps),
        scores=[float(s) for s in scores] if scores is not None else None,
        source=obj.get("source"),
        references=list(refs),
        meta=dict(obj.get("meta", {})),
    )


def as_record(item: Record | dict[str, Any], default_task: str = "asr") -> Record:
    """A Record from a Record or a dict; a dict may leave out ``task`` (default_task) and ``dataset``."""
    if isinstance(item, Record):
        return item
    if isinstance(item, dict):
        item = {"task": default_task, "dataset": "input", **item}
    return validate(item)


def iter_json_lines(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Yield (1-based line number, parsed object) for each non-blank line; errors name file and line."""
    path = Path(path)
    try:
        # utf-8-sig: a byte order mark (files saved by Windows tools) is dropped, not a JSON error.
        handle = open(path, encoding="utf-8-sig")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(str(path), None, f"cannot open: {exc.strerror}") from None
    with handle:
        lineno = 0
        while True:
            lineno += 1
            try:
                line = handle.readline()
            except UnicodeDecodeError as exc:
                raise InputError(
                    str(path), lineno, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
                ) from None
            if not line:
                return
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(str(path), lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None


def read_records(path: str | os.PathLike, *, require_hypotheses: bool = True) -> Iterator[Record]:
    """Stream the records of a JSONL file, validating each; a bad one raises InputError with file and line."""
    for lineno, obj in iter_json_lines(path):
        try:
            yield validate(obj, require_hypotheses=require_hypotheses)
        except ValueError as exc:
            raise InputError(str(path), lineno, str(exc)) from None


def write_records(path: str | os.PathLike, records: Iterable[Record]) -> int:
    """Write records as JSONL atomically (temporary file, then rename); returns how many were written.

    A path that cannot be written is a one-line NekoError, and a failure leaves no temporary file.
    """
    from neko.fileio import atomic_output

    count = 0
    with atomic_output(path) as out:
        for record in records:
            out.write(record.to_json() + "\n")
            count += 1
    return count


def load_dataset(path: str | os.PathLike, fmt: str = "auto", task: str | None = None) -> Any:
    """Any record file (JSONL, HyPoradise JSON, text) as a ``datasets.Dataset``: Arrow, memory-mapped.

    The file is read and checked by the readers of ``neko correct`` (``neko.readers``); a bad record raises
    its InputError. The Arrow table is cached under ``$NEKO_CACHE/datasets`` keyed by the file's content,
    so a second load maps the cached table. ``meta`` is stored as a JSON string (its keys differ from
    dataset to dataset); ``records_from_dataset`` gives the records back unchanged.
    """
    from neko.readers.dataset import load_dataset as load

    return load(path, fmt, task)


def records_from_dataset(dataset: Any) -> Iterator[Record]:
    """The records of a ``datasets.Dataset`` made by ``load_dataset`` (rows in order)."""
    from neko.readers.dataset import row_to_record

    for row in dataset:
        yield row_to_record(row)

"""Record files as ``datasets.Dataset``: the Arrow form that users of the Hugging Face stack ``map`` over.

The rows are the ``Record`` fields; ``meta`` is a JSON string, because its keys differ between datasets
and an Arrow struct column would force one schema on all of them. The table is written once per file
content (sha256) under ``$NEKO_CACHE/datasets`` and memory-mapped from there.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from neko.paths import cache_dir
from neko.readers.base import read_bytes
from neko.records import Record


def features() -> Any:
    """The Arrow schema of a record row."""
    from datasets import Features, List, Value

    return Features(
        {
            "id": Value("string"),
            "task": Value("string"),
            "dataset": Value("string"),
            "hypotheses": List(Value("string")),
            "scores": List(Value("float64")),
            "source": Value("string"),
            "references": List(Value("string")),
            "meta": Value("string"),
        }
    )


def record_to_row(record: Record) -> dict[str, Any]:
    """One dataset row of a record (``meta`` as a JSON string)."""
    row = asdict(record)
    row["meta"] = json.dumps(record.meta, ensure_ascii=False, sort_keys=True)
    return row


def row_to_record(row: dict[str, Any]) -> Record:
    """The record of one dataset row (the inverse of ``record_to_row``)."""
    return Record(
        id=row["id"],
        task=row["task"],
        dataset=row["dataset"],
        hypotheses=list(row["hypotheses"]),
        scores=None if row["scores"] is None else [float(s) for s in row["scores"]],
        source=row["source"],
        references=list(row["references"]),
        meta=json.loads(row["meta"]) if row["meta"] else {},
    )


def _rows(path: str, fmt: str, task: str | None, digest: str):
    # ``digest`` is unused here: it is part of the generator's arguments so that the datasets cache
    # fingerprint changes with the file content.
    from neko.readers import read_checked

    for record in read_checked(path, fmt, task, unique_ids=False):
        yield record_to_row(record)


def load_dataset(path: str | os.PathLike, fmt: str = "auto", task: str | None = None) -> Any:
    """The records of ``path`` (any input format of ``neko.readers``) as a memory-mapped ``datasets.Dataset``."""
    from datasets import Dataset

    _, data = read_bytes(str(path))
    digest = hashlib.sha256(data).hexdigest()
    return Dataset.from_generator(
        _rows,
        features=features(),
        cache_dir=str(cache_dir("datasets")),
        gen_kwargs={"path": str(path), "fmt": fmt, "task": task, "digest": digest},
    )


class DatasetRecords(Sequence):
    """A ``datasets.Dataset`` of record rows seen as a sequence of ``Record`` (rows read on demand), so that
    a training mixture (``neko.train.mixture.MixtureSource``) can draw from it like from a JSONL file."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Record:  # type: ignore[override]
        return row_to_record(self.dataset[i])

"""``neko eval``: score corrected outputs (``{id, text}`` JSON Lines) against the references of a record file.

The record file is any input of ``neko correct`` that carries references (JSONL records, HyPoradise JSON):
the file given to ``neko correct`` is the file given to ``neko eval --data``.

Predictions are joined to records on ``id``: every record needs exactly one prediction, and every prediction a
record. Each dataset gets a row with its task's metrics for the predictions (``wer``) and, for comparison,
the same metrics for the recogniser's 1-best (``wer_1best``; for GEC the uncorrected sentence).
"""

from __future__ import annotations

import os
from typing import Any

from neko.baselines.report import group_by_dataset, scoring
from neko.errors import InputError
from neko.metrics import DEFAULT_NORMALIZERS, score_corpus
from neko.metrics.normalizers import get_normalizer
from neko.records import iter_json_lines

_SHOWN_MISSING = 5


def read_predictions(path: str | os.PathLike, known_ids: set[str], data_path: str) -> dict[str, str]:
    """``{id: text}`` from a predictions file; a bad line, a repeated id or an unknown id names file and line."""
    predictions: dict[str, str] = {}
    for lineno, obj in iter_json_lines(path):
        if not isinstance(obj, dict) or "id" not in obj or "text" not in obj:
            raise InputError(str(path), lineno, 'expected an object with "id" and "text"')
        if not isinstance(obj["text"], str):
            raise InputError(str(path), lineno, f'"text" must be a string, got {type(obj["text"]).__name__}')
        if not isinstance(obj["id"], (str, int)):
            raise InputError(str(path), lineno, '"id" must be a string')
        key = str(obj["id"])
        if key not in known_ids:
            raise InputError(str(path), lineno, f"unknown id {key!r}: no such record in {data_path}")
        if key in predictions:
            raise InputError(str(path), lineno, f"second prediction for id {key!r}")
        predictions[key] = obj["text"]
    return predictions


def evaluate(
    pred_path: str | os.PathLike, data_path: str | os.PathLike, normalizer: str | None = None
) -> list[dict[str, Any]]:
    """One row per dataset: ``dataset, task, n``, the task's metrics and their ``_1best`` twins, normaliser, signature.

    ``normalizer`` None uses each task's default (``neko.metrics.DEFAULT_NORMALIZERS``).
    """
    if normalizer is not None:
        get_normalizer(normalizer)  # fail on a bad name before reading anything
    # Predictions are joined on id: a repeated id in the data is an error, not a warning.
    groups = group_by_dataset(data_path, unique_ids=True)
    ids = {record.id for records in groups.values() for record in records}
    predictions = read_predictions(pred_path, ids, str(data_path))
    missing = [record.id for records in groups.values() for record in records if record.id not in predictions]
    if missing:
        shown = ", ".join(repr(i) for i in missing[:_SHOWN_MISSING]) + (
            ", ..." if len(missing) > _SHOWN_MISSING else ""
        )
        raise InputError(
            str(pred_path), None, f"no prediction for {len(missing)} record(s) of {data_path}: {shown}"
        )
    rows = []
    for dataset, records in groups.items():
        task = records[0].task
        name = normalizer or DEFAULT_NORMALIZERS[task]
        with scoring(data_path, dataset):
            scored = score_corpus(task, [predictions[r.id] for r in records], records, name)
            baseline = score_corpus(task, [r.hypotheses[0] for r in records], records, name)
        row: dict[str, Any] = {"dataset": dataset, "task": task, "n": len(records)}
        for metric in scored:
            if metric in ("n", "normalizer", "signature") or metric.endswith("_counts"):
                continue
            row[metric] = scored[metric]
            row[f"{metric}_1best"] = baseline[metric]
        row["normalizer"] = name
        row["signature"] = scored["signature"]
        rows.append(row)
    return rows

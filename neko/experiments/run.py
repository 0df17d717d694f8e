"""Run one experiment config into one result file (``results/<table>/<row>.json``).

A result holds the resolved config, the hashes of the config, the model and every data file, the metric
signature and normaliser, the number of items scored and, under ``timing``, wall-clock seconds (the only
field that changes between identical runs; tables never print it).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

from neko.experiments.config import ExperimentConfig, load_experiment
from neko.experiments.methods import get_method
from neko.fileio import atomic_write, sha256_file, sha256_folder
from neko.records import Record, read_records


def subset(records: list[Record], limit: int | None, seed: int, dataset: str) -> list[Record]:
    """A fixed, seeded subset of ``limit`` records (in file order), or all of them when limit is None."""
    if not limit or limit >= len(records):
        return records
    rng = random.Random(f"{seed}:{dataset}")
    keep = sorted(rng.sample(range(len(records)), limit))
    return [records[i] for i in keep]


def model_identity(config: ExperimentConfig) -> dict[str, Any] | None:
    """Name and content hash of the model a row uses (None for non-neural rows)."""
    if config.method not in ("neko", "lm_rerank"):
        return None
    if config.method == "lm_rerank":
        from neko.model.base import base_sha256, resolve_base

        name = config.model or "smollm2-135m"
        return {"name": name, "sha256": base_sha256(resolve_base(name))}
    from neko.infer.corrector import default_model_dir

    folder = default_model_dir() if config.model in (None, "default") else Path(config.model).expanduser()
    return {"name": config.model or "default", "sha256": sha256_folder(folder) if folder.is_dir() else None}


def run_experiment(
    config_path: str | os.PathLike,
    prepared: str | os.PathLike,
    *,
    limit: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate one row on every dataset it names that exists in ``prepared``; absent ones are noted."""
    from neko.metrics import score_corpus

    config = load_experiment(config_path)
    result: dict[str, Any] = {
        "table": config.table,
        "row": config.row,
        "config": config.to_dict(),
        "config_sha256": sha256_file(config_path),
        "limit": limit,
        "seed": seed,
        "datasets": {},
        "timing": {},
    }
    if config.method == "quoted":
        result["quoted"] = True
        result["datasets"] = {name: {"value": value} for name, value in config.quoted.items()}
        return result
    method = get_method(config.method)
    result["model"] = model_identity(config)
    if result["model"] and result["model"]["sha256"] is None:
        # An untrained model is a row to fill later, not a failure of the whole table.
        reason = f"model not found: {config.model} (train it first: see docs/TRAINING.md)"
        result["datasets"] = {name: {"skipped": reason} for name in config.datasets}
        return result
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}"
    for name in config.datasets:
        path = Path(prepared) / f"{name}.jsonl"
        if not path.is_file():
            result["datasets"][name] = {"skipped": f"absent: {path}"}
            continue
        records = subset(list(read_records(path)), limit, seed, name)
        started = time.perf_counter()
        texts, extra = method(records, config)
        result["timing"][name] = round(time.perf_counter() - started, 3)
        scored = score_corpus(records[0].task, texts, records, config.normalizer)
        scored.update(extra)
        scored["task"] = records[0].task
        scored["data_sha256"] = sha256_file(path)
        scored["ids_sha256"] = hashlib.sha256("\n".join(r.id for r in records).encode()).hexdigest()
        result["datasets"][name] = scored
    return result


def write_result(result: dict[str, Any], out: str | os.PathLike) -> Path:
    """Write a result as sorted, indented JSON, whole or not at all (a killed run leaves no result)."""
    return atomic_write(out, json.dumps(result, indent=1, sort_keys=True, ensure_ascii=False) + "\n")

"""One experiment = one row of one table, stored as YAML in ``configs/experiments/<table>/<row>.yaml``."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from neko.errors import ConfigError, check_keys
from neko.infer.config import Mode


@dataclass
class ExperimentConfig:
    """A table row: which method runs on which prepared datasets, scored how.

    Attributes:
        table: the table the row belongs to (``hyporadise``, ``wmt23``, ``ocr``, ``gec``, ``ablation``).
        row: the row label shown in the table.
        order: position of the row in its table (ascending).
        method: a name from ``neko.experiments.methods.METHODS``, or ``quoted`` for figures from a paper.
        datasets: prepared record files (names without ``.jsonl`` in the prepared folder), one column each.
        normalizer: text normaliser for scoring (None: the task's default).
        model: for model methods: ``default`` (the bundled corrector), a checkpoint folder, or a packaged
            base model name (``lm_rerank``).
        mode: corrector mode for ``neko`` rows: ``generate``, ``select`` or ``auto``.
        route_task: for ``neko`` rows: force each record's task expert (``InferConfig.route_task``) instead of
            letting the router choose, as the NeKo paper does at inference and every other row does.
        batch_size: corrector batch size.
        quoted: for ``quoted`` rows: dataset -> figure as printed in the source (percent for WER).
        source: for ``quoted`` rows: the paper and table the figures come from.
        note: one line printed under the table.
        predictions: for ``predictions`` rows: the output file of a ``neko correct`` command (its records
            are matched by id to the row's one dataset).
    """

    table: str
    row: str
    method: str
    datasets: list[str]
    order: int = 0
    normalizer: str | None = None
    model: str | None = None
    mode: Mode | None = None
    route_task: bool = False
    batch_size: int = 16
    quoted: dict[str, float] = field(default_factory=dict)
    source: str | None = None
    note: str | None = None
    predictions: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, for the result file."""
        return asdict(self)


def load_experiment(path: str | os.PathLike) -> ExperimentConfig:
    """Read an experiment YAML; unknown or missing keys raise ConfigError naming the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read experiment config: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an experiment config is a mapping")
    check_keys(raw, [f.name for f in fields(ExperimentConfig)], str(path))
    try:
        return ExperimentConfig(**raw)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None

"""``neko adapt``: fit the corrector to one recogniser's own data in minutes on a CPU.

Small models correct well in domain and poorly zero-shot, so the gain belongs to the user's own data, with a
gate calibrated on it. A recipe of named steps, each a function:

1. ``load_examples``: the training files, in any format ``neko correct`` reads, as records with references;
2. ``split_dev``: the given dev files, or a seeded dev split carved off the training records (never trained on);
3. ``adapt_recipe``: a training recipe (``RunConfig``) with the defaults below, run by the ordinary trainer
   (token-budget bucketing, exact ``--resume``, a wall-time budget that fits the schedule to the minutes);
4. ``calibrate_gate``: the ``auto`` guard of the trained corrector, fitted per task on the dev split so that
   it is never worse than the input there;
5. the report ``adapt.json`` beside the model files in the output folder, which ``neko correct --model DIR``
   and ``Corrector.from_pretrained(DIR)`` load.

Defaults (docs/ADAPT.md has the measurements behind them): a fresh LoRA (r 16 on attention and MLP) on the
dense base of the bundled model, 1,024-token micro-batches, lr 2e-3 with a cosine schedule. A corrector
folder given as ``model`` is continued instead (its architecture, its LoRA as the starting point).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from neko.errors import ConfigError, InputError, NekoError
from neko.model.config import LoraSettings, ModelConfig
from neko.records import Record, write_records
from neko.tasks.base import PromptStyle
from neko.train.config import DataSource, RunConfig, TrainConfig

DEV_FRACTION = 0.1
MAX_DEV = 200  # enough to fit a gate; every dev record is decoded once, so more costs calibration time
DEFAULT_MINUTES = 15.0
# The guard may edit only when its dev gain holds on 95% of bootstrap samples of the dev split: fitted on the
# 30 dev records of a 300-list run, the best thresholds took 125 held-out records from 23.86 to 25.46 WER.
CONFIDENCE = 0.95
REPORT = "adapt.json"
DEFAULT_PROMPT: PromptStyle = "full"


@dataclass
class AdaptReport:
    """What ``adapt`` did: sizes, training, and the dev figures of each task before and after.

    Attributes:
        model_dir: the adapted corrector (load it with ``Corrector.from_pretrained``).
        start: what training started from (a base model name or a corrector folder).
        train_records, dev_records: sizes of the two disjoint splits.
        dev_source: ``carved`` (seeded split of the training files) or the dev file names.
        steps, train_minutes, tokens: the training run (steps may stop short at the time budget).
        dev: per task: ``metric``, ``n``, ``input`` (the first hypotheses), ``generated`` (the model alone),
            ``guarded`` (the calibrated guard: what ``neko correct`` returns, also as ``adapted``), ``fused``
            (the evidence fusion's in-sample dev figure, for information: not used), ``fallback_rate`` and
            ``gate`` (the guard's thresholds).
    """

    model_dir: str
    start: str
    train_records: int
    dev_records: int
    dev_source: str
    steps: int
    train_minutes: float
    tokens: int
    dev: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_examples(paths: list[str], fmt: str = "auto", task: str | None = None) -> list[Record]:
    """The records of ``paths`` (any ``neko correct`` input format); each must carry a reference."""
    from neko.readers import read_items

    records: list[Record] = []
    for path in paths:
        _, items = read_items(path, fmt, task)
        for item in items:
            if item.error is not None:
                raise item.error
            if not item.record.references or not item.record.references[0].strip():
                raise InputError(path, item.where, "no reference: adapt trains on corrected examples")
            records.append(item.record)
    if not records:
        raise ConfigError(f"no training records in {', '.join(paths)}")
    return records


def split_dev(
    records: list[Record], fraction: float = DEV_FRACTION, limit: int = MAX_DEV, seed: int = 0
) -> tuple[list[Record], list[Record]]:
    """(train, dev): a seeded pick of ``fraction`` of the records (at most ``limit``, at least one) as dev;
    the two are disjoint and each keeps the input order."""
    if len(records) < 2:
        raise ConfigError("adapt needs at least 2 records to carve a dev split (or give --dev files)")
    size = min(limit, max(1, round(fraction * len(records))))
    chosen = set(random.Random(seed).sample(range(len(records)), size))
    train = [r for i, r in enumerate(records) if i not in chosen]
    dev = [r for i, r in enumerate(records) if i in chosen]
    return train, dev


def start_point(model: str | None) -> tuple[ModelConfig, str]:
    """(model config, init_from) for ``model``: None = a fresh dense LoRA on the bundled model's base;
    a base name or folder = a fresh dense LoRA on it; a corrector folder = its config, continued."""
    from neko.infer.corrector import default_model_dir
    from neko.model.io import CONFIG_FILE, read_config

    if model is not None and (Path(model) / CONFIG_FILE).is_file():
        config, _ = read_config(model)
        return config, str(model)
    base = read_config(default_model_dir())[0].base if model is None else model
    lora = LoraSettings(r=16, alpha=32, attention=True, experts=True, train_router=False)
    return ModelConfig(base=base, routing="dense", lora=lora), ""


def adapt_recipe(
    out: Path,
    model: str | None = None,
    minutes: float | None = DEFAULT_MINUTES,
    max_steps: int | None = None,
    seed: int = 0,
    threads: int | None = None,
    prompt: PromptStyle | None = None,
) -> RunConfig:
    """The training recipe of an adaptation into ``out`` (data in ``out/data``, the run in ``out/run``).

    ``prompt``: the prompt style of a fresh LoRA (default ``DEFAULT_PROMPT``); a continued corrector keeps
    the style it was trained on (another one is an error)."""
    model_config, init_from = start_point(model)
    if init_from and prompt is not None and prompt != model_config.prompt:
        raise ConfigError(
            f"{model} was trained on the {model_config.prompt!r} prompt; a continued corrector keeps it "
            f"(--prompt {prompt} needs a fresh start: a base model)"
        )
    if not init_from:
        model_config = replace(model_config, prompt=prompt or DEFAULT_PROMPT)
    train = TrainConfig(
        data=[DataSource(path=str(out / "data" / "train.jsonl"), name="adapt")],
        max_tokens=1024,
        max_len=256,
        lr=2e-3,
        warmup_steps=10,
        schedule="cosine",
        # A time budget alone fits the step count; this is only its ceiling.
        max_steps=max_steps or 100_000,
        budget_minutes=minutes,
        save_every=20,
        seed=seed,
        threads=threads or os.cpu_count() or 1,
    )
    return RunConfig(model=model_config, train=train, output_dir=str(out / "run"), init_from=init_from)


def calibrate_gate(model_dir: Path, dev: list[Record], threads: int | None = None) -> dict[str, dict]:
    """Fit the ``auto`` gate of the corrector in ``model_dir`` per task on ``dev``; write it into the folder."""
    from neko.infer.calibrate import calibrate_tasks, guard_dict, write_task_guards
    from neko.infer.corrector import Corrector

    corrector = Corrector.from_pretrained(model_dir, threads=threads)
    by_task: dict[str, list[Record]] = {}
    for record in dev:
        by_task.setdefault(record.task, []).append(record)
    results, figures = [], {}
    fitted = calibrate_tasks(corrector, dict(sorted(by_task.items())), sources=(), confidence=CONFIDENCE)
    for result in fitted:
        task = result.task
        # The gate is the guard: the evidence fusion's weights, fitted in-sample on a dev split of this size,
        # overfit (Whisper-base telephone run, docs/ADAPT.md: fusion 32.2 -> 26.9 WER on its 30 dev records,
        # 23.9 -> 26.6 on 125 held-out ones). Its dev figure stays in the report.
        fused = result.fused
        result = replace(result, fusion=None)
        results.append(result)
        figures[task] = {
            "metric": result.metric,
            "n": result.n,
            "input": result.first,
            "generated": result.generated,
            "adapted": result.guarded,  # what ``neko correct`` returns
            "guarded": result.guarded,
            "fused": fused,  # not used: see above
            "fallback_rate": result.fallback_rate,
            "gate": guard_dict(result.guard),
            "gate_confidence": result.confidence,
        }
    write_task_guards(model_dir, results, {task: ["dev.jsonl"] for task in by_task})
    return figures


def _prepare_data(
    out: Path, train: list[str], dev: list[str] | None, fmt: str, task: str | None, seed: int
) -> tuple[list[Record], str]:
    """Write ``out/data/{train,dev}.jsonl`` (a resumed run keeps them); returns (dev records, dev source)."""
    from neko.records import read_records

    data = out / "data"
    inputs = {
        "train": [str(Path(p).resolve()) for p in train],
        "dev": dev and [str(Path(p).resolve()) for p in dev],
    }
    stamp = data / "inputs.json"
    if stamp.is_file():
        if json.loads(stamp.read_text()) != {**inputs, "format": fmt, "task": task, "seed": seed}:
            raise ConfigError(f"{out} holds an adaptation of other inputs: choose another --out")
        return list(read_records(data / "dev.jsonl")), "carved" if not dev else ", ".join(map(_name, dev))
    records = load_examples(train, fmt, task)
    if dev:
        train_records, dev_records = records, load_examples(dev, fmt, task)
    else:
        train_records, dev_records = split_dev(records, seed=seed)
    data.mkdir(parents=True, exist_ok=True)
    write_records(data / "train.jsonl", train_records)
    write_records(data / "dev.jsonl", dev_records)
    stamp.write_text(json.dumps({**inputs, "format": fmt, "task": task, "seed": seed}) + "\n")
    return dev_records, "carved" if not dev else ", ".join(map(_name, dev))


def _name(path: str) -> str:
    return Path(path).name


def _install_model(final: Path, out: Path) -> None:
    """Move the trained corrector's files from the run's ``final/`` to the top of ``out``."""
    for item in final.iterdir():
        target = out / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    final.rmdir()


def adapt(
    train: list[str] | str,
    out: str | os.PathLike,
    dev: list[str] | None = None,
    format: str = "auto",
    task: str | None = None,
    model: str | None = None,
    minutes: float | None = None,
    max_steps: int | None = None,
    resume: bool = False,
    seed: int = 0,
    threads: int | None = None,
    prompt: PromptStyle | None = None,
) -> AdaptReport:
    """Adapt a corrector to ``train`` (files of records with references) and write it into ``out``.

    Args:
        train: training files (JSONL records, HyPoradise JSON; anything ``neko correct`` reads).
        out: the output folder: model files, ``adapt.json``, ``data/`` (the splits) and ``run/`` (checkpoints).
        dev: dev files; default: a seeded split of ``train`` (10%, at most 200 records), never trained on.
        format, task: as ``neko correct``'s ``--format`` and ``--task``.
        model: what to start from: None (a fresh LoRA on the bundled model's base), a base name or folder,
            or a corrector folder (continued).
        minutes: wall-time budget of training (default 15 when ``max_steps`` is not given either).
        max_steps: optimiser steps (with ``minutes``: the most it may take).
        resume: continue a killed adaptation in ``out`` exactly (same inputs required).
        seed: seed of the dev split, the data order and the initialisation.
        threads: torch CPU threads (default: all cores).
        prompt: prompt style of a fresh LoRA (``neko.tasks.base.PROMPT_STYLES``; default ``DEFAULT_PROMPT``).
    """
    from neko.train.trainer import train as run_training

    out = Path(out)
    if minutes is None and max_steps is None:
        minutes = DEFAULT_MINUTES
    done = _finished(out, resume)
    if done is not None:
        return done
    paths = [train] if isinstance(train, str) else list(train)
    dev_records, dev_source = _prepare_data(out, paths, dev, format, task, seed)
    config = adapt_recipe(out, model, minutes, max_steps, seed, threads, prompt)
    started = time.perf_counter()
    has_checkpoint = (out / "run" / "checkpoints").is_dir() and any((out / "run" / "checkpoints").iterdir())
    final = run_training(config, resume=resume and has_checkpoint)
    state = json.loads((final / "neko_config.json").read_text())["training"]
    _install_model(final, out)
    report = AdaptReport(
        model_dir=str(out),
        start=config.init_from or config.model.base,
        train_records=sum(1 for _ in open(out / "data" / "train.jsonl", encoding="utf-8")),
        dev_records=len(dev_records),
        dev_source=dev_source,
        steps=state["steps"],
        train_minutes=round(state.get("elapsed", time.perf_counter() - started) / 60.0, 2),
        tokens=state["tokens"],
        dev=calibrate_gate(out, dev_records, threads),
    )
    (out / REPORT).write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report


def _finished(out: Path, resume: bool) -> AdaptReport | None:
    """The report of a finished adaptation in ``out`` (with ``resume``); an error where ``out`` may not be
    used; None where the work is still to do."""
    if (out / REPORT).is_file():
        if resume:
            return AdaptReport(**json.loads((out / REPORT).read_text()))
        raise NekoError(f"{out} already holds an adapted model: choose another --out")
    if not resume and (out / "run").exists():
        raise NekoError(f"{out} holds an interrupted adaptation: add --resume to continue it, or delete it")
    return None

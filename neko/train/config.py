"""The training recipe as nested typed dataclasses; YAML only stores it.

``load_config`` reads a YAML recipe, applies dotted overrides (``train.lr=1e-4``, ``model.lora.r=8``,
``train.data.0.weight=2``; values parsed as YAML scalars) and builds the dataclasses, rejecting any key they
do not have with a ``ConfigError`` naming it. ``save_config`` writes the fully resolved recipe, which is
stored next to every checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from neko.errors import ConfigError, unknown_keys
from neko.model.config import ModelConfig
from neko.paths import cache_dir

Schedule = Literal["linear", "cosine", "constant_with_warmup"]
SCHEDULES: tuple[Schedule, ...] = typing.get_args(Schedule)
MixedPrecision = Literal["no", "bf16", "fp16"]


@dataclass
class DataSource:
    """One dataset of the mixture: a JSONL path or glob (``~`` allowed), an optional name and weight, and
    ``exclude``: ``{meta key: glob}`` of records to leave out (``{voice: "espeak:*"}``)."""

    path: str
    name: str | None = None
    weight: float = 1.0
    exclude: dict[str, str] | None = None


@dataclass
class TrainConfig:
    """Data, batching, optimisation, evaluation and checkpointing of one run.

    Attributes:
        data: the training mixture (never a test split).
        alpha: mixture exponent, ``p_d ~ weight_d * n_d ** alpha`` (1 proportional, 0 uniform).
        max_tokens: token budget of one micro-batch (padded tokens, with the attention penalty).
        quadratic_length: attention penalty scale in the batch cost (None: no penalty).
        max_len: longest example in tokens (longer prompts are cut in the middle, see ``encode_example``).
        num_buckets: length buckets (quantiles of ``bucket_sample`` lengths, tails split further).
        bucket_sample: how many records are tokenised to place the bucket edges.
        buffer_size: most records held in the buckets.
        lr, weight_decay, warmup_steps, schedule, max_grad_norm: AdamW and transformers' scheduler.
        grad_accum: micro-batches per optimiser step.
        max_steps: optimiser steps of the run (with ``budget_minutes``: the most it may take).
        budget_minutes: wall-time budget of the training steps (dev evaluation and saving not counted), summed
            over resumed runs. After the first steps the run measures its step time and fits ``max_steps``
            (and so the learning-rate schedule) to the budget; it stops and saves when the budget is spent.
        eval_every, save_every, log_every: in optimiser steps (0 = never; a final save always happens).
        dev: held-out records for the dev loss and decoding (a dev split, never a test split).
        dev_size: dev records of each dev source scored with greedy decoding (corpus-level metric per task),
            at the first step of a fresh run, every ``eval_every`` steps and at the last step.
        dev_loss_size: dev records of each dev source in the dev loss.
        max_new_tokens: decoding limit for the dev metrics.
        rank_loss_weight: weight of the n-best ranking loss added to the LM loss (``neko.train.ranking``;
            0 = off): the model's scores of the shown hypotheses against their distance to the reference.
        rank_temperature: target of the ranking loss = softmax(-word errors / rank_temperature).
        seed, threads: RNG seed; torch CPU threads.
    """

    data: list[DataSource] = field(default_factory=list)
    alpha: float = 0.5
    max_tokens: int = 4096
    quadratic_length: int | None = 2048
    max_len: int = 512
    num_buckets: int = 30
    bucket_sample: int = 1000
    buffer_size: int = 2000
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 20
    schedule: Schedule = "cosine"
    max_grad_norm: float = 1.0
    grad_accum: int = 1
    max_steps: int = 100
    budget_minutes: float | None = None
    eval_every: int = 0
    save_every: int = 50
    log_every: int = 1
    dev: list[DataSource] = field(default_factory=list)
    dev_size: int = 32
    dev_loss_size: int = 64
    max_new_tokens: int = 64
    rank_loss_weight: float = 0.0
    rank_temperature: float = 1.0
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"train.schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        for name in ("max_tokens", "max_len", "grad_accum", "max_steps", "num_buckets", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.budget_minutes is not None and self.budget_minutes <= 0:
            raise ConfigError(f"train.budget_minutes must be positive, got {self.budget_minutes}")
        if self.max_tokens < self.max_len:
            raise ConfigError(f"train.max_tokens={self.max_tokens} is below train.max_len={self.max_len}")
        if self.rank_loss_weight < 0 or self.rank_temperature <= 0:
            raise ConfigError("train.rank_loss_weight must be >= 0 and train.rank_temperature > 0")


@dataclass
class RunConfig:
    """A recipe: the model, its training, where the run lives and how accelerate runs it.

    Attributes:
        model: the corrector model (see ``neko.model.config.ModelConfig``).
        train: the training loop.
        output_dir: the run folder (checkpoints, metrics.jsonl, final/); default ``~/.cache/neko/runs/<recipe>``.
        mixed_precision: accelerate's ``no`` (fp32, the only fast choice on CPU), ``bf16`` or ``fp16``; under
            DeepSpeed the JSON config decides.
        gradient_checkpointing: trade compute for activation memory (the large GPU recipes).
        compile_experts: run the MoE's shared experts through ``torch.compile``
            (`neko.model.shared_training.compile_trainable_experts`; same results, fewer passes over memory;
            eager where compiling fails).
        init_from: a corrector folder whose trained weights (LoRA adapter, routers) start a fresh run
            (its model config must be this recipe's); empty: fresh LoRA. ``--resume`` ignores it.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str = ""
    mixed_precision: MixedPrecision = "no"
    gradient_checkpointing: bool = False
    compile_experts: bool = True
    init_from: str = ""


def _build(cls: type, data: Any, where: str) -> Any:
    """A dataclass of type ``cls`` from plain data, with errors that name the dotted key."""
    if cls is ModelConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping")
        hints = typing.get_type_hints(ModelConfig)
        data = {
            k: _convert(float, v, f"{where}.{k}") if hints.get(k) is float else v for k, v in data.items()
        }
        try:
            return ModelConfig.from_dict(data)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = unknown_keys(data, names)
    if unknown:  # the first one, as a dotted key: the CLI prints one line
        raise ConfigError(
            f"unknown config key {where + '.' if where else ''}{unknown[0]}; valid: {', '.join(sorted(names))}"
        )
    kwargs = {
        key: _convert(hints[key], value, f"{where}.{key}" if where else key) for key, value in data.items()
    }
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    """Check / convert one value against its type hint (dataclasses, lists of dataclasses, scalars)."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        (inner,) = typing.get_args(hint)
        return [_convert(inner, v, f"{where}.{i}") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{where}: expected a mapping of strings, got {value!r}")
        return {str(k): v for k, v in value.items()}
    if typing.get_origin(hint) is typing.Literal:
        # YAML 1.1 reads a bare ``no`` as false: ``mixed_precision: no`` means the choice "no".
        choice = "no" if value is False and "no" in typing.get_args(hint) else value
        if choice not in typing.get_args(hint):
            raise ConfigError(
                f"{where}: expected one of {', '.join(map(str, typing.get_args(hint)))}, got {value!r}"
            )
        return choice
    if hint is float and not isinstance(value, bool):
        # PyYAML follows YAML 1.1, where ``3e-4`` (no dot) is a string: accept it as the float it means.
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if hint in (int, str, bool) and not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _apply_override(data: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in nested dicts / lists (a numeric part indexes a list)."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} is not KEY=VALUE")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ConfigError(
                f"override {key!r}: {'.'.join(parts[: depth + 1])} is not a mapping or list index"
            )
    last = parts[-1]
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"override {key!r}: cannot set {last!r} there")


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a recipe YAML, apply dotted ``KEY=VALUE`` overrides and build the typed config."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    for override in overrides:
        _apply_override(data, override)
    try:
        config = _build(RunConfig, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not config.output_dir:
        config.output_dir = str(cache_dir("runs") / path.stem)
    config.output_dir = os.path.expanduser(config.output_dir)
    return config


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """Plain data of the fully resolved config."""
    return dataclasses.asdict(config)


def save_config(config: RunConfig, path: str | os.PathLike) -> Path:
    """Write the fully resolved config as YAML (``load_config`` reads it back to an equal config)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")
    return path

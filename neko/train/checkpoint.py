"""Checkpoints that resume a run exactly: trainable weights, optimiser, scheduler, sampler and RNG states.

Layout of ``<output_dir>/checkpoints/step-000050/``::

    trainable.safetensors   the adapter and router weights (frozen base weights are rebuilt from the base)
    state.pt                optimiser, scheduler, sampler/mixture state, RNG states, step and token count
    config.yaml             the fully resolved recipe
    deepspeed/              under DeepSpeed only: accelerate's save_state (sharded optimiser and weights)

A checkpoint is written into a temporary folder and renamed, so a run killed mid-save leaves the previous
checkpoint as the latest complete one.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

from neko.errors import ConfigError
from neko.fileio import replace_folder
from neko.train.config import RunConfig, config_to_dict, save_config

PREFIX = "step-"

# Recipe keys a resumed run may change: where and how fast it runs and what it logs, not what it learns.
RESUMABLE_CHANGES = frozenset(
    {
        "output_dir",
        "gradient_checkpointing",
        "compile_experts",
        "init_from",
        "train.threads",
        "train.eval_every",
        "train.save_every",
        "train.log_every",
        "train.dev",
        "train.dev_size",
        "train.dev_loss_size",
        "train.max_new_tokens",
    }
)


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    """The folder of the checkpoint after ``step`` optimiser steps."""
    return Path(output_dir) / "checkpoints" / f"{PREFIX}{step:06d}"


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the most steps, or None."""
    root = Path(output_dir) / "checkpoints"
    found = sorted(p for p in root.glob(f"{PREFIX}*") if (p / "state.pt").is_file()) if root.is_dir() else []
    return found[-1] if found else None


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}`` (lists stay whole)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def recipe_changes(checkpoint: Path, config: RunConfig) -> list[str]:
    """How ``config`` differs from the recipe that wrote ``checkpoint`` (``key: old -> new``), leaving out
    ``RESUMABLE_CHANGES``; empty when the checkpoint does not record its recipe.

    Under ``train.budget_minutes`` the saved ``max_steps`` is the count fitted to the budget, which the
    checkpoint's state restores, so it is not compared; nor is ``model.base_sha256`` while the recipe leaves
    it to be filled in when the base loads.
    """
    path = checkpoint / "config.yaml"
    if not path.is_file():
        return []
    saved = _flatten(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    now = _flatten(config_to_dict(config))
    skip = set(RESUMABLE_CHANGES)
    if config.train.budget_minutes is not None:
        skip.add("train.max_steps")
    if config.model.base_sha256 is None:
        skip.add("model.base_sha256")
    return [
        f"{key}: {saved.get(key)!r} -> {now.get(key)!r}"
        for key in sorted(set(saved) | set(now))
        if key not in skip and saved.get(key) != now.get(key)
    ]


def rng_states() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and, when present, CUDA) generator states."""
    import numpy as np
    import torch

    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned."""
    import numpy as np
    import torch

    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def trainable_state(accelerator: Any, model: Any) -> dict[str, Any]:
    """Trainable parameters by name, gathered from every shard (ZeRO-3) and copied to CPU."""
    unwrapped = accelerator.unwrap_model(model)
    names = {n for n, p in unwrapped.named_parameters() if p.requires_grad}
    full = accelerator.get_state_dict(model)
    return {n: t.detach().cpu().contiguous() for n, t in full.items() if n in names}


def save_checkpoint(
    accelerator: Any,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    sampler: Any,
    config: RunConfig,
    step: int,
    extra: dict,
) -> Path:
    """Write the checkpoint after ``step`` (every process must call it: gathering is collective)."""
    import torch
    from safetensors.torch import save_file

    final = checkpoint_dir(config.output_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    deepspeed = accelerator.distributed_type.value == "DEEPSPEED"
    weights = trainable_state(accelerator, model)
    if deepspeed:
        accelerator.save_state(str(tmp / "deepspeed"))
        accelerator.wait_for_everyone()  # every rank has written its shard before the folder is renamed
    if accelerator.is_main_process:
        tmp.mkdir(parents=True, exist_ok=True)
        save_file(weights, str(tmp / "trainable.safetensors"))
        state = {
            "step": step,
            "optimizer": None if deepspeed else optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "sampler": sampler.state_dict(),
            "rng": rng_states(),
            **extra,
        }
        torch.save(state, tmp / "state.pt")
        save_config(config, tmp / "config.yaml")
        replace_folder(tmp, final)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(
    path: Path, accelerator: Any, model: Any, optimizer: Any, scheduler: Any, sampler: Any
) -> dict[str, Any]:
    """Restore everything ``save_checkpoint`` wrote; returns the state (``step`` and the extras)."""
    import torch
    from safetensors.torch import load_file

    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)  # our own file
    if (path / "deepspeed").is_dir():
        accelerator.load_state(str(path / "deepspeed"))
    else:
        weights = load_file(str(path / "trainable.safetensors"))
        unwrapped = accelerator.unwrap_model(model)
        params = dict(unwrapped.named_parameters())
        missing = sorted(set(n for n, p in params.items() if p.requires_grad) - set(weights))
        if missing:
            raise ConfigError(
                f"{path}: checkpoint lacks trainable weights {missing[:3]}... (another recipe?)"
            )
        with torch.no_grad():
            for name, tensor in weights.items():
                params[name].copy_(tensor.to(params[name].device, params[name].dtype))
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    sampler.load_state_dict(state["sampler"])
    set_rng_states(state["rng"])
    return state

"""Loading a corrector folder: a training checkpoint (``neko train``) or an export (``neko export``).

A checkpoint holds a LoRA adapter over a base that ``neko.model.io`` rebuilds; an export holds plain
transformers weights (LoRA merged, or beside them in ``adapter/``). Both carry ``neko_config.json``, the
resolved ``ModelConfig`` that inference reads back (routing, expert map), and may carry the guard
thresholds calibrated on dev data (key ``guard``, a dict of ``GuardConfig`` fields; per task ``task_guards``)
and per-task fusion weights (key ``task_fusion``, ``neko.infer.fusion``). LoRA is merged for
inference: the same function, one matrix product fewer per layer. MoE experts that share their base MLP
keep it once with their LoRA factors beside it (`neko.model.shared_experts`) instead of E merged copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from neko.errors import NekoError

if TYPE_CHECKING:
    from neko.infer.fusion import FusionWeights
    from neko.infer.guard import GuardConfig


def load_folder(path: str | Path, share_experts: bool = True) -> tuple[Any, Any, Any]:
    """(model in eval mode, tokenizer, ModelConfig or None) of a checkpoint or export folder.

    ``share_experts=False`` merges every expert's LoRA into its own MLP copy (the pre-sharing path).
    """
    path = Path(path)
    if not path.is_dir():
        raise NekoError(f"model folder not found: {path}")
    if (path / "adapter_config.json").is_file():
        from neko.model.io import load_corrector

        return load_corrector(path, merge=True, share_experts=share_experts)
    if not (path / "config.json").is_file():
        raise NekoError(f"{path}: neither a `neko train` checkpoint nor a `neko export` folder")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    if (path / "adapter" / "adapter_config.json").is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(path / "adapter"))
        if share_experts:
            from neko.model.shared_experts import share_experts as share

            share(model)
        model = model.merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    cfg = None
    if (path / "neko_config.json").is_file():
        from neko.model.io import read_config

        cfg = read_config(path)[0]
    return model.eval(), tokenizer, cfg


def _neko_config(path: str | Path) -> tuple[Path, dict]:
    """(file, contents) of a folder's ``neko_config.json``; an empty dict when it is absent or not an object."""
    import json

    from neko.errors import ConfigError

    file = Path(path) / "neko_config.json"
    if not file.is_file():
        return file, {}
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    return file, data if isinstance(data, dict) else {}


def read_guard(path: str | Path) -> tuple[GuardConfig | None, dict[str, GuardConfig]]:
    """The guard thresholds saved in a folder's ``neko_config.json``: the general ones (key ``guard``, None
    when absent) and the per-task ones (key ``task_guards``: task -> thresholds, written by ``neko
    calibrate``)."""
    from neko.errors import ConfigError
    from neko.infer.guard import GuardConfig

    file, data = _neko_config(path)
    if not data:
        return None, {}
    guard = data.get("guard")
    general = None if guard is None else GuardConfig.from_dict(guard, where=str(file))
    per_task = data.get("task_guards") or {}
    if not isinstance(per_task, dict):
        raise ConfigError(f"{file}: task_guards must map task names to guard settings")
    tasks = {
        task: GuardConfig.from_dict(value, where=f"{file}: task_guards.{task}")
        for task, value in per_task.items()
    }
    return general, tasks


def read_fusion(path: str | Path) -> dict[str, FusionWeights]:
    """The per-task fusion weights saved in a folder's ``neko_config.json`` (key ``task_fusion``: task ->
    ``{feature: weight}``, written by ``neko calibrate`` where fusion beat the guard on dev data)."""
    from neko.errors import ConfigError
    from neko.infer.fusion import FusionWeights

    file, data = _neko_config(path)
    per_task = data.get("task_fusion") or {}
    if not isinstance(per_task, dict):
        raise ConfigError(f"{file}: task_fusion must map task names to fusion weights")
    return {
        task: FusionWeights.from_dict(value, where=f"{file}: task_fusion.{task}")
        for task, value in per_task.items()
    }

"""Export a trained checkpoint as a plain transformers folder that loads with no neko code at all."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from neko.model.io import ROUTER_FILE, load_base_with_routers, load_corrector, read_config, write_config

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# What a trained-parts export keeps besides the weights: enough to rebuild the model from its packaged base.
SMALL_FILES = (
    "adapter_config.json",
    "neko_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "train_config.yaml",
)


def export_checkpoint(ckpt: str | os.PathLike, out: str | os.PathLike, merge: bool = True) -> Path:
    """Write ``out``: a Mixtral / Qwen2-MoE (or dense) model for ``AutoModelForCausalLM.from_pretrained``.

    ``merge=True`` folds the LoRA weights in. ``merge=False`` writes the base with trained routers and puts
    the adapter in ``out/adapter`` (load it with ``peft.PeftModel.from_pretrained(model, out / "adapter")``).
    ``neko_config.json`` goes beside the weights, so inference can read the routing and expert map back.
    """
    ckpt, out = Path(ckpt), Path(out)
    _, data = read_config(ckpt)
    if merge:
        model, tokenizer, cfg = load_corrector(ckpt, merge=True)
    else:
        model, tokenizer, cfg = load_base_with_routers(ckpt)
        (out / "adapter").mkdir(parents=True, exist_ok=True)
        for name in ADAPTER_FILES:
            shutil.copy2(ckpt / name, out / "adapter" / name)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_config(out, cfg, data.get("training"), exported={"from": str(ckpt.resolve()), "merged": merge})
    return out


def export_trained_parts(ckpt: str | os.PathLike, out: str | os.PathLike, dtype: str = "float16") -> Path:
    """Write only what training changed (LoRA adapter and routers, cast to ``dtype``) plus config and tokenizer.

    The result is a checkpoint folder like ``ckpt`` (it loads with ``neko.model.io.load_corrector`` and
    ``Corrector.from_pretrained``), a few MB instead of the full model: the base weights are rebuilt from the
    packaged base named in ``neko_config.json`` and checked against its recorded sha256. This is how the
    bundled default model in ``neko/default_model/`` is made.
    """
    import torch
    from safetensors.torch import load_file, save_file

    ckpt, out = Path(ckpt), Path(out)
    read_config(ckpt)  # refuse a folder that is not a checkpoint before writing anything
    out.mkdir(parents=True, exist_ok=True)
    cast = getattr(torch, dtype)
    for name in ("adapter_model.safetensors", ROUTER_FILE):
        if (ckpt / name).is_file():
            tensors = {k: v.to(cast).contiguous() for k, v in load_file(ckpt / name).items()}
            save_file(tensors, out / name, metadata={"format": "pt"})
    for name in SMALL_FILES:
        if (ckpt / name).is_file():
            shutil.copy2(ckpt / name, out / name)
    return out

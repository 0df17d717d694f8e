"""Export a trained checkpoint as a plain transformers folder that loads with no neko code at all."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from neko.model.io import load_base_with_routers, load_corrector, read_config, write_config

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


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

"""Build the corrector from its config, save it as adapter + routers + resolved config, and load it back.

A checkpoint folder written by `save_pretrained_corrector` holds:
  adapter_config.json, adapter_model.safetensors  the peft LoRA adapter (attention and experts)
  router.safetensors                              every layer's router weight (trained in full; MoE only)
  neko_config.json                                {"model": ModelConfig (base sha256 included), "training": {...}}
  tokenizer files
Loading rebuilds the base deterministically (same base, same upcycling), puts the routers back and loads the
adapter: nothing about the model is declared twice, and a changed base is caught by its sha256.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neko.errors import ConfigError
from neko.model.base import base_sha256, resolve_base
from neko.model.config import ModelConfig
from neko.model.lora import apply_lora, set_router_trainable
from neko.model.routing import find_routers
from neko.model.upcycle import upcycle

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

CONFIG_FILE = "neko_config.json"
ROUTER_FILE = "router.safetensors"
FORMAT_VERSION = 1


def build_base(
    cfg: ModelConfig, expand_experts: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model of ``cfg`` before LoRA: dense, or upcycled to an MoE per ``cfg.routing``, in fp32.

    Fills ``cfg.base_sha256`` when unset and refuses a base whose recorded sha256 differs.
    ``expand_experts``: the experts are read-only views of one MLP copy (see `upcycle`), for models whose
    experts run shared (inference, single-process training).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_base(cfg.base)
    digest = base_sha256(folder)
    if cfg.base_sha256 and digest and digest != cfg.base_sha256:
        raise ConfigError(
            f"base {cfg.base!r} has sha256 {digest}, but the config was made with {cfg.base_sha256}"
        )
    cfg.base_sha256 = cfg.base_sha256 or digest
    if expand_experts and sorted(Path(folder).glob("*.safetensors")):
        model = _read_dense(Path(folder))
    else:
        # Read into memory rather than memory-mapped: upcycling releases each dense MLP once its experts are
        # built, which frees anonymous memory but would leave touched file pages resident (~100 MB more peak).
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, disable_mmap=True)
    if cfg.routing != "dense":
        model = upcycle(model, cfg.num_experts, cfg.top_k, consume=True, expand=expand_experts)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        # Padding positions are masked out everywhere; any id works, and eos is always in the vocabulary.
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def _read_dense(folder: Path) -> PreTrainedModel:
    """The fp32 model in ``folder``'s safetensors files, read tensor by tensor with ``pread``.

    ``from_pretrained(disable_mmap=True)`` reads each file into one bytes object and then copies the tensors
    out of it, so loading peaks at twice the model (SmolLM2: +0.5 GB); memory-mapping instead leaves the
    file pages resident for as long as any tensor views them. Here each tensor gets its own buffer once.
    """
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, GenerationConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt", backend="pread") as f:
            for key in f.keys():
                state[key] = f.get_tensor(key).to(torch.float32)
    config = AutoConfig.from_pretrained(folder)
    model = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)].from_pretrained(
        None, config=config, dtype=torch.float32, state_dict=state
    )
    if (folder / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(folder)
    return model


def build_model(cfg: ModelConfig) -> tuple[Any, PreTrainedTokenizerBase]:
    """A fresh trainable corrector: base resolved, upcycled per ``cfg.routing``, LoRA applied (peft model).

    The experts run as shared experts (`neko.model.shared_training`). In a single process their frozen base
    weights are also stored once (stride-0 views): the E copies would only hold the same numbers. Under
    torch.distributed (DDP, DeepSpeed) every expert keeps its own copy, because those wrappers broadcast or
    partition every parameter in place, which a stride-0 view cannot take.
    """
    model, tokenizer = build_base(cfg, expand_experts=_single_process())
    return apply_lora(model, cfg.lora), tokenizer


def _single_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized())


def router_state(model) -> dict:
    """Every router's weight, keyed by its name in the plain (un-wrapped) transformers model."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {
        f"{name}.weight": router.weight.detach().contiguous().clone() for name, router in find_routers(base)
    }


def load_router_state(model, state: dict) -> None:
    """Copy saved router weights into ``model`` (peft-wrapped or plain); names must match exactly."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    routers = {f"{name}.weight": router for name, router in find_routers(base)}
    if set(routers) != set(state):
        raise ConfigError(
            f"router weights do not match the model: saved {len(state)}, model has {len(routers)}"
        )
    with torch.no_grad():
        for key, router in routers.items():
            router.weight.copy_(state[key])


def save_pretrained_corrector(
    model, tokenizer, cfg: ModelConfig, out_dir: str | os.PathLike, training: dict | None = None
) -> Path:
    """Write adapter, routers, tokenizer and the resolved config (plus ``training`` info) into ``out_dir``."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    routers = router_state(model)
    if routers:
        save_file(routers, out / ROUTER_FILE)
    tokenizer.save_pretrained(out)
    write_config(out, cfg, training)
    return out


def write_config(out: Path, cfg: ModelConfig, training: dict | None = None, **extra: Any) -> None:
    """Write ``neko_config.json``: the resolved model config, training info and any extra sections."""
    data = {"format": FORMAT_VERSION, "model": cfg.to_dict(), "training": training or {}, **extra}
    (Path(out) / CONFIG_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_config(path: str | os.PathLike) -> tuple[ModelConfig, dict]:
    """The `ModelConfig` and the whole ``neko_config.json`` of a checkpoint or export folder."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise ConfigError(f"{path}: not a neko checkpoint (no {CONFIG_FILE})")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    return ModelConfig.from_dict(data["model"]), data


def load_trained_weights(model, folder: str | os.PathLike) -> None:
    """Copy a saved corrector's trained weights (LoRA adapter, routers) into a freshly built ``model`` of the
    same config: how a run starts from an earlier corrector (``RunConfig.init_from``)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = Path(folder)
    adapter = folder / "adapter_model.safetensors"
    if not adapter.is_file():
        raise ConfigError(f"{folder}: no adapter_model.safetensors to start from")
    result = set_peft_model_state_dict(model, load_file(adapter))
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys:
        raise ConfigError(
            f"{folder}: its adapter does not fit the model (missing {missing[:2]}, "
            f"unexpected {list(result.unexpected_keys)[:2]}): another model config?"
        )
    if (folder / ROUTER_FILE).is_file():
        load_router_state(model, load_file(folder / ROUTER_FILE))


def load_base_with_routers(
    path: str | os.PathLike, expand_experts: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, ModelConfig]:
    """The checkpoint's base model with its trained routers, without the LoRA adapter."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    cfg, _ = read_config(path)
    model, _ = build_base(cfg, expand_experts)
    if (Path(path) / ROUTER_FILE).is_file():
        load_router_state(model, load_file(Path(path) / ROUTER_FILE))
    return model, AutoTokenizer.from_pretrained(path), cfg


def load_corrector(
    path: str | os.PathLike, merge: bool = False, trainable: bool = False, share_experts: bool = False
):
    """``(model, tokenizer, cfg)`` of a saved checkpoint; ``merge`` folds LoRA into plain weights.

    ``trainable=True`` (resume training) keeps adapters and routers trainable; otherwise eval mode.
    ``share_experts=True`` (with ``merge``; what inference loads): the experts keep one copy of the MLP and
    their LoRA factors (`neko.model.shared_experts`) instead of E merged copies, and loading never holds
    the E copies; the model then is for inference only (``neko export`` saves the plain merged model).
    """
    from peft import PeftModel

    if share_experts and (trainable or not merge):
        raise ConfigError("share_experts is for inference: it needs merge=True and trainable=False")
    model, tokenizer, cfg = load_base_with_routers(path, expand_experts=share_experts)
    model = PeftModel.from_pretrained(model, str(path), is_trainable=trainable)
    set_router_trainable(model, trainable and cfg.lora.train_router)
    if share_experts:
        from neko.model.shared_experts import share_experts as share

        share(model)
    else:
        from neko.model.shared_training import share_trainable_experts

        share_trainable_experts(model)
    if merge:
        model = model.merge_and_unload()
    if not trainable:
        model.eval()
    return model, tokenizer, cfg

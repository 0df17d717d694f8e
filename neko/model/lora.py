"""LoRA with peft: adapters on attention and on the fused expert weights; the router trains in full.

peft reaches the fused 3-D expert tensors with ``target_parameters`` (``mlp.experts.gate_up_proj`` [E, 2I, H]
and ``mlp.experts.down_proj`` [E, H, I]); that path does not support dropout, so ``lora_dropout=0``. The
router (``mlp.gate.weight``, [E, H], a few thousand numbers per layer) is not worth a low-rank adapter: it
trains in full via ``requires_grad`` and is saved beside the adapter (see `neko.model.io`). In the dense
baseline the MLP's own linear layers take the expert adapters instead. Everything else stays frozen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neko.model.config import LoraSettings
from neko.model.routing import find_routers

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel

EXPERT_PARAMETERS = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
DENSE_MLP_MODULES = ["gate_proj", "up_proj", "down_proj"]


def lora_config(settings: LoraSettings, moe: bool):
    """The peft `LoraConfig` for ``settings`` on an MoE (fused experts) or a dense model."""
    from peft import LoraConfig

    modules = list(settings.target_modules) if settings.attention else []
    parameters: list[str] = []
    if settings.experts:
        if moe:
            parameters = list(EXPERT_PARAMETERS)
        else:
            modules += DENSE_MLP_MODULES
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=0.0,
        target_modules=modules or None,
        target_parameters=parameters or None,
        bias="none",
        task_type="CAUSAL_LM",
    )


def apply_lora(model: PreTrainedModel, settings: LoraSettings) -> PeftModel:
    """Wrap ``model`` with LoRA adapters per ``settings``; only adapters (and routers if asked) train."""
    from peft import get_peft_model

    from neko.model.shared_training import share_trainable_experts

    moe = bool(find_routers(model))
    peft_model = get_peft_model(model, lora_config(settings, moe))
    set_router_trainable(peft_model, settings.train_router)
    # Same outputs, gradients and saved adapter; the experts' shared base MLP runs once per token.
    share_trainable_experts(peft_model)
    return peft_model


def set_router_trainable(model, trainable: bool) -> None:
    """Turn training of every router's weight on or off."""
    for _, router in find_routers(model):
        router.weight.requires_grad_(trainable)


def trainable_parameters(model) -> dict[str, int]:
    """Counts of trainable and total parameters, for logs."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total}

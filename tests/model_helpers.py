"""Shared helpers of the model tests: non-trivial adapters without training, logits of the real tokens."""

from __future__ import annotations

import torch

from neko.model.routing import task_routing


def perturb(model, seed: int = 3) -> None:
    """Add seeded noise to every trainable parameter (peft starts lora_B at zero, which would hide the
    adapters and the expert deltas)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=gen) * 0.05)


def token_logits(model, tok, texts, experts=None, mode="neko") -> torch.Tensor:
    """Logits at the non-padding positions of a padded batch of ``texts``, under ``task_routing``."""
    batch = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad(), task_routing(model, experts, mode):
        return model(**batch).logits[batch.attention_mask.bool()]

"""Shared helpers of the model tests: non-trivial adapters without training, logits of the real tokens."""

from __future__ import annotations

from collections.abc import Callable

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


def perturbed_checkpoint(root, family: str, training: dict | None = None):
    """(model, tokenizer, cfg) of a tiny upcycled MoE with perturbed LoRA and routers, saved as a `neko
    train`-style checkpoint in ``root / "ckpt"`` over a tiny random ``family`` base in ``root / "base"``."""
    from neko.model.config import LoraSettings, ModelConfig
    from neko.model.io import build_model, save_pretrained_corrector
    from neko.model.tiny import save_tiny_base

    base = save_tiny_base(root / "base", family)
    cfg = ModelConfig(base=str(base), lora=LoraSettings(r=4, alpha=8))
    model, tok = build_model(cfg)
    perturb(model)
    model.eval()
    save_pretrained_corrector(model, tok, cfg, root / "ckpt", training=training)
    return model, tok, cfg


def die_after_first_batch(monkeypatch) -> Callable[[], None]:
    """From now on ``Corrector.correct_many`` corrects one batch, then the run is killed (KeyboardInterrupt);
    returns the function that brings the real one back."""
    from neko.infer.corrector import Corrector

    real, calls = Corrector.correct_many, []

    def dying(self, records, **kw):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(self, records, **kw)

    monkeypatch.setattr(Corrector, "correct_many", dying)
    return lambda: monkeypatch.setattr(Corrector, "correct_many", real)

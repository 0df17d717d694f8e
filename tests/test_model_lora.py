"""A few LoRA steps with NeKo routing: the loss falls, only adapters and routers change, experts merge."""

from __future__ import annotations

import pytest
import torch

from neko.model.config import LoraSettings, ModelConfig
from neko.model.io import build_model
from neko.model.routing import task_routing
from neko.model.tiny import save_tiny_base

torch.set_num_threads(1)

TEXTS = ["he go to school every day", "the quick brown fox jumps", "she sells sea shells by the sea shore"]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return save_tiny_base(tmp_path_factory.mktemp("tiny") / "llama", "llama")


def _steps(model, tok, cfg: ModelConfig, n: int) -> list[float]:
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    experts = torch.tensor([cfg.expert_for(t) for t in ("gec", "asr", "mt")])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-2)
    losses = []
    model.train()
    for _ in range(n):
        with task_routing(model, experts, cfg.routing) as rec:
            out = model(**batch, labels=labels)
            loss = out.loss + cfg.router_loss_weight * rec.router_loss(batch.attention_mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_steps_reduce_loss_and_change_only_trainable(tiny_base) -> None:
    cfg = ModelConfig(base=str(tiny_base), lora=LoraSettings(r=4, alpha=8))
    model, tok = build_model(cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and any(n.endswith("mlp.gate.weight") for n in trainable)
    assert any("experts" in n and "lora_" in n for n in trainable)
    assert all("lora_" in n or n.endswith("mlp.gate.weight") for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = _steps(model, tok, cfg, 8)
    assert losses[-1] < losses[0] * 0.9
    for name, param in model.named_parameters():
        changed = not torch.equal(param, before[name])
        is_lora_b_or_router = name in trainable
        if not is_lora_b_or_router:
            assert not changed, f"frozen {name} changed"
        elif "lora_B" in name or name.endswith("mlp.gate.weight"):
            assert changed, f"trainable {name} did not change"
    assert cfg.base_sha256 is None  # a plain folder has no recorded GGUF hash


def test_expert_adapter_trains_and_merges(tiny_base) -> None:
    cfg = ModelConfig(
        base=str(tiny_base), lora=LoraSettings(r=4, alpha=8, attention=False, train_router=False)
    )
    model, tok = build_model(cfg)
    assert all("experts" in n for n, p in model.named_parameters() if p.requires_grad)
    _steps(model, tok, cfg, 3)
    model.eval()
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    experts = torch.tensor([3, 0, 1])
    with torch.no_grad(), task_routing(model, experts, "neko"):
        unmerged = model(**batch).logits
    merged = model.merge_and_unload()
    assert type(merged).__name__ == "MixtralForCausalLM"
    with torch.no_grad(), task_routing(merged, experts, "neko"):
        after = merged(**batch).logits
    real = batch.attention_mask.bool()
    torch.testing.assert_close(after[real], unmerged[real], atol=1e-4, rtol=1e-4)


def test_dense_baseline_has_lora_on_mlp(tiny_base) -> None:
    cfg = ModelConfig(base=str(tiny_base), routing="dense", lora=LoraSettings(r=4, alpha=8))
    model, tok = build_model(cfg)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("mlp.down_proj.lora_A" in n for n in names) and not any(
        "gate.weight" == n[-11:] for n in names
    )
    losses = _steps(model, tok, cfg, 4)
    assert losses[-1] < losses[0]


def _grads(cfg: ModelConfig, checkpointing: bool, backward_inside: bool) -> dict:
    torch.manual_seed(0)  # peft draws lora_A from the global generator
    model, tok = build_model(cfg)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    with task_routing(model, torch.tensor([3, 0, 1]), "neko") as rec:
        loss = model(**batch, labels=batch.input_ids).loss + rec.router_loss(batch.attention_mask)
        if backward_inside:
            loss.backward()
    if not backward_inside:
        loss.backward()
    routers = [m for n, m in model.named_modules() if n.endswith("mlp.gate")]
    assert all(not r._forward_hooks for r in routers)  # hooks gone once backward is through
    assert not hasattr(model, "_neko_routing_hooks")
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_recompute_routes_like_the_forward(tiny_base) -> None:
    cfg = ModelConfig(base=str(tiny_base), lora=LoraSettings(r=4, alpha=8))
    want = _grads(cfg, checkpointing=False, backward_inside=False)
    for inside in (True, False):
        got = _grads(cfg, checkpointing=True, backward_inside=inside)
        assert got.keys() == want.keys()
        for name, grad in want.items():
            torch.testing.assert_close(got[name], grad, atol=1e-6, rtol=1e-4)

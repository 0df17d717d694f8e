"""Shared experts in training: same outputs, gradients and saved adapter as peft's fused expert forward."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from model_helpers import perturb
from safetensors.torch import load_file

from neko.model import shared_training
from neko.model.config import LoraSettings, ModelConfig
from neko.model.io import build_model
from neko.model.lora import apply_lora
from neko.model.routing import task_routing
from neko.model.shared_training import (
    SharedParamWrapper,
    compile_trainable_experts,
    unshare_trainable_experts,
)
from neko.model.tiny import save_tiny_base, tiny_dense_model
from neko.model.upcycle import upcycle

torch.set_num_threads(1)


def _pair(family: str):
    """(shared, fused): the same perturbed LoRA MoE, once as built and once with sharing undone."""
    torch.manual_seed(0)
    shared = apply_lora(upcycle(tiny_dense_model(family), num_experts=4, top_k=2), LoraSettings(r=4, alpha=8))
    perturb(shared)
    fused = copy.deepcopy(shared)
    assert unshare_trainable_experts(fused) == shared.config.num_hidden_layers
    return shared, fused


def _step(model, ids, mask, experts, mode):
    model.train()
    model.zero_grad()
    with task_routing(model, experts, mode) as rec:
        out = model(input_ids=ids, attention_mask=mask, labels=ids)
        loss = out.loss + 0.1 * rec.router_loss(mask)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.logits.detach()[mask.bool()], grads


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize(
    "mode, experts, compiled, checkpointing",
    [
        ("neko", [3, 0, -1], False, False),
        ("learned", None, False, False),
        ("neko", [3, 0, -1], True, False),
        ("neko", [3, 0, -1], True, True),
    ],
)
def test_outputs_and_gradients_match_fused_experts(
    family, mode, experts, compiled, checkpointing, monkeypatch
) -> None:
    shared, fused = _pair(family)
    assert all(type(m) is SharedParamWrapper for m in _outer_wrappers(shared))
    if compiled:  # what neko train runs by default (compile_experts)
        assert compile_trainable_experts(shared) == shared.config.num_hidden_layers
    if checkpointing:  # the large recipes' gradient_checkpointing: backward recomputes the compiled experts
        monkeypatch.setattr(shared_training, "_COMPILE_FAILED", [])
        shared.gradient_checkpointing_enable()
    ids = torch.randint(3, 90, (3, 13), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding in one row
    experts = None if experts is None else torch.tensor(experts)
    logits_s, grads_s = _step(shared, ids, mask, experts, mode)
    logits_f, grads_f = _step(fused, ids, mask, experts, mode)
    torch.testing.assert_close(logits_s, logits_f, atol=1e-4, rtol=1e-4)
    assert grads_s.keys() == grads_f.keys()
    assert any("experts" in n and "lora_A" in n for n in grads_s)  # the expert factors get gradients
    for name, grad in grads_f.items():
        scale = max(grad.abs().max().item(), 1e-3)
        torch.testing.assert_close(grads_s[name] / scale, grad / scale, atol=1e-4, rtol=0, msg=name)
    if checkpointing:  # the recomputation's early stop was not taken for a failed compilation
        assert not any("StopRecomputation" in f for f in shared_training._COMPILE_FAILED)


def test_failed_compilation_warns_and_runs_the_experts_eagerly(monkeypatch) -> None:
    shared, fused = _pair("llama")
    compile_trainable_experts(shared)

    def broken(*args):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(shared_training, "_compiled", lambda: broken)
    monkeypatch.setattr(shared_training, "_COMPILE_FAILED", [])
    ids = torch.randint(3, 90, (2, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        logits_s, _ = _step(shared, ids, mask, torch.tensor([1, 2]), "neko")
    logits_f, _ = _step(fused, ids, mask, torch.tensor([1, 2]), "neko")
    torch.testing.assert_close(logits_s, logits_f, atol=1e-4, rtol=1e-4)


def test_saved_adapter_is_the_fused_models_adapter(tmp_path) -> None:
    shared, fused = _pair("llama")
    shared.save_pretrained(tmp_path / "shared")
    fused.save_pretrained(tmp_path / "fused")
    a, b = (load_file(tmp_path / name / "adapter_model.safetensors") for name in ("shared", "fused"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    configs = [json.loads((tmp_path / n / "adapter_config.json").read_text()) for n in ("shared", "fused")]
    # target_modules is a set in peft, written in hash order: compare it as one.
    assert [{k: sorted(v) if isinstance(v, list) else v for k, v in c.items()} for c in configs[:1]] == [
        {k: sorted(v) if isinstance(v, list) else v for k, v in c.items()} for c in configs[1:]
    ]


def test_disabled_adapters_fall_back_to_peft() -> None:
    shared, fused = _pair("qwen2")
    ids = torch.tensor([[5, 9, 17, 33, 2, 7]])
    with torch.no_grad(), shared.disable_adapter(), fused.disable_adapter():
        torch.testing.assert_close(shared(input_ids=ids).logits, fused(input_ids=ids).logits)


def test_built_model_stores_each_expert_base_once(tmp_path) -> None:
    cfg = ModelConfig(base=str(save_tiny_base(tmp_path / "base", "llama")), lora=LoraSettings(r=4, alpha=8))
    model, _ = build_model(cfg)
    wrappers = _outer_wrappers(model)
    assert len(wrappers) == model.config.num_hidden_layers
    for wrapper in wrappers:
        base = wrapper.get_base_layer()
        assert type(wrapper) is SharedParamWrapper
        assert base.gate_up_proj.stride(0) == 0 and base.down_proj.stride(0) == 0
        assert not base.gate_up_proj.requires_grad
    merged = model.merge_and_unload()  # merging gives each expert its own copy first
    assert all(layer.mlp.experts.gate_up_proj.stride(0) != 0 for layer in merged.model.layers)


def _outer_wrappers(model) -> list:
    from peft.tuners.lora.layer import ParamWrapper

    return [m for n, m in model.named_modules() if n.endswith("mlp.experts") and isinstance(m, ParamWrapper)]

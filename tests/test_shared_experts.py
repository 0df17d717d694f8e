"""Shared experts: one MLP copy plus LoRA factors computes what E merged expert copies compute."""

from __future__ import annotations

import pytest
import torch
from model_helpers import perturb, perturbed_checkpoint, token_logits

from neko.model.config import LoraSettings
from neko.model.io import load_base_with_routers, load_corrector
from neko.model.lora import apply_lora
from neko.model.shared_experts import EXPERT_CLASSES, SharedLoraExperts, share_experts
from neko.model.tiny import tiny_dense_model
from neko.model.upcycle import upcycle

torch.set_num_threads(1)

TEXTS = ["he go to school every day", "hi", "the quick brown fox jumps"]


def _experts(model) -> list:
    return [
        m for m in model.modules() if type(m).__name__ in EXPERT_CLASSES or isinstance(m, SharedLoraExperts)
    ]


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def loaded(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    perturbed_checkpoint(root, request.param)
    merged, _, _ = load_corrector(root / "ckpt", merge=True)
    shared, tok, cfg = load_corrector(root / "ckpt", merge=True, share_experts=True)
    return merged, shared, tok, cfg, root


def test_every_experts_module_is_shared(loaded) -> None:
    merged, shared, *_ = loaded
    assert all(type(m).__name__ in EXPERT_CLASSES for m in _experts(merged))
    assert all(isinstance(m, SharedLoraExperts) and m.rank == 4 for m in _experts(shared))
    assert len(_experts(shared)) == merged.config.num_hidden_layers


def test_logits_match_the_merged_model(loaded) -> None:
    merged, shared, tok, *_ = loaded
    for experts, mode in ((None, "learned"), (None, "neko"), (torch.tensor([3, 0, 1]), "neko")):
        torch.testing.assert_close(
            token_logits(shared, tok, TEXTS, experts, mode),
            token_logits(merged, tok, TEXTS, experts, mode),
            atol=1e-4,
            rtol=1e-4,
        )


def test_batched_greedy_generation_matches(loaded) -> None:
    merged, shared, tok, *_ = loaded
    tok.padding_side = "left"
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    kw = dict(max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        out_shared = shared.generate(**batch, **kw)
        out_merged = merged.generate(**batch, **kw)
    assert torch.equal(out_shared, out_merged)


def test_shared_memory_is_one_mlp_plus_factors(loaded) -> None:
    merged, shared, _, cfg, _ = loaded
    e, r = cfg.num_experts, cfg.lora.r
    for old, new in zip(_experts(merged), _experts(shared), strict=True):
        base = new.gate_up_proj.numel() + new.down_proj.numel()
        assert base * e == old.gate_up_proj.numel() + old.down_proj.numel()
        hidden, inter = new.hidden_dim, new.intermediate_dim
        factors = sum(p.numel() for n, p in new.named_parameters() if n.endswith(("_lora_a", "_lora_b")))
        assert factors == e * r * (2 * inter + hidden + hidden + inter)
        assert not any(p.requires_grad for p in new.parameters())


def test_inference_load_never_stacks_expert_copies(loaded) -> None:
    *_, root = loaded
    model, _, _ = load_base_with_routers(root / "ckpt", expand_experts=True)
    for experts in _experts(model):
        assert experts.gate_up_proj.stride(0) == 0 and experts.down_proj.stride(0) == 0


def test_load_folder_shares_and_export_path_still_merges(loaded) -> None:
    from neko.infer.loading import load_folder

    *_, root = loaded
    model, _, _ = load_folder(root / "ckpt")
    assert all(isinstance(m, SharedLoraExperts) for m in _experts(model))
    model, _, _ = load_folder(root / "ckpt", share_experts=False)
    assert not any(isinstance(m, SharedLoraExperts) for m in _experts(model))


@pytest.mark.parametrize("wrapped", [False, True])
def test_experts_with_different_bases_stay_merged(wrapped: bool) -> None:
    moe = upcycle(tiny_dense_model("llama"), num_experts=4, top_k=2)
    with torch.no_grad():
        moe.model.layers[0].mlp.experts.down_proj[2].add_(0.01)
    model = moe
    if wrapped:
        model = apply_lora(moe, LoraSettings(r=4, alpha=8))
        perturb(model)
    ids = torch.tensor([[5, 9, 17, 33, 2, 7]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
    assert share_experts(model) == moe.config.num_hidden_layers - 1
    if wrapped:
        model = model.merge_and_unload()
    layers = [layer.mlp.experts for layer in model.model.layers]
    assert type(layers[0]).__name__ == "MixtralExperts" and isinstance(layers[1], SharedLoraExperts)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, before, atol=1e-4, rtol=1e-4)


def test_share_needs_merged_inference() -> None:
    from neko.errors import ConfigError

    with pytest.raises(ConfigError, match="share_experts"):
        load_corrector("unused", merge=False, share_experts=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shared_forward_equals_each_expert_run_on_its_tokens(dtype) -> None:
    """`shared_forward` against the definition: every chosen expert's own MLP, ``W + B_e A_e``, weighted by
    its gate; an expert no token chose and an expert-parallel sentinel (id E) included; gradients too."""
    from torch.nn import functional as F

    from neko.model.shared_experts import SharedWeights, shared_forward

    gen = torch.Generator().manual_seed(0)
    tokens, hidden, inter, experts, rank = 12, 8, 16, 4, 4

    def rand(*shape):
        return (torch.randn(*shape, generator=gen, dtype=dtype) * 0.3).requires_grad_()

    x, gate_up, down = rand(tokens, hidden), rand(2 * inter, hidden), rand(hidden, inter)
    a_gu, b_gu, a_d, b_d = (
        rand(experts * rank, hidden),
        rand(experts * rank, 2 * inter),
        rand(experts * rank, inter),
        rand(experts * rank, hidden),
    )
    index = torch.randint(0, 3, (tokens, 2), generator=gen)  # expert 3: no token
    index[:, 1] = (index[:, 0] + 1) % 3
    index[0, 1] = experts  # a sentinel
    gates = torch.rand(tokens, 2, generator=gen, dtype=dtype).requires_grad_()
    weights = SharedWeights(experts, gate_up, down, F.silu, (a_gu, b_gu), (a_d, b_d))
    out = shared_forward(x, index, gates, weights)

    def expert(e, rows):
        block = slice(e * rank, (e + 1) * rank)
        gu = rows @ (gate_up + b_gu[block].t() @ a_gu[block]).t()
        g, u = gu.chunk(2, dim=-1)
        return (F.silu(g) * u) @ (down + b_d[block].t() @ a_d[block]).t()

    want = torch.stack(
        [
            sum(
                (
                    gates[n, j] * expert(int(index[n, j]), x[n : n + 1])[0]
                    for j in range(2)
                    if index[n, j] < experts
                ),
                torch.zeros(hidden, dtype=dtype),
            )
            for n in range(tokens)
        ]
    )
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out, want, atol=tol, rtol=tol)
    grad = torch.randn(out.shape, generator=gen, dtype=dtype)
    params = [x, gates, a_gu, b_gu, a_d, b_d]
    for got, expected in zip(
        torch.autograd.grad(out, params, grad), torch.autograd.grad(want, params, grad), strict=True
    ):
        torch.testing.assert_close(got, expected, atol=tol, rtol=tol)

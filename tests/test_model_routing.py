"""NeKo routing: forced task expert + router's top-1 among the others; router losses; plain routing without task."""

from __future__ import annotations

import pytest
import torch

from neko.model.routing import neko_topk, task_routing
from neko.model.tiny import tiny_dense_model, tiny_tokenizer
from neko.model.upcycle import upcycle

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup():
    tok = tiny_tokenizer()
    batch = tok(
        ["the quick brown fox jumps", "hi there", "she sells sea shells"], return_tensors="pt", padding=True
    )
    return upcycle(tiny_dense_model("llama", num_layers=3), 4, 2), batch


def _record_experts(model):
    """Forward hooks on the experts modules: the top-k index each layer actually received."""
    seen, handles = [], []
    for layer in model.model.layers:
        hook = lambda mod, args, out: seen.append(args[1].clone())  # noqa: E731
        handles.append(layer.mlp.experts.register_forward_hook(hook))
    return seen, handles


def test_neko_mode_forces_task_expert(setup) -> None:
    model, batch = setup
    seen, handles = _record_experts(model)
    with torch.no_grad(), task_routing(model, torch.tensor([2, 0, 3]), "neko") as rec:
        model(**batch)
    for h in handles:
        h.remove()
    assert len(seen) == 3
    bsz, seq = batch.input_ids.shape
    for idx in seen:
        idx = idx.view(bsz, seq, 2)
        assert torch.equal(idx[..., 0], torch.tensor([2, 0, 3])[:, None].expand(bsz, seq))
        assert (idx[..., 1] != idx[..., 0]).all()
    # Second expert is the router's best among the others; weights are the softmax over the chosen pair.
    logits, weights, indices = rec.logits[0], rec.weights[0], rec.indices[0]
    masked = logits.scatter(1, indices[:, :1], float("-inf"))
    assert torch.equal(indices[:, 1], masked.argmax(-1))
    torch.testing.assert_close(weights, torch.softmax(logits.gather(1, indices), -1))


def test_no_task_uses_plain_router_and_hooks_are_removed(setup) -> None:
    model, batch = setup
    with torch.no_grad():
        plain = model(**batch).logits
        seen, handles = _record_experts(model)
        with task_routing(model, None, "neko") as rec:
            routed = model(**batch).logits
        for h in handles:
            h.remove()
    assert torch.equal(plain, routed)
    for logits, idx in zip(rec.logits, seen, strict=True):
        assert torch.equal(idx, torch.topk(torch.softmax(logits, -1), 2).indices)
    assert all(not r._forward_hooks for r in (layer.mlp.gate for layer in model.model.layers))


def test_mixed_batch_and_beam_expansion(setup) -> None:
    model, batch = setup
    with torch.no_grad(), task_routing(model, torch.tensor([1, -1]), "neko") as rec:
        ids = batch.input_ids[:2].repeat_interleave(2, 0)  # 2 sequences x 2 beams
        model(input_ids=ids, attention_mask=batch.attention_mask[:2].repeat_interleave(2, 0))
    idx = rec.indices[0].view(4, ids.shape[1], 2)
    assert (idx[:2, :, 0] == 1).all()
    assert torch.equal(idx[2:], torch.topk(rec.logits[0], 2).indices.view(4, -1, 2)[2:])


def test_router_losses(setup) -> None:
    model, batch = setup
    experts = torch.tensor([2, 0, 3])
    with task_routing(model, experts, "neko") as rec:
        model(**batch)
    loss = rec.router_loss(batch.attention_mask)
    mask = batch.attention_mask.reshape(-1).bool()
    targets = experts.repeat_interleave(batch.input_ids.shape[1])
    manual = torch.stack(
        [torch.nn.functional.cross_entropy(lg[mask], targets[mask], reduction="sum") for lg in rec.logits]
    ).sum() / (mask.sum() * len(rec.logits))
    torch.testing.assert_close(loss, manual)
    loss.backward()
    assert model.model.layers[0].mlp.gate.weight.grad.abs().sum() > 0
    model.zero_grad()
    with task_routing(model, None, "learned") as rec:
        model(**batch)
    aux = rec.router_loss(batch.attention_mask)
    assert aux.item() > 0 and aux.requires_grad


def test_neko_topk_handles_k3() -> None:
    logits = torch.tensor([[0.0, 3.0, 2.0, 1.0]])
    weights, indices = neko_topk(logits, torch.tensor([0]), 3)
    assert indices.tolist() == [[0, 1, 2]]
    torch.testing.assert_close(weights.sum(-1), torch.ones(1))


def test_dense_mode_is_a_no_op() -> None:
    dense = tiny_dense_model("llama")
    with task_routing(dense, torch.tensor([0]), "dense") as rec:
        dense(input_ids=torch.tensor([[5, 6, 7]]))
    assert rec.router_loss().item() == 0.0


def test_generate_with_task_hint_and_beams(setup) -> None:
    model, batch = setup
    seen, handles = _record_experts(model)
    with torch.no_grad(), task_routing(model, torch.tensor([1, 2, 0]), "neko", record=False) as rec:
        model.generate(**batch, max_new_tokens=3, num_beams=2, do_sample=False, pad_token_id=0)
    for h in handles:
        h.remove()
    assert not rec.logits
    last = seen[-1].view(3, 2, -1, 2)  # one new token per beam: [batch, beams, 1, top_k]
    assert torch.equal(last[..., 0].reshape(3, -1), torch.tensor([[1, 1], [2, 2], [0, 0]]))

"""The target-only LM loss equals transformers' own loss, on a dense and on an upcycled MoE model."""

from __future__ import annotations

import pytest
import torch

from neko.model.tiny import tiny_dense_model
from neko.model.upcycle import upcycle
from neko.train.loss import target_lm_loss


@pytest.mark.parametrize("moe", [False, True])
def test_target_loss_equals_the_full_loss(moe: bool) -> None:
    torch.manual_seed(0)
    model = tiny_dense_model("llama")
    if moe:
        model = upcycle(model, 4, 2)
    ids = torch.randint(0, model.config.vocab_size, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 9:], mask[2, 6:] = 0, 0  # right padding, as the trainer's batches
    labels = torch.full_like(ids, -100)
    labels[0, 8:], labels[1, 5:9], labels[2, 3:6] = ids[0, 8:], ids[1, 5:9], ids[2, 3:6]
    full = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    mine = target_lm_loss(model, ids, mask, labels)
    assert float(mine) == pytest.approx(float(full), abs=1e-5)
    grads = torch.autograd.grad(mine, model.lm_head.weight)[0]
    expected = torch.autograd.grad(full, model.lm_head.weight)[0]
    assert torch.allclose(grads, expected, atol=1e-6)

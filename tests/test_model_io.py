"""Checkpoints: save -> load gives identical logits; the merged export loads with plain transformers."""

from __future__ import annotations

import json

import pytest
import torch
from model_helpers import perturbed_checkpoint, token_logits

from neko.errors import ConfigError
from neko.model.config import ModelConfig
from neko.model.export import export_checkpoint
from neko.model.io import build_model, load_corrector, read_config

torch.set_num_threads(1)

TEXTS = ["he go to school every day", "hi", "the quick brown fox"]


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def checkpoint(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    model, tok, cfg = perturbed_checkpoint(root, request.param, training={"steps": 0, "note": "test"})
    return model, tok, cfg, root


def test_save_load_identical_logits(checkpoint) -> None:
    model, tok, cfg, root = checkpoint
    loaded, tok2, cfg2 = load_corrector(root / "ckpt")
    assert cfg2 == cfg and tok2(TEXTS).input_ids == tok(TEXTS).input_ids
    for experts in (None, torch.tensor([3, 0, 1])):
        torch.testing.assert_close(
            token_logits(loaded, tok2, TEXTS, experts),
            token_logits(model, tok, TEXTS, experts),
            atol=0,
            rtol=0,
        )
    data = json.loads((root / "ckpt" / "neko_config.json").read_text())
    assert data["training"] == {"steps": 0, "note": "test"}


def test_merged_export_loads_with_plain_transformers(checkpoint) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok, _, root = checkpoint
    out = export_checkpoint(root / "ckpt", root / "export", merge=True)
    plain = AutoModelForCausalLM.from_pretrained(out)
    assert type(plain).__name__ in ("MixtralForCausalLM", "Qwen2MoeForCausalLM")
    assert (out / "neko_config.json").is_file() and not (out / "adapter_config.json").exists()
    tok2 = AutoTokenizer.from_pretrained(out)
    # Zero-shot (plain router, no hooks at all) and task-hinted routing both match the unmerged model.
    batch = tok2(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        got = plain(**batch).logits[batch.attention_mask.bool()]
    torch.testing.assert_close(got, token_logits(model, tok, TEXTS), atol=1e-4, rtol=1e-4)
    experts = torch.tensor([2, 1, 0])
    torch.testing.assert_close(
        token_logits(plain, tok2, TEXTS, experts),
        token_logits(model, tok, TEXTS, experts),
        atol=1e-4,
        rtol=1e-4,
    )


def test_unmerged_export_has_base_and_adapter(checkpoint) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model, tok, _, root = checkpoint
    out = export_checkpoint(root / "ckpt", root / "export_unmerged", merge=False)
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(out), out / "adapter")
    torch.testing.assert_close(
        token_logits(with_adapter, tok, TEXTS),
        token_logits(model, tok, TEXTS),
        atol=1e-5,
        rtol=1e-5,
    )
    assert read_config(out)[1]["exported"]["merged"] is False


def test_changed_base_is_refused(checkpoint) -> None:
    _, _, cfg, root = checkpoint
    (root / "base" / "neko_base.json").write_text(json.dumps({"gguf_sha256": "0" * 64}))
    try:
        bad = ModelConfig.from_dict({**cfg.to_dict(), "base_sha256": "f" * 64})
        with pytest.raises(ConfigError, match="sha256"):
            build_model(bad)
    finally:
        (root / "base" / "neko_base.json").unlink()


def test_missing_config_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not a neko checkpoint"):
        load_corrector(tmp_path)


def test_trained_parts_export_is_small_and_loads(checkpoint) -> None:
    from neko.model.export import export_trained_parts

    model, tok, cfg, root = checkpoint
    small = export_trained_parts(root / "ckpt", root / "small")
    assert not (small / "model.safetensors").exists()
    full = (root / "ckpt" / "adapter_model.safetensors").stat().st_size
    assert (small / "adapter_model.safetensors").stat().st_size < 0.6 * full  # float16
    loaded, tok2, cfg2 = load_corrector(small)
    assert cfg2 == cfg
    for experts in (None, torch.tensor([3, 0, 1])):
        # float16 storage of the trained parts: close to, not identical with, the float32 checkpoint.
        torch.testing.assert_close(
            token_logits(loaded, tok2, TEXTS, experts),
            token_logits(model, tok, TEXTS, experts),
            atol=2e-3,
            rtol=0,
        )

"""The bundled default model: small trained parts that rebuild the corrector from the packaged base."""

from __future__ import annotations

import json

import pytest

from neko.infer.corrector import DEFAULT_MODEL_DIR, default_model_dir
from neko.model.io import read_config

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "neko_config.json").is_file(), reason="no bundled model in this checkout"
)


def test_bundled_model_is_small_and_complete():
    folder = default_model_dir()
    cfg, training = read_config(folder)
    assert cfg.base == "smollm2-135m" and cfg.base_sha256, "rebuilt from the packaged base, hash-checked"
    assert cfg.routing == "neko" and cfg.num_experts == 4
    for name in ("adapter_model.safetensors", "adapter_config.json", "router.safetensors", "tokenizer.json"):
        assert (folder / name).is_file(), name
    total = sum(p.stat().st_size for p in folder.iterdir())
    # LoRA r=16 on attention and the 4 experts of 30 layers in float16 (26 MB) + tokenizer: ~29 MiB.
    assert total < 32 * 2**20, f"the bundled parts should stay small, found {total / 2**20:.1f} MiB"
    assert json.loads((folder / "neko_config.json").read_text())["training"], "training provenance recorded"


@pytest.mark.slow
def test_bundled_model_corrects_the_example(tmp_path):
    from neko.cli import main

    out = tmp_path / "out.jsonl"
    assert main(["correct", "examples/asr_nbest.jsonl", "-o", str(out), "--mode", "select"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == sum(1 for line in open("examples/asr_nbest.jsonl") if line.strip())
    assert all(isinstance(r["text"], str) for r in rows)

"""Shared fixtures: paths to the checked-in fixtures and to the real data (skipped cleanly when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neko.paths import data_dir

FIXTURES = Path(__file__).parent / "fixtures"

# Tests run on 2 shared cores: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def fixtures() -> Path:
    """The folder of small checked-in files in the real formats."""
    return FIXTURES


@pytest.fixture
def shared_data() -> Path:
    """The real data folder (``$NEKO_DATA`` or ``../shared/data``); skips the test when it is absent."""
    path = data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory) -> str:
    """A real `neko train`-style checkpoint (LoRA adapter + neko_config.json) over a tiny random base."""
    from neko.model.config import LoraSettings, ModelConfig
    from neko.model.io import build_model, save_pretrained_corrector
    from neko.model.tiny import tiny_dense_model, tiny_tokenizer

    root = tmp_path_factory.mktemp("tiny")
    tiny_dense_model().save_pretrained(root / "base")
    tiny_tokenizer().save_pretrained(root / "base")
    cfg = ModelConfig(base=str(root / "base"), lora=LoraSettings(r=4))
    model, tok = build_model(cfg)
    return str(save_pretrained_corrector(model, tok, cfg, root / "ckpt"))

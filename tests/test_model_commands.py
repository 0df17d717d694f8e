"""`neko upcycle` and `neko export` on a tiny model: the outputs load with plain transformers."""

from __future__ import annotations

import torch

from neko.cli import main
from neko.model.config import LoraSettings, ModelConfig
from neko.model.io import build_model, save_pretrained_corrector
from neko.model.tiny import save_tiny_base

torch.set_num_threads(1)


def test_upcycle_command(tmp_path, capsys) -> None:
    from transformers import AutoModelForCausalLM

    base = save_tiny_base(tmp_path / "base", "qwen2")
    assert (
        main(
            ["upcycle", "--base", str(base), "--experts", "3", "--top-k", "2", "--out", str(tmp_path / "moe")]
        )
        == 0
    )
    moe = AutoModelForCausalLM.from_pretrained(tmp_path / "moe")
    assert type(moe).__name__ == "Qwen2MoeForCausalLM" and moe.config.num_experts == 3
    assert "wrote" in capsys.readouterr().out


def test_export_command_and_bad_inputs(tmp_path, capsys) -> None:
    from transformers import AutoModelForCausalLM

    cfg = ModelConfig(base=str(save_tiny_base(tmp_path / "base")), lora=LoraSettings(r=2, alpha=4))
    model, tok = build_model(cfg)
    save_pretrained_corrector(model, tok, cfg, tmp_path / "ckpt")
    assert main(["export", str(tmp_path / "ckpt"), "--out", str(tmp_path / "out")]) == 0
    assert type(AutoModelForCausalLM.from_pretrained(tmp_path / "out")).__name__ == "MixtralForCausalLM"
    assert main(["export", str(tmp_path / "base"), "--out", str(tmp_path / "x")]) == 2
    assert "not a neko checkpoint" in capsys.readouterr().err
    assert main(["upcycle", "--base", "no-such-model", "--out", str(tmp_path / "y")]) == 2
    assert "packaged bases: smollm2-135m, qwen2.5-0.5b" in capsys.readouterr().err

"""Every shipped recipe loads into the typed config; each YAML begins with the command that runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from neko.errors import ConfigError
from neko.paths import REPO_ROOT
from neko.train.config import RunConfig, load_config, save_config

CONFIGS = REPO_ROOT / "configs"
# Training recipes only: configs/experiments/ holds evaluation recipes of another format (neko experiment).
RECIPES = sorted(
    p for p in CONFIGS.rglob("*.yaml") if p.relative_to(CONFIGS).parts[0] not in ("accelerate", "experiments")
)
ACCELERATE = sorted((CONFIGS / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES + ACCELERATE, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_yaml_begins_with_its_command(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and ("neko train" in first or "accelerate launch" in first), first


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_recipe_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, RunConfig) and config.train.data
    for source in config.train.data + config.train.dev:
        assert "test" not in Path(source.path).name, f"{path}: a test split in training or dev data"
    # HyPoradise only as a training file's fit part (its dev part is held out for dev and calibration).
    for source in config.train.data:
        if "hyporadise" in source.path:
            assert source.path.endswith("_train_fit.jsonl"), f"{path}: {source.path} is not a fit part"
            assert "in domain" in path.read_text().lower(), (
                f"{path}: trains on HyPoradise, must say in domain"
            )
    saved = save_config(config, tmp_path / "config.yaml")
    assert load_config(saved) == config


def test_ablations_share_the_budget() -> None:
    ablations = [load_config(p) for p in sorted((CONFIGS / "ablation").glob("*.yaml"))]
    assert len(ablations) == 4
    budgets = {
        (c.train.max_steps, c.train.max_tokens, c.train.grad_accum, c.train.lr, c.train.seed)
        for c in ablations
    }
    assert len(budgets) == 1
    assert {c.model.routing for c in ablations} == {"neko", "learned", "dense"}


@pytest.mark.parametrize("path", sorted((CONFIGS / "accelerate").glob("*.json")), ids=lambda p: p.name)
def test_deepspeed_batch_sizes_agree(path: Path) -> None:
    ds = json.loads(path.read_text())
    accelerate = yaml.safe_load(path.with_suffix(".yaml").read_text())
    world = accelerate["num_processes"]
    assert accelerate["deepspeed_config"]["deepspeed_config_file"] == f"configs/accelerate/{path.name}"
    expected = ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * world
    assert ds["train_batch_size"] == expected


def test_overrides_and_unknown_keys(tmp_path: Path) -> None:
    path = CONFIGS / "neko-tiny.yaml"
    config = load_config(path, ["train.lr=1e-4", "model.lora.r=8", "train.data.0.weight=2"])
    assert config.train.lr == 1e-4 and config.model.lora.r == 8 and config.train.data[0].weight == 2.0
    with pytest.raises(ConfigError, match="unknown config key train.lrr"):
        load_config(path, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="foo"):
        load_config(path, ["model.foo=1"])
    with pytest.raises(ConfigError, match="train.max_steps: expected int"):
        load_config(path, ["train.max_steps=many"])
    with pytest.raises(ConfigError, match="schedule"):
        load_config(path, ["train.schedule=sawtooth"])


def test_a_bare_no_is_the_choice_no() -> None:
    # YAML 1.1 reads ``mixed_precision: no`` as false; the recipe means accelerate's "no" (fp32).
    path = CONFIGS / "neko-tiny.yaml"
    assert load_config(path, ["mixed_precision=no"]).mixed_precision == "no"
    assert load_config(path, ["mixed_precision=bf16"]).mixed_precision == "bf16"
    with pytest.raises(ConfigError, match="mixed_precision: expected one of no, bf16, fp16"):
        load_config(path, ["mixed_precision=fp8"])


def test_model_prompt_style_defaults_to_full_and_is_checked():
    from neko.model.config import ModelConfig

    old = ModelConfig().to_dict()
    del old["prompt"]  # a config written before prompt styles existed
    assert ModelConfig.from_dict(old).prompt == "full"
    assert ModelConfig.from_dict({**old, "prompt": "compact"}).prompt == "compact"
    with pytest.raises(ConfigError, match="prompt style"):
        ModelConfig(prompt="short")

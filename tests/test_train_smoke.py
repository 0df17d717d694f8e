"""The real ``neko train`` entry point on a tiny upcycled MoE: weights, logs, checkpoints, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_helpers import tiny_base, write_recipe, write_task_data

from neko.cli import main

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train")
    return {"root": root, "base": tiny_base(root / "base"), "data": write_task_data(root / "data")}


def _losses(run: Path) -> dict[int, tuple[float, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: (r["lm_loss"], r["router_loss"]) for r in rows if "lm_loss" in r}


def test_train_smoke(setup, monkeypatch) -> None:
    import neko.model.io as io
    from neko.model.io import build_model, save_pretrained_corrector
    from neko.train.config import load_config

    run = setup["root"] / "smoke"
    recipe = write_recipe(
        setup["root"] / "smoke.yaml",
        setup["base"],
        setup["data"],
        run,
        eval_every=2,
        dev=[{"path": str(setup["data"]["gec"])}],
        dev_size=3,
        dev_loss_size=4,
        max_new_tokens=4,
    )
    captured = {}

    def capture(model, *args, **kwargs):  # the trained model as the trainer hands it over
        captured.update({n: p.detach().clone() for n, p in model.named_parameters()})
        return save_pretrained_corrector(model, *args, **kwargs)

    monkeypatch.setattr(io, "save_pretrained_corrector", capture)
    assert main(["train", str(recipe), "--set", "train.max_steps=4"]) == 0

    config = load_config(recipe)
    torch.manual_seed(config.train.seed)  # the trainer seeds before building: same LoRA init
    from accelerate.utils import set_seed

    set_seed(config.train.seed)
    initial, _ = build_model(config.model)
    trainable = {n for n, p in initial.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any("gate.weight" in n for n in trainable)
    for name, param in initial.named_parameters():
        if name in trainable:
            continue
        assert torch.equal(param, captured[name]), f"frozen {name} changed"
    changed = [n for n in trainable if not torch.equal(initial.get_parameter(n), captured[n])]
    assert len(changed) == len(trainable)

    losses = _losses(run)
    assert sorted(losses) == [1, 2, 3, 4]
    assert all(lm > 0 and router > 0 for lm, router in losses.values())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "lr", "tokens", "padding", "tokens_per_s"} <= set(next(r for r in rows if "loss" in r))
    dev = [r for r in rows if "dev_loss" in r]
    assert [r["step"] for r in dev] == [0, 2, 4] and "gleu" in dev[0]["dev"]["gec"]
    assert (run / "checkpoints" / "step-000002" / "trainable.safetensors").is_file()
    assert (run / "checkpoints" / "step-000004" / "state.pt").is_file()
    assert (run / "final" / "adapter_model.safetensors").is_file()
    assert load_config(run / "final" / "train_config.yaml") == config


def test_kill_and_resume_gives_the_same_losses(setup) -> None:
    from neko.train.config import load_config
    from neko.train.trainer import train

    overrides = ["train.max_steps=5", "train.save_every=0", "train.grad_accum=2"]
    straight = setup["root"] / "straight"
    recipe = write_recipe(setup["root"] / "straight.yaml", setup["base"], setup["data"], straight)
    assert main(["train", str(recipe), *[a for o in overrides for a in ("--set", o)]]) == 0

    resumed = setup["root"] / "resumed"
    config = load_config(recipe, overrides)
    config.output_dir = str(resumed)
    stopped_at = train(config, stop_after=2)
    assert stopped_at.name == "step-000002"
    assert sorted(_losses(resumed)) == [1, 2]
    assert (
        main(
            [
                "train",
                str(recipe),
                "--out",
                str(resumed),
                "--resume",
                *[a for o in overrides for a in ("--set", o)],
            ]
        )
        == 0
    )
    a, b = _losses(straight), _losses(resumed)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5]
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-5, abs=1e-7), step


def test_rank_loss_is_logged_and_trains(setup) -> None:
    run = setup["root"] / "ranked"
    recipe = write_recipe(setup["root"] / "ranked.yaml", setup["base"], setup["data"], run, save_every=0)
    overrides = ["train.max_steps=3", "train.rank_loss_weight=0.5", "train.rank_temperature=0.5"]
    assert main(["train", str(recipe), *[a for o in overrides for a in ("--set", o)]]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "lm_loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    # The asr and mt records have two hypotheses to rank; the mixture puts some in most micro-batches.
    assert all(r["rank_loss"] >= 0 for r in steps) and any(r["rank_loss"] > 0 for r in steps)
    for r in steps:  # router_loss_weight 0.1 (the model default)
        assert r["loss"] == pytest.approx(r["lm_loss"] + 0.1 * r["router_loss"] + 0.5 * r["rank_loss"])
    assert (run / "final" / "adapter_model.safetensors").is_file()


def test_bad_recipe_is_one_line(setup, tmp_path, capsys) -> None:
    recipe = write_recipe(tmp_path / "bad.yaml", setup["base"], setup["data"], tmp_path / "run")
    assert main(["train", str(recipe), "--set", "train.learning_rate=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key train.learning_rate" in err and err.count("\n") == 1


def test_resume_starts_fresh_without_checkpoints_and_refuses_mixing_runs(setup, tmp_path, capsys) -> None:
    from neko.train.config import load_config
    from neko.train.trainer import train

    # Every run of a series may say --resume: the first starts at step 0.
    first = tmp_path / "first"
    recipe = write_recipe(tmp_path / "first.yaml", setup["base"], setup["data"], first, max_steps=1)
    assert main(["train", str(recipe), "--resume"]) == 0
    assert "no checkpoint under" in capsys.readouterr().err
    assert sorted(_losses(first)) == [1]

    run = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.yaml", setup["base"], setup["data"], run, max_steps=2, save_every=1)
    assert train(load_config(recipe), stop_after=1).name == "step-000001"
    # A fresh run over checkpoints would leave them for the next --resume to pick up: refused.
    assert main(["train", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "holds the checkpoints of an earlier run (latest step-000001)" in err and "--resume" in err
    # Resuming under a recipe that learns something else is refused, naming what changed ...
    assert (
        main(["train", str(recipe), "--resume", "--set", "train.lr=0.1", "--set", "train.max_steps=3"]) == 2
    )
    err = capsys.readouterr().err
    assert "train.lr: 0.005 -> 0.1" in err and "train.max_steps: 2 -> 3" in err and err.count("\n") == 1
    # ... while what only says how fast it runs may change.
    assert main(["train", str(recipe), "--resume", "--set", "train.threads=2"]) == 0
    assert sorted(_losses(run)) == [1, 2] and (run / "final" / "adapter_model.safetensors").is_file()


@pytest.mark.slow  # a subprocess start and a resume: minutes on the shared 2-core machine
def test_sigint_saves_a_checkpoint_and_resumes(setup, tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "interrupted"
    recipe = write_recipe(
        tmp_path / "long.yaml", setup["base"], setup["data"], run, max_steps=100000, save_every=0
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "neko.cli", "train", str(recipe)], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 240
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text().strip():
        assert proc.poll() is None and time.time() < deadline, "training did not start"
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    from neko.train.checkpoint import latest_checkpoint

    found = latest_checkpoint(run)
    assert found is not None and (found / "trainable.safetensors").is_file()
    step = int(found.name.split("-")[1])
    assert max(_losses(run)) == step
    args = ["train", str(recipe), "--resume", "--max-steps", str(step + 2)]
    assert main(args) == 0
    assert sorted(_losses(run)) == list(range(1, step + 3))

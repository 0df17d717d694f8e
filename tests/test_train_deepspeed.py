"""The real ``neko train`` under DeepSpeed (accelerate launch) on CPU: ZeRO-2 on 1 and 2 processes, ZeRO-3.

The accelerate and DeepSpeed configs are the shipped ones (``configs/accelerate/deepspeed_zero{2,3}``) with
only what this machine needs changed: the process count, ``train_batch_size`` to match it, and fp32
(bf16 matmuls are ~15x slower on this CPU). Each run is a fresh ``accelerate launch``, ~25 s here.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import tiny_base, write_recipe, write_task_data

from neko.cli import main

pytest.importorskip("deepspeed")
torch.set_num_threads(1)
SHIPPED = Path(__file__).resolve().parents[1] / "configs" / "accelerate"


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("deepspeed")
    return {"root": root, "base": tiny_base(root / "base"), "data": write_task_data(root / "data")}


def _launch_config(folder: Path, name: str, processes: int, **zero: object) -> Path:
    """The shipped ``<name>.yaml`` + ``.json`` for ``processes`` CPU processes, fp32, ``zero`` overrides."""
    ds = json.loads((SHIPPED / f"{name}.json").read_text())
    ds.pop("bf16")
    ds["train_batch_size"] = (
        ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * processes
    )
    ds["zero_optimization"].update(zero)
    launch = yaml.safe_load((SHIPPED / f"{name}.yaml").read_text())
    launch["num_processes"] = processes
    launch["deepspeed_config"]["deepspeed_config_file"] = str(folder / f"{name}.json")
    launch["deepspeed_config"]["zero3_init_flag"] = False  # upcycling builds the MoE on the meta device
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(ds))
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(launch))
    return folder / f"{name}.yaml"


def _train(launch: Path, recipe: Path, *args: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launch),
        "--main_process_port", str(port), "-m", "neko.cli", "train", str(recipe), *args,
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("ACCELERATE_USE_CPU", None)  # cpu=True would silently turn DeepSpeed off
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "lm_loss" in r]


def _initial_trainable(recipe: Path) -> dict[str, torch.Tensor]:
    """The trainable weights the trainer starts from (it seeds, then builds)."""
    from accelerate.utils import set_seed

    from neko.model.io import build_model
    from neko.train.config import load_config

    config = load_config(recipe)
    set_seed(config.train.seed)
    model, _ = build_model(config.model)
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_zero2_trains_saves_and_resumes(setup, tmp_path, processes) -> None:
    from safetensors.torch import load_file

    run = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.yaml", setup["base"], setup["data"], run, max_steps=4, save_every=2)
    launch = _launch_config(tmp_path, "deepspeed_zero2", processes)
    _train(launch, recipe)

    straight = _rows(run)
    assert [r["step"] for r in straight] == [1, 2, 3, 4]
    assert all(math.isfinite(r["lm_loss"]) and math.isfinite(r["router_loss"]) for r in straight)
    for step in (2, 4):
        ckpt = run / "checkpoints" / f"step-{step:06d}"
        assert (ckpt / "state.pt").is_file() and (ckpt / "deepspeed" / "latest").is_file()
    trained = load_file(str(run / "checkpoints" / "step-000004" / "trainable.safetensors"))
    initial = _initial_trainable(recipe)
    assert sorted(trained) == sorted(initial)
    assert all(not torch.equal(trained[n], initial[n]) for n in initial), "a trainable weight did not move"
    assert (run / "final" / "adapter_model.safetensors").is_file()

    if processes == 2:  # each rank takes every second batch: DeepSpeed on 2 ranks == 1 plain process, accum 2
        plain = tmp_path / "plain"
        assert main(["train", str(recipe), "--out", str(plain), "--set", "train.grad_accum=2"]) == 0
        for a, b in zip(straight, _rows(plain), strict=True):
            assert a["tokens"] == b["tokens"]
            assert a["lm_loss"] == pytest.approx(b["lm_loss"], rel=1e-4)

    # Resume from step 2 (as if killed after it): steps 3-4 are trained again and logged the same.
    shutil.rmtree(run / "checkpoints" / "step-000004")
    shutil.rmtree(run / "final")
    _train(launch, recipe, "--resume")
    resumed = _rows(run)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(straight, resumed, strict=True):
        assert a["tokens"] == b["tokens"]
        assert a["lm_loss"] == pytest.approx(b["lm_loss"], rel=1e-5)
        assert a["router_loss"] == pytest.approx(b["router_loss"], rel=1e-5)
    assert (run / "final" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_zero3_one_step_gathers_final_weights(setup, tmp_path) -> None:
    from safetensors.torch import load_file

    run = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.yaml", setup["base"], setup["data"], run, max_steps=1, save_every=0)
    # Threshold 0 partitions even tiny parameters, so final/ is only right if they are gathered.
    launch = _launch_config(tmp_path, "deepspeed_zero3", 1, stage3_param_persistence_threshold=0)
    _train(launch, recipe)
    rows = _rows(run)
    assert [r["step"] for r in rows] == [1] and math.isfinite(rows[0]["loss"])
    gathered = load_file(str(run / "checkpoints" / "step-000001" / "trainable.safetensors"))
    adapter = load_file(str(run / "final" / "adapter_model.safetensors"))
    routers = load_file(str(run / "final" / "router.safetensors"))
    assert adapter and routers
    assert all(t.numel() > 0 for t in [*adapter.values(), *routers.values()])
    assert sum(t.numel() for t in [*adapter.values(), *routers.values()]) == sum(
        t.numel() for t in gathered.values()
    )

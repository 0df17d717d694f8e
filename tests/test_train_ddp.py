"""Two CPU processes (gloo DDP under torchrun) train the tiny MoE like one process with 2-step accumulation.

Each rank takes every second batch of the one seeded global stream, so DDP with ``grad_accum=1`` sees the
same micro-batches per optimiser step as a single process with ``grad_accum=2``: same losses, same tokens.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import tiny_base, write_recipe, write_task_data

from neko.cli import main


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    base, data = tiny_base(tmp_path / "base"), write_task_data(tmp_path / "data")
    ddp_run = tmp_path / "ddp"
    recipe = write_recipe(tmp_path / "r.yaml", base, data, ddp_run, max_steps=3, save_every=0)
    # accelerate enables multi-CPU (gloo) only when asked for the CPU; `accelerate launch --cpu` sets the same.
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), "-m", "neko.cli", "train", str(recipe),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (ddp_run / "final" / "adapter_model.safetensors").is_file()

    single_run = tmp_path / "single"
    args = ["train", str(recipe), "--out", str(single_run), "--set", "train.grad_accum=2"]
    assert main(args) == 0
    ddp, single = _rows(ddp_run), _rows(single_run)
    assert [r["step"] for r in ddp] == [1, 2, 3]
    for a, b in zip(ddp, single, strict=True):
        assert a["tokens"] == b["tokens"]
        assert a["lm_loss"] == pytest.approx(b["lm_loss"], rel=1e-4)
        assert a["router_loss"] == pytest.approx(b["router_loss"], rel=1e-4)

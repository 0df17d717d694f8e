"""Wall-time limits of training: a budget that fits the schedule (adapt), and a per-run stop (`--max-minutes`)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from train_helpers import tiny_base, write_recipe, write_task_data

from neko.cli import main
from neko.train.trainer import _Budget

torch.set_num_threads(1)


def test_budget_fits_the_step_count_to_the_time() -> None:
    budget = _Budget(minutes=2.0)
    for step in range(1, 4):
        budget.add(5.0 if step == 1 else 1.0)  # the first step pays for warm-up: left out of the fit
        assert budget.fit(step, 1000) is None
    budget.add(1.0)
    assert budget.fit(4, 1000) == 4 + 112  # 120 s budget - 8 s spent, at 1 s a step
    assert budget.fit(4, 50) == 50  # never above max_steps
    for step in range(5, 9):  # the machine slows down: 2 s a step; the next fit is due REFIT steps later
        budget.add(2.0)
        due = budget.fit(step, 1000)
        assert (due is None) == (step != 4 + _Budget.REFIT)
    assert due == 8 + int((120 - 16) / 2.0)
    budget.add(110.0)
    assert budget.spent and budget.fit(12, 1000) is None  # past half the budget: no more refits


def test_max_minutes_stops_saves_and_resumes(tmp_path: Path, capsys) -> None:
    base, data = tiny_base(tmp_path / "base"), write_task_data(tmp_path / "data")
    run = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.yaml", base, data, run, max_steps=6, save_every=0)
    assert main(["train", str(recipe), "--max-minutes", "0.00001"]) == 0  # out of time after the first step
    assert "continue with --resume" in capsys.readouterr().out
    assert (run / "checkpoints" / "step-000001" / "state.pt").is_file() and not (run / "final").exists()
    assert main(["train", str(recipe), "--resume"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6] and (run / "final" / "adapter_model.safetensors").is_file()


def test_a_refit_can_lengthen_a_run_cut_short_by_a_slow_start(tmp_path: Path, monkeypatch) -> None:
    """Steps slowed by load at the start fit a short run; faster steps later lengthen it again.

    Every budget decision reads the step times given to ``_Budget.add``; here they are made up, so the test
    does not depend on the machine: the first four steps "take" 1.25 s, the others 0.25 s. The first fit
    (12 s budget, 5 s spent) allows 4 + 7 / 1.25 = 9 steps, the refit at step 8 (6 s spent, median step
    0.25 s) 8 + 24 = 32, and the budget is spent at step 32.
    """
    from neko.train.config import load_config
    from neko.train.trainer import train

    base, data = tiny_base(tmp_path / "base"), write_task_data(tmp_path / "data")
    recipe = write_recipe(tmp_path / "r.yaml", base, data, tmp_path / "run", max_steps=10_000, save_every=0)
    config = load_config(recipe)
    config.train.budget_minutes = 0.2
    real_add = _Budget.add

    def add(self, seconds: float) -> None:
        real_add(self, 1.25 if len(self._times) < 4 else 0.25)

    monkeypatch.setattr(_Budget, "add", add)
    train(config)
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps[-1] == 32

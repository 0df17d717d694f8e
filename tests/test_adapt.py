"""``neko adapt`` on a tiny random model: dev carving, time budget, exact resume, a loadable folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_helpers import tiny_base, write_task_data

from neko.cli import main
from neko.errors import ConfigError
from neko.records import read_records
from neko.train.adapt import adapt, load_examples, split_dev

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapt")
    data = write_task_data(root / "data", per_task=30)
    return {"root": root, "base": tiny_base(root / "base"), "asr": data["asr"], "ocr": data["ocr"]}


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["lm_loss"] for r in rows if "lm_loss" in r}


def test_dev_split_is_seeded_and_disjoint(setup) -> None:
    records = load_examples([str(setup["asr"])])
    train, dev = split_dev(records, seed=3)
    assert len(dev) == 3 and len(train) == 27
    assert not {r.id for r in train} & {r.id for r in dev}
    assert [r.id for r in split_dev(records, seed=3)[1]] == [r.id for r in dev]
    assert [r.id for r in split_dev(records, seed=4)[1]] != [r.id for r in dev]


def test_adapt_writes_a_loadable_corrector(setup) -> None:
    from neko import Corrector

    out = setup["root"] / "adapted"
    argv = ["adapt", str(setup["asr"]), "--out", str(out), "--model", str(setup["base"]), "--max-steps", "3"]
    assert main([*argv, "--threads", "1"]) == 0
    report = json.loads((out / "adapt.json").read_text())
    assert report["steps"] == 3 and report["train_records"] == 27 and report["dev_records"] == 3
    assert report["dev"]["asr"]["metric"] == "wer"
    # The dev split written for the run is disjoint from what it trained on.
    train_ids = {r.id for r in read_records(out / "data" / "train.jsonl")}
    assert not train_ids & {r.id for r in read_records(out / "data" / "dev.jsonl")}
    config = json.loads((out / "neko_config.json").read_text())
    assert config["model"]["routing"] == "dense" and "asr" in config["task_guards"]
    corrector = Corrector.from_pretrained(out, threads=1)
    assert corrector.config.task_guards["asr"] is not None
    assert isinstance(corrector.correct(["the quick fox", "a quick fox"]).text, str)
    # A finished adaptation is not overwritten.
    assert main(argv) == 2


def test_time_budget_stops_and_saves(setup) -> None:
    out = setup["root"] / "budget"
    report = adapt(
        [str(setup["ocr"])], out, model=str(setup["base"]), minutes=0.03, max_steps=10_000, threads=1
    )
    assert 1 <= report.steps < 10_000  # the budget, not the step count, ended the run
    assert report.train_minutes >= 0.03
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapt.json").is_file()


def test_killed_adapt_resumes_exactly(setup, monkeypatch) -> None:
    kwargs = {"model": str(setup["base"]), "max_steps": 4, "threads": 1}
    whole = adapt([str(setup["asr"])], setup["root"] / "whole", **kwargs)

    from neko.train import trainer

    real_train = trainer.train

    def killed(config, resume=False):
        real_train(config, resume, stop_after=2)
        raise KeyboardInterrupt("killed")

    out = setup["root"] / "killed"
    monkeypatch.setattr(trainer, "train", killed)
    with pytest.raises(KeyboardInterrupt):
        adapt([str(setup["asr"])], out, **kwargs)
    monkeypatch.setattr(trainer, "train", real_train)
    with pytest.raises(Exception, match="--resume"):
        adapt([str(setup["asr"])], out, **kwargs)
    resumed = adapt([str(setup["asr"])], out, resume=True, **kwargs)
    assert resumed.steps == whole.steps == 4
    assert _losses(out) == pytest.approx(_losses(setup["root"] / "whole"), abs=1e-5)


def test_continue_from_a_corrector_folder(setup) -> None:
    """A corrector folder as --model: its config and its LoRA are the starting point."""
    from neko.model.io import read_config

    first = setup["root"] / "adapted"  # written by test_adapt_writes_a_loadable_corrector
    if not first.is_dir():
        pytest.skip("needs the folder of test_adapt_writes_a_loadable_corrector")
    out = setup["root"] / "continued"
    report = adapt([str(setup["ocr"])], out, model=str(first), max_steps=1, threads=1)
    assert report.start == str(first)
    assert read_config(out)[0].routing == "dense"


def test_a_compact_prompt_is_trained_and_read_back(setup) -> None:
    """--prompt compact: the run trains on compact prompts, the folder says so, inference reads them."""
    from neko import Corrector
    from neko.infer.prompt import prepare
    from neko.records import Record
    from neko.tasks import encode_prompt

    out = setup["root"] / "compact"
    argv = ["adapt", str(setup["asr"]), "--out", str(out), "--model", str(setup["base"]), "--max-steps", "2"]
    assert main([*argv, "--prompt", "compact", "--threads", "1"]) == 0
    saved = json.loads((out / "neko_config.json").read_text())
    assert saved["model"]["prompt"] == saved["training"]["recipe"]["model"]["prompt"] == "compact"
    corrector = Corrector.from_pretrained(out, threads=1)
    record = Record(id="x", task="asr", dataset="d", hypotheses=["the quick fox", "a quick fox"])
    ids = prepare(corrector.tokenizer, record, corrector.config, corrector.prompt_style).prompt_ids
    assert corrector.prompt_style == "compact" and ids == encode_prompt(
        corrector.tokenizer, record, "compact"
    )
    # A continued corrector keeps the style it was trained on.
    with pytest.raises(ConfigError, match="compact"):
        adapt([str(setup["asr"])], setup["root"] / "restyled", model=str(out), max_steps=1, prompt="full")

"""Experiment configs -> result files -> tables: every shipped config loads, rows run, rendering is stable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neko.cli import main
from neko.errors import ConfigError
from neko.experiments.config import load_experiment
from neko.experiments.methods import METHODS
from neko.experiments.run import run_experiment, subset, write_result
from neko.experiments.tables import TABLES, render_results
from neko.records import Record, write_records

CONFIGS = sorted(Path(__file__).parent.parent.glob("configs/experiments/*/*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_experiment_config_loads(path):
    config = load_experiment(path)
    assert path.read_text().startswith("# make results/"), "each config begins with the command that runs it"
    assert config.table in TABLES
    assert config.method in [*METHODS, "quoted"]
    assert config.datasets or config.quoted


def test_unknown_key_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("table: hyporadise\nrow: x\nmethod: rover\ndatasets: []\nlimit: 3\n")
    with pytest.raises(ConfigError, match="bad.yaml.*limit"):
        load_experiment(bad)


def _asr(i: int) -> Record:
    ref = f"the cat sat on mat {i}"
    hyps = [f"the cat sat on a mat {i}", ref, f"a cat sat on mat {i}"]
    return Record(id=str(i), task="asr", dataset="hyporadise_toy", hypotheses=hyps, references=[ref])


@pytest.fixture
def toy(tmp_path):
    prepared = tmp_path / "prepared"
    write_records(prepared / "hyporadise_toy.jsonl", [_asr(i) for i in range(30)])
    configs = tmp_path / "configs"
    configs.mkdir()
    for name, method, order in (("onebest", "onebest", 1), ("onb", "oracle_nbest", 2), ("rover", "rover", 3)):
        (configs / f"{name}.yaml").write_text(
            f"table: hyporadise\nrow: {name}\norder: {order}\nmethod: {method}\ndatasets: [hyporadise_toy, absent]\n"
        )
    (configs / "quoted.yaml").write_text(
        "table: hyporadise\nrow: paper\norder: 9\nmethod: quoted\ndatasets: []\n"
        "quoted: {hyporadise_toy: 12.5}\nsource: a paper\n"
    )
    return prepared, configs


def test_rows_run_and_tables_render_identically(toy, tmp_path):
    prepared, configs = toy
    results = tmp_path / "results"
    for config in sorted(configs.glob("*.yaml")):
        assert (
            main(
                [
                    "experiment",
                    str(config),
                    "--prepared",
                    str(prepared),
                    "--out",
                    str(results / "hyporadise" / f"{config.stem}.json"),
                    "--limit",
                    "20",
                ]
            )
            == 0
        )
    onb = json.loads((results / "hyporadise" / "onb.json").read_text())
    assert onb["datasets"]["hyporadise_toy"]["wer"] == 0.0
    assert onb["datasets"]["hyporadise_toy"]["n"] == 20
    assert "absent" in onb["datasets"]["absent"]["skipped"]
    one = json.loads((results / "hyporadise" / "onebest.json").read_text())
    assert one["datasets"]["hyporadise_toy"]["wer"] > 0
    out = tmp_path / "docs" / "RESULTS.md"
    render_results(results, out, "make tables")
    first = out.read_text()
    first_png = (out.parent / "plots" / "hyporadise.png").read_bytes()
    render_results(results, out, "make tables")
    assert out.read_text() == first
    assert (out.parent / "plots" / "hyporadise.png").read_bytes() == first_png
    assert "| paper (quoted) |" in first and "12.50" in first
    assert "not scored on absent" in first and "not scored on toy" not in first


def test_subset_is_seeded_and_ordered():
    records = [_asr(i) for i in range(100)]
    a, b = subset(records, 10, 0, "d"), subset(records, 10, 0, "d")
    assert [r.id for r in a] == [r.id for r in b]
    assert [int(r.id) for r in a] == sorted(int(r.id) for r in a)
    assert subset(records, None, 0, "d") == records
    assert [r.id for r in subset(records, 10, 1, "d")] != [r.id for r in a]


def test_missing_model_skips_the_row(tmp_path, toy):
    prepared, configs = toy
    config = configs / "model.yaml"
    config.write_text(
        f"table: ablation\nrow: m\nmethod: neko\ndatasets: [hyporadise_toy]\nmodel: {tmp_path / 'nothing'}\n"
    )
    result = run_experiment(config, prepared)
    assert "model not found" in result["datasets"]["hyporadise_toy"]["skipped"]
    write_result(result, tmp_path / "r.json")


def test_overproof_columns_keep_their_name_and_efficiency_ratios_get_a_plot(tmp_path):
    from neko.experiments.tables import _label

    assert _label("overproof_dataset3") == "Overproof dataset3"
    assert _label("hyporadise_atis") == "atis" and _label("wmt23_zh-en") == "zh-en"
    results = tmp_path / "results"
    (results / "efficiency").mkdir(parents=True)
    bench = {"summary": {"batched_speedup": 1.7, "padding_naive": 0.5, "moe_dense_time_ratio": 1.3}}
    (results / "efficiency" / "infer.json").write_text(json.dumps(bench))
    out = render_results(results, tmp_path / "docs" / "RESULTS.md", "make tables")
    assert "![efficiency](plots/efficiency.png)" in out.read_text()
    assert (tmp_path / "docs" / "plots" / "efficiency.png").stat().st_size > 0


def test_rows_of_different_subset_sizes_say_their_size():
    from neko.experiments.tables import render_table

    def row(name, limit):
        return {
            "row": name,
            "table": "hyporadise",
            "limit": limit,
            "config": {},
            "datasets": {"hyporadise_atis": {"wer": 0.05, "n": limit}},
        }

    same = render_table("hyporadise", [row("1-best", 200), row("auto", 200)])
    assert "[LIMIT=" not in same and "Subset: LIMIT=200 (seeded" in same
    mixed = render_table("hyporadise", [row("1-best", 200), row("select", 50)])
    assert "| 1-best [LIMIT=200] |" in mixed and "| select [LIMIT=50] |" in mixed
    assert "Subset: LIMIT=200, 50 per row" in mixed


def test_route_task_row_forces_the_task_expert_in_the_corrector(monkeypatch):
    from neko.experiments import methods
    from neko.infer.config import InferConfig
    from neko.infer.corrector import Corrector

    loaded = []

    def load(name, mode="auto"):  # loading itself is tested with real checkpoints elsewhere
        loaded.append((name, mode))
        corrector = Corrector.__new__(Corrector)
        corrector.config = InferConfig(mode=mode)
        return corrector

    monkeypatch.setattr(Corrector, "from_pretrained", staticmethod(load))
    methods._corrector.cache_clear()
    try:
        assert methods._corrector("/m", "auto", True).config.route_task is True
        assert (
            methods._corrector("/m", "auto").config.route_task is False
        )  # every other row: the router picks
    finally:
        methods._corrector.cache_clear()
    assert loaded == [("/m", "auto"), ("/m", "auto")]

"""One reader for every command: ``neko eval`` / ``neko baselines`` / ``neko prepare`` on the files ``neko
correct`` takes, their warnings and one-line errors, ``neko.records.load_dataset`` and the local ``evaluate``
modules."""

from __future__ import annotations

import codecs
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from neko.cli import main
from neko.records import Record, write_records

REPO = Path(__file__).resolve().parent.parent


def run(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_no_data_prep_import_in_the_library():
    # `neko prepare` and `neko tasks` find the preparers through the `neko.preparers` entry points.
    found = subprocess.run(
        ["grep", "-rln", "data_prep", "neko/", "--include=*.py"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    assert sorted(found) == []


def test_the_preparers_come_from_the_entry_points_in_registry_order():
    from data_prep import PREPARERS
    from neko.commands.prepare import preparers

    assert preparers() == PREPARERS and list(preparers()) == list(PREPARERS)


def test_eval_and_baselines_take_the_hyporadise_json_that_correct_takes(capsys, fixtures, tmp_path):
    from neko.readers.hyporadise import read_hyporadise

    data = fixtures / "hyporadise" / "test_chime4.json"
    records = list(read_hyporadise(data))
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps({"id": r.id, "text": r.hypotheses[0]}) + "\n" for r in records))
    code, out, err = run(capsys, "eval", "--pred", str(pred), "--data", str(data), "--json")
    assert code == 0, err
    row = json.loads(out[0])
    assert row["dataset"] == "chime4" and row["n"] == len(records) and row["wer"] == row["wer_1best"]
    code, out, err = run(capsys, "baselines", str(data), "--json")
    assert code == 0, err and json.loads(out[0])["n"] == len(records)


def test_every_reference_empty_is_one_line(capsys, tmp_path):
    data = tmp_path / "d.jsonl"
    write_records(data, [Record(f"r{i}", "asr", "x", ["a b"], references=[""]) for i in range(2)])
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(json.dumps({"id": f"r{i}", "text": "a b"}) + "\n" for i in range(2)))
    for argv in (["eval", "--pred", str(pred), "--data", str(data)], ["baselines", str(data)]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == [] and len(err) == 1, err
        assert f"{data}" in err[0] and "dataset 'x' cannot be scored" in err[0] and "no words" in err[0]


def test_baselines_warn_about_duplicate_ids_and_nan_scores(capsys, tmp_path):
    data = tmp_path / "d.jsonl"
    rows = [
        Record("a", "asr", "x", ["a b", "a c"], scores=[float("nan"), 0.0], references=["a b"]),
        Record("a", "asr", "x", ["a b"], references=["a b"]),
    ]
    write_records(data, rows)
    code, out, err = run(capsys, "baselines", str(data), "--json")
    assert code == 0 and json.loads(out[0])["n"] == 2
    assert len(err) == 2 and all("warning:" in e for e in err)
    assert "NaN" in err[0] and "(at 1)" in err[0] and "earlier record" in err[1] and "(at 2)" in err[1]
    # eval cannot join predictions to repeated ids: an error there, naming the line.
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps({"id": "a", "text": "a b"}) + "\n")
    code, _, err = run(capsys, "eval", "--pred", str(pred), "--data", str(data))
    assert code == 2 and len(err) == 1 and f"{data}:2: duplicate id 'a'" in err[0]


def test_prepare_refuses_to_overwrite_its_source(capsys, fixtures, tmp_path):
    src = tmp_path / "f.json"
    shutil.copy(fixtures / "hyporadise" / "test_chime4.json", src)
    before = src.read_bytes()
    code, _, err = run(capsys, "prepare", "hyporadise", "--src", str(src), "--out", str(src))
    assert code == 2 and len(err) == 1 and "is also the --src" in err[0]
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def test_prepare_into_a_folder_or_below_a_file_is_one_line(capsys, fixtures, tmp_path):
    src = fixtures / "hyporadise" / "test_chime4.json"
    folder = tmp_path / "out"
    folder.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (folder, blocker / "o.jsonl"):
        code, _, err = run(capsys, "prepare", "hyporadise", "--src", str(src), "--out", str(out))
        assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"] and not any(folder.iterdir())


def test_prepare_warns_about_duplicate_ids_and_accepts_a_bom(capsys, tmp_path):
    src = tmp_path / "test_x.json"
    items = [{"id": "1", "input": ["a b"], "output": "a b"}, {"id": "1", "input": [""], "output": "c"}]
    src.write_bytes(codecs.BOM_UTF8 + json.dumps(items).encode())
    out = tmp_path / "x.jsonl"
    code, printed, err = run(capsys, "prepare", "hyporadise", "--src", str(src), "--out", str(out))
    assert code == 0, err
    assert len(err) == 2 and "every hypothesis is empty" in err[0] and "earlier record" in err[1]
    assert "  warnings: 2" in printed and len(out.read_text().splitlines()) == 2


def test_bom_is_accepted_by_every_reader(tmp_path):
    from neko.readers import read_checked

    record = {"id": "a", "task": "asr", "dataset": "d", "hypotheses": ["x y"], "references": ["x y"]}
    cases = {
        "r.jsonl": json.dumps(record) + "\n",
        "r.json": json.dumps([{"input": ["x y"], "output": "x y"}]),
        "r.txt": "x y ||| x z\n",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_bytes(codecs.BOM_UTF8 + text.encode())
        assert read_checked(path)[0].hypotheses[0] == "x y", name
    from neko.records import read_records

    assert next(read_records(tmp_path / "r.jsonl")).id == "a"


def test_load_dataset_round_trips_a_record_file(fixtures, tmp_path, monkeypatch):
    monkeypatch.setenv("NEKO_CACHE", str(tmp_path / "cache"))
    from neko.records import load_dataset, read_records, records_from_dataset

    records = [
        Record("a", "mt", "wmt", ["x", "y"], scores=[1.0, -2.5], source="src", references=["x", "z"]),
        Record("b", "ocr", "ocr", ["abc"], meta={"file": "f", "nested": {"k": [1, 2]}}),
        Record("c", "asr", "hp", ["q"], references=["q"], meta={"index": 3}),
    ]
    path = tmp_path / "r.jsonl"
    write_records(path, records)
    ds = load_dataset(path)
    assert (
        len(ds) == 3 and ds.cache_files and ds.cache_files[0]["filename"].startswith(str(tmp_path / "cache"))
    )
    assert list(records_from_dataset(ds)) == list(read_records(path))
    lengths = ds.map(lambda row: {"n": len(row["hypotheses"])})
    assert lengths["n"] == [2, 1, 1]
    # The HyPoradise JSON that `neko correct` takes loads the same way.
    hp = load_dataset(fixtures / "hyporadise" / "test_atis.json")
    assert hp[0]["task"] == "asr" and hp[0]["scores"] is not None


def test_training_mixture_draws_from_a_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("NEKO_CACHE", str(tmp_path / "cache"))
    from neko.readers.dataset import DatasetRecords
    from neko.records import load_dataset
    from neko.train.mixture import Mixture, MixtureSource

    path = tmp_path / "r.jsonl"
    write_records(path, [Record(str(i), "asr", "d", [f"h {i}"], references=[f"h {i}"]) for i in range(4)])
    mixture = Mixture([MixtureSource("d", DatasetRecords(load_dataset(path)))], seed=1)
    drawn = [mixture.draw() for _ in range(4)]
    assert sorted(r.id for r in drawn) == ["0", "1", "2", "3"] and all(isinstance(r, Record) for r in drawn)


def test_evaluate_modules_give_the_numbers_of_neko_eval(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    import evaluate

    from neko.metrics import evaluate_path

    data = tmp_path / "d.jsonl"
    rows = [
        Record(
            "1",
            "asr",
            "a",
            ["I want to fly to Boston!", "i want to fly"],
            references=["i want to fly to boston"],
        ),
        Record("2", "asr", "a", ["show me flights"], references=["show me the flights"]),
    ]
    write_records(data, rows)
    predictions = ["i want to fly to boston", "show flights please"]
    pred = tmp_path / "p.jsonl"
    pred.write_text(
        "".join(json.dumps({"id": r.id, "text": t}) + "\n" for r, t in zip(rows, predictions, strict=True))
    )
    code, out, _ = run(capsys, "eval", "--pred", str(pred), "--data", str(data), "--json")
    assert code == 0
    expected = json.loads(out[0])
    wer = evaluate.load(evaluate_path("wer"))
    got = wer.compute(
        predictions=predictions, references=[r.references[0] for r in rows], normalizer="hyporadise"
    )
    assert got["wer"] == expected["wer"] and got["signature"] == expected["signature"]
    assert math.isclose(got["wer"], 3 / 10)  # 3 edits over 6 + 4 reference words

    mt = [Record("m", "mt", "m", ["the cat sat"], source="s", references=["the cat sat down", "a cat sat"])]
    from neko.metrics import score_corpus

    scored = score_corpus("mt", ["the cat sat"], mt, "none")
    for name in ("bleu", "chrf"):
        result = evaluate.load(evaluate_path(name)).compute(
            predictions=["the cat sat"], references=[mt[0].references]
        )
        assert result[name] == scored[name]
    gleu = evaluate.load(evaluate_path("gleu")).compute(
        predictions=["he goes home"], references=[["he goes home"]], sources=["he go home"]
    )
    assert (
        gleu["gleu"]
        == score_corpus("gec", ["he goes home"], [["he goes home"]], "none", ["he go home"])["gleu"]
    )
    cer = evaluate.load(evaluate_path("cer")).compute(predictions=["abd"], references=["abc"])
    assert math.isclose(cer["cer"], 1 / 3)
    with pytest.raises(ValueError, match="choose one of"):
        evaluate_path("rouge")


def test_results_hold_no_absolute_paths():
    for path in (REPO / "results").rglob("*.json"):
        text = path.read_text()
        assert str(REPO) not in text and "/root/" not in text, path


def test_capture_json_writes_repository_relative_paths(tmp_path):
    out = tmp_path / "r.json"
    code = f"import json; print(json.dumps({{'model': '{REPO}/neko/default_model', 'root': '{REPO}'}}))"
    subprocess.run(
        [sys.executable, str(REPO / "eval" / "capture_json.py"), str(out), "--", sys.executable, "-c", code],
        check=True,
        capture_output=True,
    )
    assert json.loads(out.read_text())["summary"] == {"model": "neko/default_model", "root": "."}


def test_empty_data_file_is_one_error_line(capsys, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("")
    code, out, err = run(capsys, "baselines", str(data))
    assert code == 2 and out == [] and err == [f"neko baselines: error: {data}: no records"]

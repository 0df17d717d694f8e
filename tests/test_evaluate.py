"""``neko eval`` and ``neko baselines``: the join on id, per-dataset rows, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from neko.cli import main
from neko.errors import InputError
from neko.evaluate import evaluate
from neko.records import Record, write_records

RECORDS = [
    Record(
        "a1",
        "asr",
        "toy_asr",
        ["i want to fly to boston", "i want to fly boston"],
        references=["i want to fly to boston"],
    ),
    Record(
        "a2", "asr", "toy_asr", ["show me flights", "show me the flights"], references=["show me the flights"]
    ),
    Record("g1", "gec", "toy_gec", ["he go to school every day"], references=["he goes to school every day"]),
]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data.jsonl"
    write_records(path, RECORDS)
    return path


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _pred(tmp_path, texts):
    return _write(tmp_path / "pred.jsonl", [json.dumps({"id": i, "text": t}) for i, t in texts.items()])


def test_rows_per_dataset_with_the_1best_beside(data, tmp_path):
    pred = _pred(
        tmp_path,
        {"a1": "I want to fly to Boston.", "a2": "show me the flights", "g1": "he goes to school every day"},
    )
    rows = {row["dataset"]: row for row in evaluate(pred, data)}
    asr = rows["toy_asr"]
    assert asr["n"] == 2 and asr["wer"] == 0.0 and asr["normalizer"] == "hyporadise"
    assert asr["wer_1best"] == pytest.approx(1 / 10)
    gec = rows["toy_gec"]
    assert gec["gleu"] == pytest.approx(100.0) and gec["gleu_1best"] < 100.0 and gec["normalizer"] == "none"
    raw = {row["dataset"]: row for row in evaluate(pred, data, normalizer="none")}
    assert raw["toy_asr"]["wer"] == pytest.approx(2 / 10)  # "I" and "Boston." count without normalising


def test_missing_prediction_is_named(data, tmp_path):
    pred = _pred(tmp_path, {"a1": "x"})
    with pytest.raises(InputError, match=r"no prediction for 2 record\(s\) of .*: 'a2', 'g1'"):
        evaluate(pred, data)


def test_unknown_id_and_bad_lines_name_file_and_line(data, tmp_path):
    good = json.dumps({"id": "a1", "text": "x"})
    cases = {
        "unknown id 'zz'": [good, json.dumps({"id": "zz", "text": "x"})],
        "invalid JSON": [good, "{not json"],
        'expected an object with "id" and "text"': [good, json.dumps({"id": "a2"})],
        "second prediction for id 'a1'": [good, good],
    }
    for message, lines in cases.items():
        pred = _write(tmp_path / "pred.jsonl", lines)
        with pytest.raises(InputError) as caught:
            evaluate(pred, data)
        assert caught.value.where == 2 and message in str(caught.value) and str(pred) in str(caught.value)


def test_cli_eval_and_baselines(data, tmp_path, capsys):
    pred = _pred(
        tmp_path, {"a1": "i want to fly to boston", "a2": "show me flights", "g1": "he go to school"}
    )
    assert main(["eval", "--pred", str(pred), "--data", str(data), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["dataset"] for row in rows] == ["toy_asr", "toy_gec"] and rows[0]["wer"] == pytest.approx(
        1 / 10
    )
    assert main(["baselines", str(data)]) == 0
    out = capsys.readouterr().out
    assert "[asr]" in out and "wer_oracle_compositional" in out and "[gec]" in out


def test_cli_bad_input_is_one_line(data, tmp_path, capsys):
    pred = _write(tmp_path / "pred.jsonl", ["{broken"])
    assert main(["eval", "--pred", str(pred), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neko eval: error:") and f"{pred}:1" in err and "\n" not in err
    assert main(["baselines", str(data), "--normalizer", "lower"]) == 2
    assert "choose one of: hyporadise, none, whisper" in capsys.readouterr().err
    no_refs = tmp_path / "norefs.jsonl"
    write_records(no_refs, [Record("x", "asr", "d", ["a"])])
    assert main(["baselines", str(no_refs)]) == 2
    assert "record 1" in capsys.readouterr().err

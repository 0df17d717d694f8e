"""``neko correct`` through ``neko.cli.main``: formats, stdin/stdout, kill-and-resume, every bad input."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import torch
from model_helpers import die_after_first_batch

from neko.cli import main

torch.set_num_threads(1)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    code = main(["correct", *argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.parametrize("mode", ["auto", "select", "generate"])
def test_jsonl_example_every_mode(capsys, ckpt, tmp_path, mode):
    out = tmp_path / "out.jsonl"
    src = EXAMPLES / "asr_nbest.jsonl"
    code, _, err = run(capsys, str(src), "-o", str(out), "--model", ckpt, "--mode", mode, "--batch-size", "2")
    assert code == 0, err
    got = lines(out)
    assert [r["id"] for r in got] == [json.loads(x)["id"] for x in src.read_text().splitlines()]
    assert all(r["mode"] == mode and isinstance(r["text"], str) for r in got)
    assert [r["task"] for r in got] == ["asr"] * 5 + ["gec"]
    assert not (tmp_path / "out.jsonl.partial").exists()
    if mode == "select":
        inputs = [json.loads(x) for x in src.read_text().splitlines()]
        assert all(r["text"] in i["hypotheses"] for r, i in zip(got, inputs, strict=True))


def test_text_from_stdin_to_stdout(capsys, ckpt, monkeypatch):
    data = (EXAMPLES / "asr_nbest.txt").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, err = run(capsys, "-", "--model", ckpt, "--mode", "select")
    assert code == 0, err
    got = [json.loads(x) for x in out]
    assert [r["id"] for r in got] == ["1", "2", "3"]
    assert got[0]["text"] in data.decode().splitlines()[0].split(" ||| ")


def test_kill_and_resume_loses_and_duplicates_nothing(capsys, ckpt, tmp_path, monkeypatch):
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": f"r{i}", "hypotheses": [f"the lazy dog {i}", "a dog"]}) + "\n"
            for i in range(11)
        )
    )
    full = tmp_path / "full.jsonl"
    base = ["--model", ckpt, "--mode", "select", "--batch-size", "2"]  # written per batch of 2 records
    assert run(capsys, str(src), "-o", str(full), *base)[0] == 0
    expected = full.read_text()

    # Kill after the first batch: the partial file keeps 2 complete records, the final name is not written.
    revive = die_after_first_batch(monkeypatch)
    out = tmp_path / "out.jsonl"
    code, _, err = run(capsys, str(src), "-o", str(out), *base)
    assert code == 130 and not out.exists()
    partial = tmp_path / "out.jsonl.partial"
    assert len(partial.read_text().splitlines()) == 2
    revive()

    # Without --resume the partial file is not clobbered.
    code, _, err = run(capsys, str(src), "-o", str(out), *base)
    assert code == 2 and "--resume" in err[0] and partial.exists()

    # A record half-written when the process died is redone, not kept.
    with open(partial, "a") as handle:
        handle.write(expected.splitlines()[2][:10])
    code, _, err = run(capsys, str(src), "-o", str(out), *base, "--resume")
    assert code == 0, err
    assert out.read_text() == expected and not partial.exists()


def test_resume_refuses_a_partial_of_another_input(capsys, ckpt, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("a b c\nd e f\n")
    (tmp_path / "out.jsonl.partial").write_text(json.dumps({"id": "9", "text": "x"}) + "\n")
    code, _, err = run(capsys, str(src), "-o", str(tmp_path / "out.jsonl"), "--model", ckpt, "--resume")
    assert code == 2 and len(err) == 1 and "out.jsonl.partial:1" in err[0] and "'9'" in err[0]


BAD = {
    "truncated_json": b'{"id": "b", "hypotheses": ["the cat sat"',
    "no_hypotheses": b'{"id": "b"}',
    "wrong_schema": b'{"id": "b", "hypotheses": "the cat sat"}',
    "unknown_field": b'{"id": "b", "nbest": ["the cat sat"]}',
    "not_utf8": b'{"id": "b", "hypotheses": ["caf\xe9 au lait"]}',
    "empty_list": b'{"id": "b", "hypotheses": []}',
    "duplicate_id": b'{"id": "a", "hypotheses": ["the cat sat"]}',
}
GOOD_A = json.dumps({"id": "a", "hypotheses": ["the cat sat", "the cat sad"]}).encode()
GOOD_C = json.dumps({"id": "c", "hypotheses": ["on the mat"]}).encode()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_stops_with_file_and_line(capsys, ckpt, tmp_path, case):
    src = tmp_path / f"{case}.jsonl"
    src.write_bytes(GOOD_A + b"\n" + BAD[case] + b"\n" + GOOD_C + b"\n")
    out = tmp_path / "out.jsonl"
    code, stdout, err = run(capsys, str(src), "-o", str(out), "--model", ckpt)
    assert code == 2 and stdout == []
    assert len(err) == 1 and f"{src}:2:" in err[0], err
    assert not out.exists() and not (tmp_path / "out.jsonl.partial").exists()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_skip_writes_one_error_record(capsys, ckpt, tmp_path, case):
    src = tmp_path / f"{case}.jsonl"
    src.write_bytes(GOOD_A + b"\n" + BAD[case] + b"\n" + GOOD_C + b"\n")
    out = tmp_path / "out.jsonl"
    code, _, err = run(
        capsys, str(src), "-o", str(out), "--model", ckpt, "--mode", "select", "--on-error", "skip"
    )
    assert code == 0, err
    got = lines(out)
    assert len(got) == 3 and got[0]["text"] and got[2]["text"] == "on the mat"
    assert got[1]["text"] is None and got[1]["line"] == 2 and got[1]["error"]
    assert len([e for e in err if f"{src}:2:" in e]) == 1 and "1 errors" in err[-1]


def test_text_line_without_hypotheses(capsys, ckpt, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("the cat sat\n |||  \non the mat\n")
    code, _, err = run(capsys, str(src), "--model", ckpt)
    assert code == 2 and len(err) == 1 and f"{src}:2: no hypotheses" in err[0]


def test_truncated_hyporadise_names_the_line(capsys, ckpt, tmp_path):
    src = tmp_path / "test_x.json"
    src.write_text('[\n {"input": ["a b", "a c"], "output": "a b"},\n {"input": ["x"')
    code, _, err = run(capsys, str(src), "--model", ckpt)
    assert code == 2 and len(err) == 1 and f"{src}:3:" in err[0]


def test_huge_lists_and_long_hypotheses_are_corrected(capsys, ckpt, tmp_path):
    src = tmp_path / "in.jsonl"
    records = [
        {"id": "many", "hypotheses": [f"hypothesis {i}" for i in range(1000)]},
        {"id": "long", "task": "ocr", "hypotheses": ["abcdefghi " * 1000]},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    for mode in ("select", "auto"):
        out = tmp_path / f"{mode}.jsonl"
        code, _, err = run(capsys, str(src), "-o", str(out), "--model", ckpt, "--mode", mode)
        assert code == 0, err
        got = lines(out)
        assert [r["id"] for r in got] == ["many", "long"] and all(r["truncated"] for r in got)


def test_from_pretrained_takes_the_checkpoints_guard(ckpt, tmp_path):
    import shutil

    from neko.infer.corrector import Corrector
    from neko.infer.guard import GuardConfig

    folder = Path(shutil.copytree(ckpt, tmp_path / "ckpt"))
    data = json.loads((folder / "neko_config.json").read_text())
    data["guard"] = {"max_edit_rate": 0.25, "max_length_ratio": 1.5}
    (folder / "neko_config.json").write_text(json.dumps(data))
    assert Corrector.from_pretrained(folder).config.guard == GuardConfig(0.25, 0.5, 1.5)
    assert Corrector.from_pretrained(ckpt).config.guard == GuardConfig()


def test_calibrate_writes_task_guards_that_from_pretrained_reads(capsys, ckpt, tmp_path):
    import shutil

    from neko.infer.corrector import Corrector

    folder = Path(shutil.copytree(ckpt, tmp_path / "ckpt"))
    dev = tmp_path / "dev.jsonl"
    rows = [
        {"id": str(i), "task": "asr", "dataset": "dev", "hypotheses": [h, h + " too"], "references": [h]}
        for i, h in enumerate(["turn off the lights", "book a table for two", "the red cup", "call mom"])
    ]
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["calibrate", str(dev), "--model", str(folder), "--write", "--json", "--limit", "3"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.splitlines()[0])
    assert result["task"] == "asr" and result["n"] == 3 and result["metric"] == "wer"
    # "Always fall back" is in the grid: the calibrated guard is never worse than the first hypothesis.
    assert result["first"] == 0.0 and result["guarded"] <= result["first"]
    saved = json.loads((folder / "neko_config.json").read_text())
    assert saved["calibration"]["asr"]["n"] == 3 and "asr" in saved["task_guards"]
    corrector = Corrector.from_pretrained(folder)
    assert corrector.config.guard_for("asr").min_margin == float(saved["task_guards"]["asr"]["min_margin"])
    assert corrector.config.guard_for("gec") == corrector.config.guard


def test_max_batch_tokens_option(capsys, ckpt, tmp_path):
    src = str(EXAMPLES / "asr_nbest.jsonl")
    outs = []
    for budget in ("0", "32"):
        out = tmp_path / f"out{budget}.jsonl"
        code, _, err = run(
            capsys, src, "-o", str(out), "--model", ckpt, "--mode", "select", "--max-batch-tokens", budget
        )
        assert code == 0, err
        outs.append([r["text"] for r in lines(out)])
    assert outs[0] == outs[1]
    code, _, err = run(capsys, src, "--model", ckpt, "--max-batch-tokens", "-1")
    assert code != 0 and any("--max-batch-tokens" in line for line in err)

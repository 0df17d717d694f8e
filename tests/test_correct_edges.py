"""``neko correct`` on the edges a new user hits: bad output paths, failed starts, resume with other
settings, suspicious input, the progress bar and the summary line. Each case: exit code, message, files left."""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from model_helpers import die_after_first_batch

from neko.cli import main

torch.set_num_threads(1)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GOOD = "".join(json.dumps({"id": f"r{i}", "hypotheses": [f"the cat {i}", "a cat"]}) + "\n" for i in range(3))


def run(capsys, *argv: str) -> tuple[int, list[str], list[str]]:
    code = main(["correct", *argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def src(tmp_path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text(GOOD)
    return path


def test_output_that_is_the_input_is_refused(capsys, src):
    code, out, err = run(capsys, str(src), "-o", str(src))
    assert code == 2 and out == [] and len(err) == 1
    assert "is also the input" in err[0] and src.read_text() == GOOD
    assert files(src.parent) == ["in.jsonl"]
    # The same file under another name (relative path) is the input too.
    code, _, err = run(capsys, str(src), "-o", os.path.relpath(src))
    assert code == 2 and src.read_text() == GOOD


def test_output_folder_is_refused_before_the_model_loads(capsys, src, tmp_path):
    folder = tmp_path / "outdir"
    folder.mkdir()
    code, _, err = run(capsys, str(src), "-o", str(folder), "--model", "/nonexistent")
    assert code == 2 and len(err) == 1 and "is a folder" in err[0]
    assert files(tmp_path) == ["in.jsonl", "outdir"] and files(folder) == []


def test_output_below_a_file_is_one_line(capsys, src, tmp_path):
    code, _, err = run(capsys, str(src), "-o", str(src / "o.jsonl"), "--model", "/nonexistent")
    assert code == 2 and len(err) == 1 and "cannot write" in err[0]
    assert files(tmp_path) == ["in.jsonl"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_folder_is_one_line(capsys, src, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = run(capsys, str(src), "-o", str(locked / "o.jsonl"), "--model", "/nonexistent")
    finally:
        locked.chmod(0o700)
    assert code == 2 and len(err) == 1 and "cannot write" in err[0] and files(locked) == []


def test_unwritable_partial_is_one_line(capsys, src, tmp_path, monkeypatch):
    # Root ignores permissions: fail the open of the partial file the way a read-only folder would.
    import builtins

    real_open = builtins.open

    def refusing(file, mode="r", *args, **kw):
        if str(file).endswith(".partial") and "r" not in mode:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *args, **kw)

    monkeypatch.setattr(builtins, "open", refusing)
    code, _, err = run(capsys, str(src), "-o", str(tmp_path / "o.jsonl"), "--model", "/nonexistent")
    monkeypatch.undo()
    assert code == 2 and err == [
        f"neko correct: error: cannot write {tmp_path / 'o.jsonl'}: Permission denied"
    ]
    assert files(tmp_path) == ["in.jsonl"]


def test_failed_start_leaves_no_partial(capsys, src, tmp_path, ckpt):
    out = tmp_path / "o.jsonl"
    code, _, err = run(capsys, str(src), "-o", str(out), "--model", str(tmp_path / "nonexistent"))
    assert code == 2 and "model folder not found" in err[-1]
    assert files(tmp_path) == ["in.jsonl"]
    # ... so the next run starts without asking for --resume.
    code, _, err = run(capsys, str(src), "-o", str(out), "--model", ckpt, "--mode", "select")
    assert code == 0, err and files(tmp_path) == ["in.jsonl", "o.jsonl"]


def test_resume_refuses_other_settings(capsys, src, tmp_path, ckpt, monkeypatch):

    out = tmp_path / "o.jsonl"
    revive = die_after_first_batch(monkeypatch)
    base = [str(src), "-o", str(out), "--model", ckpt, "--batch-size", "1"]
    assert run(capsys, *base, "--mode", "select")[0] == 130
    revive()
    partial = tmp_path / "o.jsonl.partial"
    assert len(partial.read_text().splitlines()) == 1
    assert (tmp_path / "o.jsonl.partial.run.json").is_file()
    kept = partial.read_bytes()
    for other in (["--mode", "generate"], ["--mode", "select", "--task", "ocr"]):
        code, _, err = run(capsys, *base, *other, "--resume")
        assert code == 2 and len(err) == 1 and "was started with" in err[0], err
        assert partial.read_bytes() == kept and not out.exists()
    code, _, err = run(capsys, *base, "--model", str(Path(ckpt).parent), "--mode", "select", "--resume")
    assert code == 2 and "--model" in err[0]
    # A partial without its settings file (an older neko) is still checked on the modes it records.
    (tmp_path / "o.jsonl.partial.run.json").unlink()
    code, _, err = run(capsys, *base, "--mode", "auto", "--resume")
    assert code == 2 and "o.jsonl.partial:1" in err[0] and "--mode select" in err[0]
    code, _, err = run(capsys, *base, "--mode", "select", "--resume")
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 3 and files(tmp_path) == ["in.jsonl", "o.jsonl"]
    assert "wrote 3 records" in err[-1]


def test_empty_input_warns_and_keeps_the_output(capsys, tmp_path):
    src = tmp_path / "empty.jsonl"
    src.write_text("")
    out = tmp_path / "o.jsonl"
    out.write_text("earlier\n")
    code, stdout, err = run(capsys, str(src), "-o", str(out), "--model", "/nonexistent")
    assert code == 0 and stdout == []
    assert "warning:" in err[0] and "no records" in err[0] and "left as it was" in err[-1]
    assert out.read_text() == "earlier\n" and files(tmp_path) == ["empty.jsonl", "o.jsonl"]


def test_suspicious_input_warns_and_counts(capsys, tmp_path, ckpt):
    src = tmp_path / "in.jsonl"
    rows = [
        {"id": "a", "hypotheses": ["", " "]},
        {"id": "b", "hypotheses": ["the cat", "a cat"], "scores": [float("nan"), -1.0]},
        {"id": "c", "hypotheses": ["on the mat"]},
    ]
    # A byte order mark first, as Windows tools write it: accepted.
    src.write_bytes(codecs.BOM_UTF8 + "".join(json.dumps(r) + "\n" for r in rows).encode())
    out = tmp_path / "o.jsonl"
    code, _, err = run(capsys, str(src), "-o", str(out), "--model", ckpt, "--mode", "select")
    assert code == 0, err
    warnings = [e for e in err if "warning:" in e]
    assert len(warnings) == 2
    assert "every hypothesis is empty" in warnings[0] and "at 1" in warnings[0]
    assert "NaN" in warnings[1] and "at 2" in warnings[1]
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a", "b", "c"]
    assert err[-1].startswith(f"neko correct: wrote 3 records to {out} in ") and "2 warnings" in err[-1]


def test_summary_counts_changed_and_unchanged(capsys, tmp_path, ckpt):
    src = tmp_path / "in.jsonl"
    rows = [{"id": "same", "hypotheses": ["the cat sat"]}, {"id": "two", "hypotheses": ["x y", "z"]}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, stdout, err = run(capsys, str(src), "--model", ckpt, "--mode", "select")
    assert code == 0, err
    got = {r["id"]: r for r in map(json.loads, stdout)}
    changed = int(got["two"]["text"] != "x y")
    assert f"{changed} changed, {2 - changed} left as they were" in err[-1]
    assert "wrote 2 records to <stdout>" in err[-1] and "0 errors" in err[-1]
    assert any("loading model" in e for e in err) and any("model loaded in" in e for e in err)


def test_bad_input_still_stops_before_loading(capsys, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "hypotheses": ["x"]}\n{"id": "a", "hypotheses": ["y"]}\n')
    code, _, err = run(capsys, str(src), "-o", str(tmp_path / "o.jsonl"), "--model", "/nonexistent")
    assert code == 2 and len(err) == 1 and f"{src}:2: duplicate id 'a'" in err[0]
    assert files(tmp_path) == ["in.jsonl"]


def test_help_explains_every_option():
    from neko.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices["correct"]
    text = sub.format_help()
    for action in sub._actions:
        assert action.help, f"{action.dest} has no help"
    for word in ("modes:", "auto", "generate", "select", "input formats", "hyporadise", "|||"):
        assert word in text


def test_guard_keeps_the_hypothesis_as_written():
    from neko.infer.guard import GuardConfig, guard_output

    assert guard_output("Glasgow.", ["glasgow", "glass go"], GuardConfig(), "asr") == ("glasgow", False)
    assert guard_output("glass go", ["glasgow", "Glass go"], GuardConfig(), "asr") == ("Glass go", False)
    # A real change of words is still the generated text, as generated.
    hyps = ["the train to glasgow"]
    assert guard_output("The train to Glasgow now", hyps, GuardConfig(), "asr") == (
        "The train to Glasgow now",
        False,
    )


def test_stdout_records_never_share_a_line_with_the_bar(ckpt, tmp_path):
    """With stdout and stderr on one terminal, each record is a line of its own (the bar is cleared first)."""
    import pty

    src = tmp_path / "in.jsonl"
    src.write_text(GOOD)
    leader, follower = pty.openpty()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    cmd = [sys.executable, "-m", "neko.cli", "correct", str(src), "--model", ckpt, "--mode", "select"]
    proc = subprocess.Popen(cmd + ["--batch-size", "1"], stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=600) == 0
    screen = b"".join(chunks).decode()
    records = [line for line in screen.replace("\r\n", "\n").split("\n") if '"id"' in line]
    assert len(records) == 3
    for line in records:
        # Whatever the bar drew before on this terminal line was erased: the record starts the visible line.
        assert line.split("\r")[-1].lstrip("\x1b[A").startswith('{"id"'), line
    assert "FutureWarning" not in screen and "Loading weights" not in screen
    assert "wrote 3 records to <stdout>" in screen

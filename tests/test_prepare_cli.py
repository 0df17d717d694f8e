"""``neko prepare NAME`` through the real CLI: outputs, printed counts, and one-line errors with exit code 2."""

from __future__ import annotations

import shutil

import pytest

from neko.cli import main
from neko.records import read_records


@pytest.mark.parametrize(
    "argv, records",
    [
        (["hyporadise", "--src", "{f}/hyporadise/test_chime4.json"], 3),
        (["hyporadise", "--src", "{f}/hyporadise/test_atis.json", "--dataset", "atis_small"], 3),
        (["wmt", "--src", "{f}/wmt/wmt22", "--pair", "cs-en"], 3),
        (["overproof", "--src", "{f}/overproof/dataset2_allArticles.txt"], 13),
        (["overproof", "--src", "{f}/overproof/dataset2_allArticles.txt", "--skip-empty-reference"], 12),
        (["icdar2017", "--src", "{f}/icdar2017/eng_monograph/2.txt", "--target-words", "15"], None),
        (["fce", "--src", "{f}/fce/fce-dev.json"], 31),
        (["fce", "--src", "{f}/fce/fce-dev.json", "--split", "train"], 31),
        (["jfleg", "--src", "{f}/jfleg/test"], 3),
    ],
)
def test_prepare_writes_records_and_prints_counts(fixtures, tmp_path, capsys, argv, records):
    out = tmp_path / "out.jsonl"
    argv = ["prepare", *[a.format(f=fixtures) for a in argv], "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    written = list(read_records(out))
    assert f"wrote {len(written)} records" in printed and "hypotheses per record" in printed
    if records is not None:
        assert len(written) == records
    first = out.read_bytes()
    assert main(argv) == 0  # idempotent: the same bytes again
    assert out.read_bytes() == first


def test_prepare_all_prints_table(fixtures, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(fixtures / "hyporadise", data / "hyporadise")
    shutil.copytree(fixtures / "jfleg", data / "gec" / "jfleg")
    out = tmp_path / "prepared"
    assert main(["prepare", "all", "--src", str(data), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "skipped" in printed and "wmt" in printed  # absent sources are named
    assert "hyporadise_chime4" in printed and "jfleg_test" in printed and "written" in printed
    assert sorted(p.name for p in out.iterdir())[:4] == [
        "hyporadise_atis.jsonl",
        "hyporadise_atis_train.jsonl",
        "hyporadise_atis_train_dev.jsonl",
        "hyporadise_atis_train_fit.jsonl",
    ]
    # A training file also gets two disjoint parts that together hold each of its records once.
    ids = {
        part: [r.id for r in read_records(out / f"hyporadise_atis_train_{part}.jsonl")]
        for part in ("fit", "dev")
    }
    whole = [r.id for r in read_records(out / "hyporadise_atis_train.jsonl")]
    assert ids["dev"] and not set(ids["fit"]) & set(ids["dev"])
    assert sorted(ids["fit"] + ids["dev"]) == sorted(whole)
    assert main(["prepare", "all", "--src", str(data), "--out", str(out), "--quiet"]) == 0
    assert "written" not in capsys.readouterr().out.split("records", 1)[1]


BAD_JSON = {
    "truncated.json": (b'[{"input": ["a"], "output": "a"},\n  {"input": ["b"', ":2: invalid JSON"),
    "schema.json": (b'[{"input": ["a"], "output": "a"}, {"text": "b"}]', "(record 2): missing key"),
    "empty.json": (b'[{"input": [], "output": "a"}]', "(record 1): record has no hypotheses"),
    "latin1.json": (b'[{"input": ["caf\xe9"], "output": "a"}]', ":1: not valid UTF-8"),
}


@pytest.mark.parametrize("name", sorted(BAD_JSON))
def test_bad_hyporadise_is_one_line_and_exit_2(tmp_path, capsys, name):
    content, expected = BAD_JSON[name]
    src = tmp_path / name
    src.write_bytes(content)
    code = main(["prepare", "hyporadise", "--src", str(src), "--out", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("neko prepare: error: ") and str(src) in err and expected in err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize(
    "argv, make, expected",
    [
        (
            ["overproof"],
            ("dataset2_allArticles.txt", "*$*OVERPROOF*$* 1 x\nOCR without separator\n"),
            ":2: expected",
        ),
        (["jfleg"], None, "test.ref1: 1 lines but test.src has 3"),
        (["wmt", "--pair", "de-en"], None, "language pair 'de-en' not found; available: cs-en"),
        (["fce"], ("fce-dev.json", '{"text": "Hi", "edits": [[0, [[5, 9, "x", "S"]]]]}\n'), ":1: edit [5, 9"),
    ],
)
def test_bad_text_inputs_are_one_line(fixtures, tmp_path, capsys, argv, make, expected):
    if argv[0] == "jfleg":
        src = tmp_path / "test"
        shutil.copytree(fixtures / "jfleg" / "test", src)
        (src / "test.ref1").write_text("x\n", encoding="utf-8")
    elif argv[0] == "wmt":
        src = fixtures / "wmt" / "wmt22"
    else:
        src = tmp_path / make[0]
        src.write_text(make[1], encoding="utf-8")
    code = main(["prepare", argv[0], "--src", str(src), *argv[1:], "--out", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert expected in err

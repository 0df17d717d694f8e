"""neko.fileio: the one home of atomic writes, torn-line reading and sha256."""

from __future__ import annotations

import hashlib

import pytest

from neko.fileio import atomic_output, atomic_write, cut_torn_line, replace_folder, sha256_file, sha256_folder


def test_atomic_write_text_and_bytes(tmp_path):
    out = tmp_path / "sub" / "a.json"
    assert atomic_write(out, "héllo\n") == out and out.read_text(encoding="utf-8") == "héllo\n"
    atomic_write(out, b"\x00\x01")
    assert out.read_bytes() == b"\x00\x01" and sorted(p.name for p in out.parent.iterdir()) == ["a.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(out, binary=True) as handle:
        handle.write(b"new")
        raise RuntimeError("killed")
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_replace_folder_replaces_an_older_one(tmp_path):
    work, target = tmp_path / "work", tmp_path / "target"
    work.mkdir()
    (work / "new").write_text("1")
    target.mkdir()
    (target / "old").write_text("0")
    replace_folder(work, target)
    assert not work.exists() and [p.name for p in target.iterdir()] == ["new"]


def test_cut_torn_line_truncates_the_file_to_its_complete_lines(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"id": 1}\n{"id": 2}\n{"id"')
    assert cut_torn_line(path) == b'{"id": 1}\n{"id": 2}\n'
    assert path.read_bytes() == b'{"id": 1}\n{"id": 2}\n'
    path.write_bytes(b'{"id"')
    assert cut_torn_line(path) == b"" and path.read_bytes() == b""


def test_sha256_of_a_file_and_a_folder(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "d" / "e" / "f") == hashlib.sha256(b"abc").hexdigest()
    before = sha256_folder(tmp_path / "d")
    (tmp_path / "d" / "e" / "f").rename(tmp_path / "d" / "e" / "g")
    assert sha256_folder(tmp_path / "d") != before

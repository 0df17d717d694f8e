"""The versioned generated corpus: pack, unpack and check round trips; damaged files are named; the committed
corpus matches its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_prep.corpus import MANIFEST, check, pack, read_manifest, read_versioned, unpack
from data_prep.text_sources import SHARED_SOURCES
from neko.errors import InputError, NekoError
from neko.fileio import sha256_file

REPO = Path(__file__).resolve().parents[1]


def _record(i: int, split: str, source: str = "wordnet") -> str:
    return json.dumps(
        {
            "id": f"{split}-{i}",
            "task": "asr",
            "hypotheses": [f"hello world {i}", f"hello word {i}"],
            "references": [f"hello world {i}"],
            "meta": {"text_source": source},
        }
    )


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    folder = tmp_path / "generated"
    (folder / "parts").mkdir(parents=True)
    for split, n in (("train", 5), ("dev", 2)):
        text = "".join(_record(i, split, "wmt22" if i == 1 else "wordnet") + "\n" for i in range(n))
        (folder / f"asr_whisper_tiny_clean.{split}.jsonl").write_text(text)
    (folder / "parts" / "asr_whisper_tiny_clean.train.partial.jsonl").write_text(_record(9, "train") + "\n")
    (folder / "asr_whisper_tiny_clean.calib.jsonl").write_text(
        _record(9, "x") + "\n"
    )  # not a split: left out
    (folder / "manifest.json").write_text("{}")
    return folder


def test_pack_then_unpack_gives_the_versioned_records_byte_for_byte(generated: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    files = pack(generated, corpus)
    assert [f.name for f in files] == [
        "asr_whisper_tiny_clean.dev.jsonl",
        "asr_whisper_tiny_clean.train.jsonl",
    ]
    assert [(f.records, f.left_out) for f in files] == [(1, 1), (4, 1)]  # the WMT22-sourced record stays out
    fresh = tmp_path / "fresh"
    assert unpack(corpus, fresh) == {f.name: "written" for f in files}
    for f in files:
        full = (generated / f.name).read_text().splitlines(keepends=True)
        assert (fresh / f.name).read_text() == "".join(line for line in full if "wmt22" not in line)
    assert check(corpus, fresh) == {f.name: "identical" for f in files}
    assert check(corpus, generated) == {f.name: "identical" for f in files}  # a full regeneration agrees
    assert unpack(corpus, fresh) == {f.name: "present" for f in files}


def test_packing_twice_is_byte_identical(generated: Path, tmp_path: Path) -> None:
    pack(generated, tmp_path / "a")
    pack(generated, tmp_path / "b")
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_a_different_file_in_the_cache_is_kept_and_reported(generated: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    pack(generated, corpus)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    mine = fresh / "asr_whisper_tiny_clean.dev.jsonl"
    mine.write_text(_record(7, "dev") + "\n")
    states = unpack(corpus, fresh)
    assert states["asr_whisper_tiny_clean.dev.jsonl"] == "kept"
    assert mine.read_text() == _record(7, "dev") + "\n"
    assert check(corpus, fresh)["asr_whisper_tiny_clean.dev.jsonl"] == "differs"


def test_a_damaged_compressed_file_is_named(generated: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    pack(generated, corpus)
    xz = corpus / "asr_whisper_tiny_clean.train.jsonl.xz"
    xz.write_bytes(xz.read_bytes()[:-8] + b"12345678")
    with pytest.raises(NekoError, match="asr_whisper_tiny_clean.train.jsonl.xz: sha256 differs"):
        unpack(corpus, tmp_path / "fresh")


def test_a_partial_regeneration_never_drops_a_versioned_file(generated: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    pack(generated, corpus)
    (generated / "asr_whisper_tiny_clean.dev.jsonl").unlink()
    assert len(pack(generated, corpus)) == 2


def test_the_committed_corpus_matches_its_manifest(tmp_path: Path) -> None:
    corpus = REPO / "corpus"
    if not (corpus / MANIFEST).is_file():
        pytest.skip("no versioned corpus in this checkout")
    files = read_manifest(corpus)
    assert files
    for entry in files:
        assert sha256_file(corpus / entry.xz_name) == entry.xz_sha256, entry.xz_name
    assert set(check(corpus, tmp_path).values()) == {"missing"}
    sample = min(files, key=lambda f: f.bytes)  # decompressing every file costs seconds: the smallest one
    text = read_versioned(corpus, sample)
    assert text.count(b"\n") == sample.records
    for line in text.splitlines():
        record = json.loads(line)
        assert record["hypotheses"] and record["references"]
        assert record["meta"]["text_source"] not in SHARED_SOURCES


def test_a_broken_line_is_named_with_its_file_and_line(generated: Path, tmp_path: Path) -> None:
    bad = generated / "asr_whisper_tiny_clean.dev.jsonl"
    bad.write_text(bad.read_text() + "{not json\n")
    with pytest.raises(InputError, match=r"asr_whisper_tiny_clean.dev.jsonl.*3"):
        pack(generated, tmp_path / "corpus")

"""Dataset readers: fixtures in the real formats, bad input, idempotence, and counts on the real data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from data_prep import PREPARERS
from data_prep.fce import read_fce, split_name
from data_prep.hyporadise import dataset_name, read_hyporadise, write_hyporadise
from data_prep.icdar2017 import chunk_document, read_icdar2017
from data_prep.jfleg import read_jfleg
from data_prep.overproof import read_overproof
from data_prep.prepare_all import prepare_all
from data_prep.wmt import available_pairs, duplicate_of, read_wmt
from neko.errors import InputError, InputWarning
from neko.records import Record, read_records


def test_registry_lists_every_reader():
    assert {"hyporadise", "wmt", "overproof", "icdar2017", "fce", "jfleg", "all"} <= set(PREPARERS)
    for module in PREPARERS.values():
        assert module.HELP and callable(module.add_arguments) and callable(module.run)


# ---------------------------------------------------------------- HyPoradise


@pytest.mark.parametrize(
    "name, dataset, has_id, has_scores",
    [
        ("test_atis.json", "atis", True, True),
        ("train_atis.json", "atis_train", True, True),
        ("test_chime4.json", "chime4", False, False),
        ("test_ls_clean.json", "ls_clean", False, False),
        ("test_wsj_score.json", "wsj_score", False, True),
    ],
)
def test_hyporadise_schemas(fixtures, name, dataset, has_id, has_scores):
    path = fixtures / "hyporadise" / name
    raw = json.loads(path.read_text(encoding="utf-8"))
    records = list(read_hyporadise(path))
    assert len(records) == len(raw)
    for index, (record, item) in enumerate(zip(records, raw, strict=True), start=1):
        assert record.task == "asr" and record.dataset == dataset
        assert record.hypotheses == item["input"]  # order and duplicates as given
        assert record.references == [item["output"]]
        assert record.id == (item["id"] if has_id else f"{dataset}-{index}")
        assert (record.scores is not None) == has_scores
        if has_scores:
            assert record.scores == item.get("am_score", item.get("score"))


def test_hyporadise_keeps_duplicates_and_dataset_override(fixtures):
    record = next(read_hyporadise(fixtures / "hyporadise" / "test_chime4.json", dataset="mine"))
    assert record.dataset == "mine" and record.id == "mine-1"
    assert len(record.hypotheses) == 5 and len(set(record.hypotheses)) == 1


def test_hyporadise_dataset_names():
    assert dataset_name("x/test_chime4.json") == "chime4"
    assert dataset_name("train_atis.json") == "atis_train"
    assert dataset_name("custom.json") == "custom"


def test_write_hyporadise_round_trip(fixtures, tmp_path):
    records = list(read_hyporadise(fixtures / "hyporadise" / "test_atis.json"))
    out = tmp_path / "back.json"
    assert write_hyporadise(records, out) == len(records)
    again = list(read_hyporadise(out, dataset="atis"))
    assert [(r.id, r.hypotheses, r.scores, r.references) for r in again] == [
        (r.id, r.hypotheses, r.scores, r.references) for r in records
    ]
    assert write_hyporadise([], tmp_path / "empty.json") == 0
    assert json.loads((tmp_path / "empty.json").read_text()) == []


@pytest.mark.parametrize(
    "content, where, unit, fragment",
    [
        (b'[{"input": ["a b"], "output": "a b"},\n {"input": ["c"', 2, "line", "invalid JSON"),
        (b'[{"input": ["a"], "output": "a"}, {"hyps": ["b"], "output": "b"}]', 2, "record", "unknown key"),
        (b'[{"input": [], "output": "a"}]', 1, "record", "no hypotheses"),
        (b'[{"input": ["a"], "output": "a", "score": [1, 2]}]', 1, "record", "2 scores for 1"),
        (b'[{"input": ["a"]}]', 1, "record", "missing key"),
        (b'[{"input": ["a"], "output": "a"},\n{"input": ["\xff"], "output": "b"}]', 2, "line", "UTF-8"),
        (b'{"input": ["a"], "output": "a"}', None, "line", "JSON array"),
    ],
)
def test_hyporadise_bad_input(tmp_path, content, where, unit, fragment):
    path = tmp_path / "test_bad.json"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        list(read_hyporadise(path))
    assert info.value.where == where and info.value.unit == unit
    assert fragment in info.value.message and str(path) in str(info.value)


def test_hyporadise_extra_keys_are_ignored_with_one_warning(tmp_path):
    # Another release's fields (here "utt_id", "wer") must not stop a benchmark run: every item is read.
    path = tmp_path / "test_other.json"
    items = [
        {"input": ["a b", "a c"], "output": "a b", "utt_id": "u1"},
        {"input": ["c"], "output": "c"},
        {"input": ["d"], "output": "d", "utt_id": "u3", "wer": 0.0},
    ]
    path.write_text(json.dumps(items))
    with pytest.warns(InputWarning) as caught:
        records = list(read_hyporadise(path))
    assert [r.hypotheses for r in records] == [["a b", "a c"], ["c"], ["d"]]
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(path) in message and "'utt_id' (first in record 1)" in message
    assert "'wer' (first in record 3)" in message


# ---------------------------------------------------------------- WMT


def test_wmt_fixture(fixtures):
    year = fixtures / "wmt" / "wmt22"
    assert available_pairs(year) == ["cs-en"]
    records = list(read_wmt(year, "cs-en"))
    assert len(records) == 3
    first = records[0]
    assert first.task == "mt" and first.dataset == "wmt22_cs-en" and first.id == "wmt22-cs-en-1"
    assert first.meta["systems"] == ["CUNI-Transformer", "Lan-Bridge", "Online-B"]
    assert first.meta["reference_names"] == ["B", "C"] and len(first.references) == 2
    assert first.source == "Blíží se velký návrat českého smolaře."
    # Lan-Bridge and Online-B produced the same sentence: kept, and marked as a copy of index 1.
    assert first.hypotheses[1] == first.hypotheses[2]
    assert first.meta["duplicate_of"] == [None, None, 1]


def test_duplicate_of():
    assert duplicate_of(["a", "b", "a", "a", "c", "b"]) == [None, None, 0, 0, None, 1]


def test_wmt_missing_pair_lists_available(fixtures):
    with pytest.raises(InputError, match="'fr-en' not found; available: cs-en"):
        list(read_wmt(fixtures / "wmt" / "wmt22", "fr-en"))


def test_wmt_line_count_mismatch(fixtures, tmp_path):
    import shutil

    year = tmp_path / "wmt22"
    shutil.copytree(fixtures / "wmt" / "wmt22", year)
    hyp = year / "system-outputs" / "generaltest2022.cs-en.hyp.Online-B.en"
    hyp.write_text("only one line\n", encoding="utf-8")
    with pytest.raises(InputError, match="1 lines but the source"):
        list(read_wmt(year, "cs-en"))


# ---------------------------------------------------------------- Overproof


def test_overproof_fixture(fixtures):
    counts: Counter = Counter()
    records = list(read_overproof(fixtures / "overproof" / "dataset2_allArticles.txt", counts=counts))
    assert counts["articles"] == 3 and counts["blank_lines"] == 2 and counts["empty_reference_lines"] == 1
    assert len(records) == 13
    first = records[0]
    assert first.dataset == "overproof_dataset2" and first.task == "ocr"
    assert first.hypotheses == ["j ( LAND SALE. ^ ... I"] and first.references == ["LAND SALE."]
    assert first.meta["article"] == "12414000" and first.meta["line"] == 2
    empty = [r for r in records if r.meta["empty_reference"]]
    assert [(r.hypotheses, r.references) for r in empty] == [(["-»"], [""])]
    skipped: Counter = Counter()
    kept = list(
        read_overproof(
            fixtures / "overproof" / "dataset2_allArticles.txt", skip_empty_reference=True, counts=skipped
        )
    )
    assert len(kept) == 12 and skipped["skipped_empty_reference_lines"] == 1


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("*$*OVERPROOF*$* 1 year 1871\nok||@@||ok||@@||ok\nno separator here\n", 3, "found 0 separator"),
        ("a||@@||b||@@||c\n", 1, "before the first"),
    ],
)
def test_overproof_bad_input(tmp_path, text, line, fragment):
    path = tmp_path / "dataset9_allArticles.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        list(read_overproof(path))
    assert info.value.where == line and fragment in info.value.message


# ---------------------------------------------------------------- ICDAR 2017


def test_icdar2017_fixture(fixtures):
    counts: Counter = Counter()
    records = list(read_icdar2017(fixtures / "icdar2017", counts=counts))
    assert counts["documents"] == 2 and counts["no_truth_spans"] > 0
    assert [r.meta["file"] for r in records][0] == "2.txt"  # numeric order: 2.txt before 17.txt
    assert len({r.id for r in records}) == len(records)
    for record in records:
        assert record.task == "ocr" and record.dataset == "icdar2017"
        assert "#" not in record.references[0] and "@" not in record.references[0]
        assert "@" not in record.hypotheses[0]
        assert 1 <= len(record.references[0].split()) <= 40


def test_icdar2017_chunking_skips_no_truth_spans():
    truth = "the cat sat on the mat ### ####### and then it slept all day long in the sun"
    ocr = "tbe cat sat 0n the mat abc defghij and tben it slept all day long in the sun"
    counts: Counter = Counter()
    chunks = list(chunk_document(ocr, truth, target_words=4, max_words=6, min_words=3, counts=counts))
    assert counts["no_truth_spans"] == 1 and counts["no_truth_words"] == 2
    refs = [ref for _, ref, _ in chunks]
    assert " ".join(refs) == "the cat sat on the mat and then it slept all day long in the sun"
    assert all(3 <= len(r.split()) <= 6 for r in refs)
    # Gaps are removed from both sides.
    hyp, ref, _ = next(chunk_document("ab@c de", "abxc@de", min_words=1, counts=Counter()))
    assert (hyp, ref) == ("abc de", "abxcde")


def test_icdar2017_length_mismatch(tmp_path):
    path = tmp_path / "1.txt"
    path.write_text("[OCR_toInput] ab\n[OCR_aligned] ab\n[ GS_aligned] abc", encoding="utf-8")
    with pytest.raises(InputError, match="differ in length"):
        list(read_icdar2017(path))


# ---------------------------------------------------------------- FCE


def test_fce_fixture(fixtures):
    counts: Counter = Counter()
    records = list(read_fce(fixtures / "fce" / "fce-dev.json", counts=counts))
    assert counts["essays"] == 3 and counts["detection_only_edits"] == 6
    assert len(records) == counts["changed_sentences"] + counts["unchanged_sentences"] == 31
    assert {r.dataset for r in records} == {"fce_dev"} and {r.task for r in records} == {"gec"}
    assert sum(not r.meta["changed"] for r in records) == 8
    by_text = {r.hypotheses[0]: r.references[0] for r in records}
    assert (
        by_text["I hop that the next time you will come with me!"]
        == "I hope that the next time you will come with me!"
    )
    # An insertion glued to a word in the corpus gets its space.
    assert any(ref.endswith("and all the other stuff.") for ref in by_text.values())


def _essay(text: str, edits: list) -> str:
    return json.dumps({"id": "E1", "text": text, "edits": [[0, edits]]})


def test_fce_alignment_and_edge_cases(tmp_path):
    text = "I go  school. He are happy. The end\n\nBye"
    # insertion between the double spaces; a replacement; a detection-only edit; an edit across a sentence end.
    edits = [[5, 5, "to", "MT"], [17, 20, "is", "AGV"], [0, 1, None, "X"], [26, 31, ", the", "P"]]
    path = tmp_path / "fce-test.json"
    path.write_text(_essay(text, edits) + "\n", encoding="utf-8")
    counts: Counter = Counter()
    records = list(read_fce(path, counts=counts))
    pairs = [(r.hypotheses[0], r.references[0]) for r in records]
    assert pairs == [
        ("I go school.", "I go to school."),
        ("He are happy. The end", "He is happy, the end"),
        ("Bye", "Bye"),
    ]
    assert counts["detection_only_edits"] == 1 and counts["sentence_cuts_dropped_inside_edits"] == 1
    assert [r.meta["changed"] for r in records] == [True, True, False]
    assert records[0].dataset == "fce_test" and records[0].id == "fce_test-E1-1"


@pytest.mark.parametrize(
    "line, fragment",
    [
        (_essay("abc", [[0, 2, "x", "S"], [1, 3, "y", "S"]]), "overlapping edits"),
        (_essay("abc", [[0, 9, "x", "S"]]), "outside the text"),
        (json.dumps({"edits": []}), "'text'"),
        ('{"text": "abc", "edits": [[0, [[0, 1', "invalid JSON"),
    ],
)
def test_fce_bad_input(tmp_path, line, fragment):
    path = tmp_path / "fce-dev.json"
    path.write_text(_essay("fine.", []) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        list(read_fce(path))
    assert info.value.where == 2 and fragment in info.value.message


def test_fce_split_from_name(tmp_path):
    assert split_name("fce-train.json") == "train" and split_name("x/fce.dev.json") == "dev"
    assert split_name("essays.json") is None
    path = tmp_path / "essays.json"
    path.write_text(_essay("Hi.", []) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="--split"):
        list(read_fce(path))
    assert next(read_fce(path, "dev")).dataset == "fce_dev"


# ---------------------------------------------------------------- JFLEG


def test_jfleg_fixture(fixtures):
    records = list(read_jfleg(fixtures / "jfleg" / "test"))
    assert len(records) == 3 and all(len(r.references) == 4 for r in records)
    assert records[0].dataset == "jfleg_test" and records[0].task == "gec"
    assert records[0].hypotheses == ["New and new technology has been introduced to the society ."]
    assert records[0].references[0] == "New technology has been introduced to society ."


def test_jfleg_misaligned(fixtures, tmp_path):
    import shutil

    split = tmp_path / "test"
    shutil.copytree(fixtures / "jfleg" / "test", split)
    (split / "test.ref2").write_text("one\n", encoding="utf-8")
    with pytest.raises(InputError, match="test.ref2"):
        list(read_jfleg(split))


# ---------------------------------------------------------------- prepare all: idempotent, make-like


def _fixture_data(fixtures: Path, root: Path) -> Path:
    """The fixtures laid out like the shared data folder."""
    import shutil

    layout = {
        "hyporadise": "hyporadise",
        "wmt/wmt22": "wmt/wmt22",
        "overproof": "ocr/overproof",
        "icdar2017": "ocr/icdar2017",
        "fce": "gec/fce",
        "jfleg": "gec/jfleg",
    }
    for source, target in layout.items():
        shutil.copytree(fixtures / source, root / target)
    return root


def test_prepare_all_is_idempotent_and_make_like(fixtures, tmp_path, capsys):
    data = _fixture_data(fixtures, tmp_path / "data")
    out = tmp_path / "out"
    rows = prepare_all(data, out, verbose=False)
    assert "skipped" in capsys.readouterr().out  # wmt23 is absent from the fixtures
    names = [name for name, *_ in rows]
    assert names[:2] == ["hyporadise_atis", "hyporadise_chime4"]
    assert {"wmt22_cs-en", "overproof_dataset2", "icdar2017", "fce_dev", "jfleg_test"} <= set(names)
    assert all(status == "written" for _, status, _, _ in rows)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = prepare_all(data, out, verbose=False)
    assert all(status == "up to date" for _, status, _, _ in again)
    assert [r[2] for r in again] == [r[2] for r in rows]
    prepare_all(data, out, force=True, verbose=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    for path in out.iterdir():
        assert all(isinstance(r, Record) for r in read_records(path, require_hypotheses=True))


# ---------------------------------------------------------------- the real data (skipped when absent)


def test_real_hyporadise_counts(shared_data):
    expected = {"test_chime4.json": 1320, "test_atis.json": 809, "test_wsj_score.json": 836}
    for name, count in expected.items():
        records = list(read_hyporadise(shared_data / "hyporadise" / name))
        assert len(records) == count and all(len(r.hypotheses) == 5 for r in records)


def test_real_wmt23_zh_en(shared_data):
    records = list(read_wmt(shared_data / "wmt" / "wmt23", "zh-en"))
    assert len(records) == 1976 and len(records[0].meta["systems"]) == 15
    assert available_pairs(shared_data / "wmt" / "wmt23") == ["ja-en", "ru-en", "zh-en"]


def test_real_overproof_dataset3(shared_data):
    counts: Counter = Counter()
    records = list(
        read_overproof(shared_data / "ocr" / "overproof" / "dataset3_allArticles.txt", counts=counts)
    )
    assert counts["articles"] == 49
    # Every content line is accounted for: records + blank separators = lines - headers.
    assert len(records) + counts["blank_lines"] == 3268 - 49


def test_real_icdar2017_periodical(shared_data):
    counts: Counter = Counter()
    records = list(read_icdar2017(shared_data / "ocr" / "icdar2017" / "eng_periodical", counts=counts))
    assert counts["documents"] == 8 and records
    assert not any("#" in r.references[0] for r in records)


def test_real_fce_dev_and_jfleg(shared_data):
    counts: Counter = Counter()
    records = list(read_fce(shared_data / "gec" / "fce" / "fce-dev.json", counts=counts))
    assert counts["essays"] == 159 and len(records) > 2000
    assert len(list(read_jfleg(shared_data / "gec" / "jfleg" / "test"))) == 747
    assert len(list(read_jfleg(shared_data / "gec" / "jfleg" / "dev"))) == 754


@pytest.mark.slow
def test_real_prepare_all(shared_data, tmp_path):
    rows = {name: count for name, _, count, _ in prepare_all(shared_data, tmp_path, verbose=False)}
    assert rows["hyporadise_chime4"] == 1320 and rows["hyporadise_atis_train"] == 3964
    assert rows["wmt22_cs-en"] == 1448 and rows["jfleg_test"] == 747

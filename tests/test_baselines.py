"""Confusion network, oracles, ROVER and MBR on hand-made lists; the report on the real HyPoradise test sets."""

from __future__ import annotations

import itertools
import json
import random

import jiwer
import pytest
from sacrebleu.metrics import CHRF

from neko.baselines.confusion_network import EPS, build_confusion_network, softmax_weights
from neko.baselines.mbr import mbr_select, pairwise_chrf
from neko.baselines.oracle import compositional_oracle, nbest_oracle, word_errors
from neko.baselines.report import baseline_rows, format_rows
from neko.baselines.rover import rover, vote
from neko.metrics.wer import split_words
from neko.records import Record, write_records

NBEST = ["a b c", "a x c", "a b c d", "b c"]


def test_confusion_network_by_hand():
    network = build_confusion_network(NBEST)
    # "a x c" substitutes in slot 1, "a b c d" opens slot 3, "b c" passes slot 0.
    assert network.slots == [{"a": 3.0, EPS: 1.0}, {"b": 3.0, "x": 1.0}, {"c": 4.0}, {EPS: 3.0, "d": 1.0}]
    assert network.paths[3] == [EPS, "b", "c", EPS]
    assert [network.hypothesis(k) for k in range(4)] == NBEST


def test_confusion_network_reads_back_every_hypothesis_and_shares_repeats():
    rng = random.Random(0)
    for _ in range(200):
        hyps = [" ".join(rng.choices("abcde", k=rng.randint(0, 6))) for _ in range(rng.randint(1, 5))]
        hyps.append(hyps[0])
        network = build_confusion_network(hyps)
        assert [network.hypothesis(k) for k in range(len(hyps))] == [" ".join(h.split()) for h in hyps]
        assert all(abs(sum(slot.values()) - len(hyps)) < 1e-9 for slot in network.slots)


def test_nbest_oracle_picks_fewest_errors_earliest_on_ties():
    assert word_errors("a x c d", "a b c") == 2
    assert nbest_oracle(NBEST, "a x c d") == 1  # "a x c" and "a b c d" both have 1 error: the earlier wins


def test_compositional_oracle_by_hand():
    network = build_confusion_network(NBEST)
    assert compositional_oracle(network, "a x c d") == ("a x c d", 0)
    assert compositional_oracle(network, "x c") == ("x c", 0)  # slot 0 can be left empty
    text, cost = compositional_oracle(network, "a y c")
    assert cost == 1 and text in ("a b c", "a x c")


def test_compositional_oracle_is_exact_against_brute_force():
    rng = random.Random(1)
    for _ in range(150):
        hyps = [" ".join(rng.choices("abcd", k=rng.randint(1, 5))) for _ in range(rng.randint(1, 4))]
        reference = " ".join(rng.choices("abcde", k=rng.randint(0, 6)))
        network = build_confusion_network(hyps)
        best = min(
            word_errors(reference, " ".join(w for w in path if w != EPS))
            for path in itertools.product(*[list(slot) for slot in network.slots])
        )
        text, cost = compositional_oracle(network, reference)
        assert cost == best and word_errors(reference, text) == cost


def test_rover_votes_with_frequency_or_score_weights():
    network = build_confusion_network(NBEST)
    assert vote(network) == "a b c"  # "d" and the missing "a" are outvoted
    assert rover(["a b", "a c"]) == "a b"  # a tie goes to the 1-best
    assert rover(["a b", "a c"], scores=[0.0, 5.0]) == "a c"
    assert softmax_weights([0.0, 0.0], 2) == [0.5, 0.5]
    with pytest.raises(ValueError, match="1 scores for 2 hypotheses"):
        rover(["a", "b"], scores=[1.0])


def test_mbr_picks_the_consensus_and_matches_sacrebleu():
    candidates = [
        "the cat sat on a mat",
        "the cat sat on the mat",
        "a dog ran home",
        "the cat sat on the mat",
    ]
    assert mbr_select(candidates) == 1
    assert mbr_select(["only one"]) == 0
    matrix = pairwise_chrf(candidates)
    chrf = CHRF()
    for i, hyp in enumerate(candidates):
        for k, ref in enumerate(candidates):
            assert matrix[i][k] == pytest.approx(chrf.sentence_score(hyp, [ref]).score)


def test_report_on_small_records(tmp_path):
    records = [
        Record("u1", "asr", "toy_asr", NBEST, references=["a x c d"]),
        Record(
            "u2",
            "asr",
            "toy_asr",
            ["hello world", "hello word"],
            scores=[-1.0, -2.0],
            references=["hello word"],
        ),
        Record(
            "m1",
            "mt",
            "toy_mt",
            ["the cat sat on the mat", "a cat sat on a mat", "the cat sat on the mat"],
            source="x",
            references=["the cat sat on the mat"],
            meta={"systems": ["A", "B", "C"]},
        ),
        Record("o1", "ocr", "toy_ocr", ["tbe cat"], references=["the cat"]),
        Record(
            "g1", "gec", "toy_gec", ["he go to school every day"], references=["he goes to school every day"]
        ),
    ]
    path = tmp_path / "records.jsonl"
    write_records(path, records)
    rows = {row["dataset"]: row for row in baseline_rows(path)}
    asr = rows["toy_asr"]
    assert asr["n"] == 2 and asr["wer_1best"] == pytest.approx(3 / 6)
    assert asr["wer_oracle_nbest"] == pytest.approx(1 / 6) and asr["wer_oracle_compositional"] == 0.0
    assert rows["toy_mt"]["bleu_mbr"] == pytest.approx(100.0) and rows["toy_mt"]["best_system"] == "A"
    assert rows["toy_ocr"]["cer_raw"] == pytest.approx(1 / 7)
    assert 0 <= rows["toy_gec"]["gleu_source"] < 100
    assert all(row["normalizer"] == "none" and row["signature"] for row in rows.values())
    text = format_rows(list(rows.values()), as_json=False)
    assert "[asr]" in text and "50.00%" in text and "signature: wer:jiwer" in text
    assert [
        json.loads(line)["dataset"] for line in format_rows(list(rows.values()), as_json=True).splitlines()
    ] == list(rows)


def _hyporadise_records(path):
    try:
        from data_prep.hyporadise import read_hyporadise
    except ImportError:  # the reader lives in another module; keep this test independent of it
        read_hyporadise = None
    if read_hyporadise is not None:
        return list(read_hyporadise(path))
    name = path.stem.removeprefix("test_")
    records = []
    for index, item in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        scores = item.get("am_score") or item.get("score")
        records.append(
            Record(f"{name}-{index}", "asr", name, item["input"], scores=scores, references=[item["output"]])
        )
    return records


def _errors_per_utterance(refs, hyps):
    # Independent of the baselines' own edit distance: jiwer's alignment chunks, utterance by utterance.
    out = jiwer.process_words(refs, hyps, reference_transform=split_words, hypothesis_transform=split_words)
    errors = []
    for chunks in out.alignments:
        count = 0
        for chunk in chunks:
            if chunk.type in ("substitute", "delete"):
                count += chunk.ref_end_idx - chunk.ref_start_idx
            elif chunk.type == "insert":
                count += chunk.hyp_end_idx - chunk.hyp_start_idx
        errors.append(count)
    return errors


def test_hyporadise_1best_and_nbest_oracle_equal_plain_jiwer(shared_data, tmp_path):
    files = sorted((shared_data / "hyporadise").glob("test_*.json"))
    if len(files) != 7:
        pytest.skip("the seven HyPoradise test sets are not in the shared data")
    records = [record for path in files for record in _hyporadise_records(path)]
    path = tmp_path / "hyporadise.jsonl"
    write_records(path, records)
    rows = {row["dataset"]: row for row in baseline_rows(path, normalizer="none")}
    assert len(rows) == 7
    for dataset, row in rows.items():
        group = [r for r in records if r.dataset == dataset]
        refs = [r.references[0] for r in group]
        assert row["n"] == len(group)
        assert row["wer_1best"] == pytest.approx(jiwer.wer(refs, [r.hypotheses[0] for r in group]), abs=1e-12)
        width = max(len(r.hypotheses) for r in group)
        per_rank = [
            _errors_per_utterance(refs, [r.hypotheses[min(k, len(r.hypotheses) - 1)] for r in group])
            for k in range(width)
        ]
        chosen = [
            group[i].hypotheses[min(range(width), key=lambda k, i=i: (per_rank[k][i], k))]
            for i in range(len(group))
        ]
        assert row["wer_oracle_nbest"] == pytest.approx(jiwer.wer(refs, chosen), abs=1e-12)
        assert row["wer_oracle_compositional"] <= row["wer_oracle_nbest"] <= row["wer_1best"]

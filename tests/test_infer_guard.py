"""The guard: judging outputs, calibrating the threshold on dev data, the harmful-edit rate."""

from __future__ import annotations

import pytest

from neko.errors import ConfigError
from neko.infer.guard import GuardConfig, calibrate_guard, guard_output, harmful_edit_rate, judge

HYPS = ["turn of the lights in the kitchen", "turn off the lights in the kitchen"]


def test_close_output_is_kept_and_garbage_falls_back():
    # Output with a hypothesis's words (up to ASR's casing and punctuation): that hypothesis, as written.
    assert guard_output("Turn off the lights in the kitchen.", HYPS, GuardConfig()) == (HYPS[1], False)
    assert guard_output("turn off the lights in my kitchen", HYPS, GuardConfig()) == (
        "turn off the lights in my kitchen",
        False,
    )
    assert guard_output("nin nin nin nin", HYPS, GuardConfig()) == (HYPS[0], True)
    assert guard_output("", HYPS, GuardConfig()) == (HYPS[0], True)


def test_length_ratio_bounds():
    looped = " ".join(HYPS[1].split() * 3)  # every hypothesis word is there, three times: a decoding loop
    verdict = judge(looped, HYPS, GuardConfig(max_edit_rate=10.0))
    assert verdict.length_ratio == pytest.approx(3.0) and not verdict.accepted


def test_calibration_picks_the_threshold_with_the_lowest_dev_wer():
    refs = ["turn off the lights", "book a table for two", "the red cup"]
    hyps = [["turn of the lights"], ["book a table for two"], ["the red cap"]]
    # Two good corrections within 1 edit of the 1-best, one rewrite that is far from it and wrong.
    outputs = ["turn off the lights", "cook a cable for you", "the red cup"]
    config, rows = calibrate_guard(outputs, hyps, refs, grid=(0.0, 0.34, 1.0))
    assert config.max_edit_rate == 0.34
    assert [r["wer"] for r in rows] == pytest.approx([2 / 12, 0.0, 3 / 12])


def test_harmful_edit_rate_counts_only_right_one_bests():
    refs = ["a b c", "d e f", "g h i"]
    hyps = [["a b c"], ["d e f"], ["g h x"]]
    assert harmful_edit_rate(["a b c", "d e x", "g h i"], hyps, refs) == 0.5
    assert harmful_edit_rate(["x", "y", "z"], [["q"]] * 3, refs) == 0.0


def test_normalisation_is_the_tasks_own():
    # ASR (hyporadise normaliser): casing and punctuation do not count; acronyms are spelled out.
    assert (
        judge("Turn OFF the lights, please!", ["turn o f f the lights please"], GuardConfig()).edit_rate == 0
    )
    # GEC (no normaliser): the capital and the full stop are part of the correction.
    verdict = judge("He goes home.", ["he goes home"], GuardConfig(), task="gec")
    assert verdict.edit_rate == pytest.approx(2 / 3)


def test_guard_thresholds_are_read_back_from_the_checkpoint(tmp_path):
    import json

    from neko.errors import ConfigError
    from neko.infer.loading import read_guard

    assert read_guard(tmp_path) == (None, {})
    (tmp_path / "neko_config.json").write_text(json.dumps({"model": {}, "training": {}}))
    assert read_guard(tmp_path) == (None, {})
    (tmp_path / "neko_config.json").write_text(
        json.dumps({"guard": {"max_edit_rate": 0.3}, "task_guards": {"asr": {"min_margin": "inf"}}})
    )
    general, per_task = read_guard(tmp_path)
    assert general == GuardConfig(max_edit_rate=0.3)
    assert per_task == {"asr": GuardConfig(min_margin=float("inf"))}
    (tmp_path / "neko_config.json").write_text(json.dumps({"guard": {"max_edit": 0.3}}))
    with pytest.raises(ConfigError, match="valid keys: max_edit_rate"):
        read_guard(tmp_path)
    (tmp_path / "neko_config.json").write_text(json.dumps({"task_guards": {"ocr": {"margin": 1}}}))
    with pytest.raises(ConfigError, match="task_guards.ocr"):
        read_guard(tmp_path)


def test_margin_check_keeps_only_changes_the_model_is_sure_of():
    config = GuardConfig(min_margin=2.0)
    # Changing the first hypothesis needs a margin; keeping it (up to case and punctuation) does not.
    assert guard_output(HYPS[1], HYPS, config, margin=3.0) == (HYPS[1], False)
    assert guard_output(HYPS[1], HYPS, config, margin=1.0) == (HYPS[0], True)
    assert guard_output("Turn of the lights in the kitchen.", HYPS, config) == (HYPS[0], False)
    with pytest.raises(ValueError, match="margin"):
        guard_output(HYPS[1], HYPS, config)
    assert guard_output(HYPS[1], HYPS, GuardConfig(min_margin=float("inf")), margin=99.0)[1]
    assert guard_output(HYPS[1], HYPS, GuardConfig(min_margin=float("inf"))) == (HYPS[0], True)


def test_calibration_with_margins_is_never_worse_than_the_first_hypothesis():
    refs = ["turn off the lights", "book a table for two", "the red cup"]
    hyps = [["turn of the lights", "turn off the lights"], ["book a table for two", "book a cable for two"]]
    hyps.append(["the red cap", "the red cup"])
    outputs = ["turn off the lights", "book a cable for two", "the red cup"]
    # The model is sure of its two right changes (margins 5 and 3) and unsure of the wrong one (0.5).
    config, rows = calibrate_guard(outputs, hyps, refs, margins=[5.0, 0.5, 3.0], margin_grid=(0.0, 1.0, 4.0))
    assert config.min_margin == 1.0
    best = min(r["wer"] for r in rows)
    assert best == 0.0
    first = [r["wer"] for r in rows if r["min_margin"] == float("inf")]
    assert first and all(w == pytest.approx(2 / 12) for w in first)
    # Every change wrong: the guard learns to always fall back, and matches the first hypothesis.
    config, _ = calibrate_guard(["x y z"] * 3, hyps, refs, margins=[9.0, 9.0, 9.0], margin_grid=(0.0,))
    assert config.min_margin == float("inf")


def test_calibration_dev_records_can_leave_out_a_condition(tmp_path):
    from neko.commands.calibrate import parse_exclude
    from neko.infer.calibrate import read_dev
    from neko.records import Record, write_records

    records = [
        Record(
            id=f"r{i}", task="asr", dataset="dev", hypotheses=["a"], references=["a"], meta={"voice": voice}
        )
        for i, voice in enumerate(["espeak:en", "piper:en_US", "piper:en_GB"])
    ]
    write_records(tmp_path / "dev.jsonl", records)
    exclude = parse_exclude(["voice=espeak:*"])
    by_task, _ = read_dev([str(tmp_path / "dev.jsonl")], exclude=exclude)
    assert [r.id for r in by_task["asr"]] == ["r1", "r2"]
    with pytest.raises(ConfigError, match="KEY=GLOB"):
        parse_exclude(["voice"])

"""The guard: judging outputs, calibrating the threshold on dev data, the harmful-edit rate."""

from __future__ import annotations

import pytest

from neko.infer.guard import GuardConfig, calibrate_guard, guard_output, harmful_edit_rate, judge

HYPS = ["turn of the lights in the kitchen", "turn off the lights in the kitchen"]


def test_close_output_is_kept_and_garbage_falls_back():
    assert guard_output("Turn off the lights in the kitchen.", HYPS, GuardConfig()) == (
        "Turn off the lights in the kitchen.",
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

    assert read_guard(tmp_path) is None
    (tmp_path / "neko_config.json").write_text(json.dumps({"model": {}, "training": {}}))
    assert read_guard(tmp_path) is None
    (tmp_path / "neko_config.json").write_text(json.dumps({"model": {}, "guard": {"max_edit_rate": 0.3}}))
    assert read_guard(tmp_path) == GuardConfig(max_edit_rate=0.3)
    (tmp_path / "neko_config.json").write_text(json.dumps({"guard": {"max_edit": 0.3}}))
    with pytest.raises(ConfigError, match="valid keys: max_edit_rate"):
        read_guard(tmp_path)

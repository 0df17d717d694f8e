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

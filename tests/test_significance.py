"""Paired bootstrap: a clear win is sure, no difference is never a win, one lucky record is not enough."""

from neko.infer.significance import paired_bootstrap


def _errors(refs):
    # A corpus error rate: wrong outputs over the records of the sample.
    return lambda sample, outputs: (
        sum(o != refs[i] for i, o in zip(sample, outputs, strict=True)) / len(sample)
    )


def test_a_system_right_everywhere_beats_one_wrong_everywhere_on_every_sample():
    refs = [f"r{i}" for i in range(20)]
    assert paired_bootstrap(_errors(refs), refs, ["x"] * 20) == 1.0
    assert paired_bootstrap(_errors(refs), ["x"] * 20, refs) == 0.0


def test_identical_outputs_never_win():
    refs = [f"r{i}" for i in range(20)]
    assert paired_bootstrap(_errors(refs), refs, refs) == 0.0


def test_one_better_record_in_thirty_is_not_significant_and_the_share_is_seeded():
    refs = [f"r{i}" for i in range(30)]
    b = ["x"] * 15 + refs[15:]
    a = list(b)
    a[0] = refs[0]  # a fixes one record more than b
    share = paired_bootstrap(_errors(refs), a, b, seed=1)
    assert 0.3 < share < 0.95  # it wins only on the samples that draw record 0 (about 63%)
    assert share == paired_bootstrap(_errors(refs), a, b, seed=1)


def test_higher_is_better_flips_the_direction():
    refs = [f"r{i}" for i in range(10)]

    def accuracy(sample, outputs):
        return 1 - _errors(refs)(sample, outputs)

    assert paired_bootstrap(accuracy, refs, ["x"] * 10, higher_is_better=True) == 1.0


def test_edit_counts_add_up_to_the_corpus_wer():
    from neko.infer.significance import edit_counts
    from neko.metrics import score_corpus

    refs = ["I'd like a flight to Boston.", "show me fares", "one two three four"]
    outs = ["i'd like the flight to boston", "show me the fares please", "one three four"]
    counts = score_corpus("asr", outs, refs)["wer_counts"]
    total = counts["substitutions"] + counts["deletions"] + counts["insertions"]
    assert sum(edit_counts("asr", outs, refs)) == total == 4


def test_gate_confidence_asks_for_a_gain_a_dev_set_can_vouch_for():
    from neko.infer.significance import gate_confidence

    refs = [f"word{i} and more words here" for i in range(40)]
    first = [f"wurd{i} and more words here" for i in range(40)]  # one substitution each
    fixed_all = list(refs)
    fixed_one = [refs[0], *first[1:]]
    assert gate_confidence("asr", None, first, first, refs) == 0.0
    assert gate_confidence("asr", None, fixed_all, first, refs) == 1.0
    assert gate_confidence("asr", None, fixed_one, first, refs) < 0.95
    worse = [f"{f} extra" for f in first]
    assert gate_confidence("asr", None, worse, first, refs) == 0.0


def _records(n):
    from neko.records import Record

    return [
        Record(
            id=str(i),
            task="asr",
            dataset="toy",
            hypotheses=[f"wurd{i} and more words here", f"word{i} and more words here"],
            references=[f"word{i} and more words here"],
        )
        for i in range(n)
    ]


def test_a_guard_that_wins_on_one_lucky_record_always_falls_back_when_confidence_is_asked():
    from neko.infer.calibrate import _fit_guard
    from neko.infer.guard import GuardConfig

    records = _records(30)
    hypotheses = [r.hypotheses for r in records]
    lucky = [r.references[0] if i == 0 else r.hypotheses[0] for i, r in enumerate(records)]
    margins = [5.0] * 30
    edits, _, share = _fit_guard("asr", records, lucky, hypotheses, margins, GuardConfig(), 0.0)
    assert share is None and edits.min_margin < float("inf")  # in-sample the edit wins
    vouched, _, share = _fit_guard("asr", records, lucky, hypotheses, margins, GuardConfig(), 0.95)
    assert share < 0.95 and vouched.min_margin == float("inf")
    fixed = [r.references[0] for r in records]
    kept, _, share = _fit_guard("asr", records, fixed, hypotheses, margins, GuardConfig(), 0.95)
    assert share == 1.0 and kept.min_margin < float("inf")


def test_a_decision_must_help_on_every_dev_source_not_only_on_their_pool():
    from neko.infer.calibrate import _vouch
    from neko.records import Record

    refs = [f"turn off the lights in room {i}" for i in range(40)]
    records = [
        Record(id=str(i), task="asr", dataset="a" if i < 20 else "b", hypotheses=["x"], references=[ref])
        for i, ref in enumerate(refs)
    ]
    first = [r.replace("off", "of") if i < 20 else r for i, r in enumerate(refs)]
    # Source a: every error fixed; source b: one record made worse. The pool gains 19 errors.
    gated = [*refs[:20], *refs[20:39], refs[39].replace("lights", "light")]
    assert _vouch("asr", records, gated, first) == 0.0
    one_source = [
        Record(id=r.id, task="asr", dataset="a", hypotheses=["x"], references=r.references) for r in records
    ]
    assert _vouch("asr", one_source, gated, first) == 1.0

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

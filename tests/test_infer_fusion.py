"""Evidence fusion: candidate features, the weight search (never worse than the first hypothesis), storage."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from neko.errors import ConfigError
from neko.infer.fusion import FEATURES, FusionWeights, calibrate_fusion, candidate_set
from neko.infer.guard import corpus_wer

CN_HYPS = ["turn of the lights", "turn off the lights", "turn off the light"]


def lm_of(texts, logps=None):
    """An ``lm`` mapping: every text scores ``logps[i]`` (default -1 per word) over its words + EOS."""
    logps = logps or [-float(len(t.split())) for t in texts]
    return {t: (lp, len(t.split()) + 1) for t, lp in zip(texts, logps, strict=True)}


def feature(cands, index, name):
    return cands.features[index, FEATURES.index(name)]


def test_cn_posterior_of_the_consensus_is_highest():
    cands = candidate_set(CN_HYPS, lm_of(CN_HYPS))
    cn = [feature(cands, i, "cn") for i in range(3)]
    # Slot posteriors: turn 1, of 1/3 | off 2/3, the 1, lights 2/3 | light 1/3.
    assert cn == pytest.approx([0.75, 5 / 6, 0.75])
    assert int(np.argmax([feature(cands, i, "mbr") for i in range(3)])) == 1
    # A text that is no hypothesis is aligned to the slots; the consensus proposed as an extra scores alike.
    extra = candidate_set(CN_HYPS[::2], lm_of([*CN_HYPS[::2], CN_HYPS[1]]), extras=[CN_HYPS[1]])
    assert feature(extra, 2, "cn") == pytest.approx(0.75) and feature(extra, 2, "extra") == 1.0
    assert feature(extra, 2, "cn") > feature(extra, 0, "cn") - 1e-9


def test_recogniser_scores_weigh_the_votes():
    plain = candidate_set(CN_HYPS, lm_of(CN_HYPS))
    scored = candidate_set(CN_HYPS, lm_of(CN_HYPS), scores=[5.0, 0.0, 0.0])
    assert feature(scored, 0, "cn") > feature(scored, 1, "cn")  # the first now outvotes the other two
    assert feature(scored, 0, "recog") == pytest.approx(np.log(np.exp(5) / (np.exp(5) + 2)))
    assert feature(plain, 0, "recog") == 0.0  # no scores: the rank carries the recogniser's order
    assert [feature(plain, i, "rank") for i in range(3)] == pytest.approx([0, -np.log(2), -np.log(3)])


def test_generated_and_extra_candidates_merge_with_equal_hypotheses():
    texts = [*CN_HYPS, "Turn off the lights.", "turn off all the lights"]
    cands = candidate_set(CN_HYPS, lm_of(texts), generated=texts[3], extras=[texts[4], CN_HYPS[2]])
    # ASR's normaliser ignores casing and punctuation: the generated text is hypothesis 1.
    assert cands.texts == [*CN_HYPS, "turn off all the lights"]
    assert cands.hypothesis == [0, 1, 2, None] and cands.generated == 1
    assert [feature(cands, i, "generated") for i in range(4)] == [0, 1, 0, 0]
    assert [feature(cands, i, "extra") for i in range(4)] == [0, 0, 1, 1]
    assert [feature(cands, i, "new") for i in range(4)] == [0, 0, 0, 1]
    assert feature(cands, 3, "edit") == pytest.approx(1 / 4) and feature(cands, 1, "edit") == 0.0
    assert feature(cands, 3, "length") == pytest.approx(np.log(6 / 5))
    assert feature(cands, 3, "rank") == pytest.approx(-np.log(4))
    # The margin compares the generated surface form with the first hypothesis.
    assert cands.margin == pytest.approx(-4.0 - -4.0)
    assert candidate_set(CN_HYPS, lm_of(CN_HYPS), generated=CN_HYPS[0]).margin is None
    lm = lm_of(texts, [-2.0, -1.0, -3.0, -0.5, -9.0])
    assert candidate_set(CN_HYPS, lm, generated=texts[3]).margin == pytest.approx(1.5)
    assert feature(candidate_set(CN_HYPS, lm), 0, "lm_mean") == pytest.approx(-2.0 / 5)


def toy(first_right: bool, n: int = 6):
    """Records whose n-best is ``CN_HYPS`` reworded; the reference is the first or the consensus."""
    sets, refs = [], []
    for i in range(n):
        hyps = [f"{h} {i}" for h in CN_HYPS]
        gen = f"please {hyps[1]}"
        lm = lm_of([*hyps, gen], [-3.0 - i % 2, -2.5 - i % 3, -4.0, -6.0])
        sets.append(candidate_set(hyps, lm, generated=gen))
        refs.append(hyps[0] if first_right else hyps[1])
    return sets, refs


def test_calibration_keeps_the_first_hypothesis_when_it_is_best():
    sets, refs = toy(first_right=True)
    weights, err = calibrate_fusion(sets, lambda outs: corpus_wer(outs, refs))
    assert err == 0.0
    assert all(weights.pick(s.features)[0] == 0 for s in sets)


def test_calibration_picks_a_better_candidate_when_there_is_one():
    sets, refs = toy(first_right=False)
    first = corpus_wer([s.texts[0] for s in sets], refs)
    weights, err = calibrate_fusion(sets, lambda outs: corpus_wer(outs, refs))
    assert first > 0 and err == 0.0
    assert [s.texts[weights.pick(s.features)[0]] for s in sets] == refs
    # The weights survive their JSON round trip with the same picks.
    back = FusionWeights.from_dict(json.loads(json.dumps(weights.to_dict())))
    assert [back.pick(s.features)[0] for s in sets] == [1] * len(sets)


def random_sets(rng: random.Random, hypotheses: int, generated: bool = False, extras: int = 0):
    """12 random candidate sets over a 6-word vocabulary (``hypotheses`` draws, a generated text, ``extras``
    extra texts, random model scores) and a random reference each."""
    vocab = "a b c d e f".split()
    sets, refs = [], []
    for _ in range(12):
        hyps = list(dict.fromkeys(" ".join(rng.choices(vocab, k=4)) for _ in range(hypotheses)))
        gen = " ".join(rng.choices(vocab, k=rng.randint(2, 5))) if generated else None
        more = [" ".join(rng.choices(vocab, k=4)) for _ in range(extras)]
        lm = {t: (rng.uniform(-10, 0), 5) for t in [*hyps, *([gen] if gen else []), *more]}
        sets.append(candidate_set(hyps, lm, generated=gen, extras=more))
        refs.append(" ".join(rng.choices(vocab, k=4)))
    return sets, refs


@pytest.mark.parametrize("seed", range(5))
def test_calibration_is_never_worse_than_the_first_hypothesis(seed):
    sets, refs = random_sets(random.Random(seed), 4, generated=True)
    first = corpus_wer([s.texts[0] for s in sets], refs)
    weights, err = calibrate_fusion(sets, lambda outs: corpus_wer(outs, refs))
    picked = corpus_wer([s.texts[weights.pick(s.features)[0]] for s in sets], refs)
    assert err <= first and picked == pytest.approx(err)


@pytest.mark.parametrize("seed", range(3))
def test_calibration_is_never_worse_than_a_given_start(seed):
    # What the plain fit found (here: random weights) is a start of the fit with extras: never lost.
    rng = random.Random(seed)
    sets, refs = random_sets(rng, 3, extras=2)
    error = lambda outs: corpus_wer(outs, refs)  # noqa: E731
    start = FusionWeights({name: rng.uniform(-2, 2) for name in FEATURES})
    given = error([s.texts[start.pick(s.features)[0]] for s in sets])
    _, err = calibrate_fusion(sets, error, starts=[start])
    assert err <= given


def test_first_weights_and_ties_return_the_first_hypothesis():
    sets, _ = toy(first_right=False)
    assert all(FusionWeights.first().pick(s.features)[0] == 0 for s in sets)
    assert all(FusionWeights({}).pick(s.features)[0] == 0 for s in sets)  # all tied


def test_fusion_weights_are_checked_and_read_back(tmp_path):
    from neko.infer.loading import read_fusion

    assert read_fusion(tmp_path) == {}
    with pytest.raises(ConfigError, match="unknown fusion feature"):
        FusionWeights({"lm": 1.0, "bogus": 2.0})
    file = tmp_path / "neko_config.json"
    file.write_text(json.dumps({"task_fusion": {"asr": {"lm": 0.5, "cn": 2}}}))
    assert read_fusion(tmp_path) == {"asr": FusionWeights({"lm": 0.5, "cn": 2.0})}
    file.write_text(json.dumps({"task_fusion": {"mt": {"lm": "high"}}}))
    with pytest.raises(ConfigError, match="task_fusion.mt"):
        read_fusion(tmp_path)
    file.write_text(json.dumps({"task_fusion": {"mt": {"margin": 1}}}))
    with pytest.raises(ConfigError, match="task_fusion.mt: unknown fusion feature"):
        read_fusion(tmp_path)


def tiny_corrector(**kw):
    from neko.infer.config import InferConfig
    from neko.infer.corrector import Corrector
    from neko.model.tiny import tiny_dense_model, tiny_tokenizer

    return Corrector(tiny_dense_model(), tiny_tokenizer(), InferConfig(max_new_tokens=10, **kw))


def test_auto_with_fusion_weights_returns_the_fused_argmax():
    hyps = ["the quick brown fox jumps over the lazy dog", "the lazy dog", "a quick brown fox"]
    plain = tiny_corrector()
    generated = plain.correct(hyps, mode="generate").text
    (cands,) = plain.score_candidates([{"id": "0", "hypotheses": hyps}], [generated])
    # The lm feature of each hypothesis is select mode's score.
    selected = plain.correct(hyps, mode="select")
    assert list(cands.features[:3, FEATURES.index("lm")]) == pytest.approx(selected.scores, abs=1e-4)

    def auto(weights):
        return tiny_corrector(task_fusion={"asr": FusionWeights(weights)}).correct(hyps)

    first = auto({"rank": 1.0})
    assert first.fallback and first.text == hyps[0] and first.index == 0 and first.generated == generated
    assert first.features is not None and first.features["rank"] == 0.0 and first.fused == 0.0
    best = int(np.argmax(cands.features[:, FEATURES.index("lm")]))
    by_lm = auto({"lm": 1.0})
    assert by_lm.text == cands.texts[best] and by_lm.fallback == (best == 0)
    assert by_lm.fused == pytest.approx(cands.features[best, FEATURES.index("lm")], abs=1e-4)
    assert auto({"generated": 1.0}).text == cands.texts[cands.generated]
    # Another task keeps the guard.
    gec = tiny_corrector(task_fusion={"asr": FusionWeights({"lm": 1.0})}).correct("he go home", task="gec")
    assert gec.fused is None and gec.features is None


def test_calibrate_task_fits_fusion_and_writes_it_only_where_it_wins(tmp_path):
    from neko.infer.calibrate import calibrate_task, write_task_guards
    from neko.infer.loading import read_fusion
    from neko.records import Record

    corrector = tiny_corrector()
    # The consensus (second) hypothesis is right: the random model's generations are not.
    records = [
        Record(
            id=str(i),
            task="asr",
            dataset="dev",
            hypotheses=[f"{h} {w}" for h in CN_HYPS],
            references=[f"{CN_HYPS[1]} {w}"],
        )
        for i, w in enumerate(["now", "please", "again", "today"])
    ]
    result = calibrate_task(corrector, "asr", records, batch_size=2)
    assert result.n == 4 and result.first > 0 and result.guarded <= result.first
    assert result.fused == 0.0 and result.uses_fusion and result.decision == "fusion"
    assert result.fusion_fallback_rate == 0.0
    file = write_task_guards(tmp_path, [result], {"asr": ["dev.jsonl"]})
    saved = json.loads(file.read_text())
    assert saved["calibration"]["asr"]["decision"] == "fusion" and saved["calibration"]["asr"]["fused"] == 0
    fused = tiny_corrector(task_fusion=read_fusion(tmp_path)).correct_many(records)
    assert [c.text for c in fused] == [r.references[0] for r in records]
    # Where the first hypothesis is right, fusion cannot beat the guard: the guard is kept, weights removed.
    right = [
        Record(id=r.id, task="asr", dataset="dev", hypotheses=r.hypotheses, references=r.hypotheses[:1])
        for r in records
    ]
    again = calibrate_task(corrector, "asr", right, batch_size=2)
    assert again.fused == again.first == 0.0 and again.decision == "guard"
    write_task_guards(tmp_path, [again], {"asr": ["dev.jsonl"]})
    assert read_fusion(tmp_path) == {} and "task_fusion" not in json.loads(file.read_text())


def test_extra_sources_are_named_and_can_be_left_out():
    weights = FusionWeights({"cn": 2.0}, extras=("constrained",))
    assert weights.to_dict() == {"cn": 2.0, "extras": ["constrained"]}
    assert FusionWeights.from_dict(weights.to_dict()) == weights
    with pytest.raises(ConfigError, match="unknown extra candidate source"):
        FusionWeights.from_dict({"cn": 1.0, "extras": ["oracle"]})
    texts = [*CN_HYPS, "turn off all the lights", "turn off the lights now"]
    cands = candidate_set(CN_HYPS, lm_of(texts), generated=texts[3], extras=[texts[4], CN_HYPS[1]])
    plain = cands.without_extras()
    assert plain.texts == texts[:4] and plain.generated == 3
    assert not plain.features[:, FEATURES.index("extra")].any()
    same = candidate_set(CN_HYPS, lm_of(texts), generated=texts[3])
    np.testing.assert_array_equal(plain.features, same.features)


def test_weights_for_records_without_scores_are_stored_and_chosen_by_the_record():
    unscored = FusionWeights({"lm": 1.0})
    weights = FusionWeights({"recog": 2.0, "new": 0.5}, unscored=unscored)
    assert (
        weights.for_record("x", scored=True) is weights and weights.for_record("x", scored=False) is unscored
    )
    assert FusionWeights.from_dict(json.loads(json.dumps(weights.to_dict()))) == weights
    assert FusionWeights({"lm": 1.0}).for_record("x", scored=False) == FusionWeights({"lm": 1.0})
    with pytest.raises(ConfigError, match="task_fusion.unscored"):
        FusionWeights.from_dict({"lm": 1.0, "unscored": {"bogus": 1.0}})


def scored_lights(words):
    """ASR dev records whose recogniser scores favour the right (second) of two hypotheses, one per word."""
    from neko.records import Record

    return [
        Record(
            id=str(i),
            task="asr",
            dataset="dev",
            hypotheses=[f"turn of the lights {w}", f"turn off the lights {w}"],
            scores=[-2.0, -0.5],
            references=[f"turn off the lights {w}"],
        )
        for i, w in enumerate(words)
    ]


def test_calibration_fits_separate_weights_for_records_without_scores():
    from dataclasses import replace

    from neko.infer.calibrate import calibrate_task

    # The recogniser's scores point at the right hypothesis (the second): scored records can use them,
    # records without scores cannot, and get weights fitted with the scores removed.
    records = scored_lights(["now", "again", "today", "please"])
    corrector = tiny_corrector()
    result = calibrate_task(corrector, "asr", records, batch_size=2, sources=())
    assert result.fused == 0.0 and result.fusion.weights.get("recog", 0.0) > 0.0
    unscored = result.fusion.unscored
    assert unscored is not None and "recog" not in unscored.weights
    assert result.fused_unscored is not None and result.summary()["fused_unscored"] == result.fused_unscored
    auto = tiny_corrector(task_fusion={"asr": result.fusion})
    assert [c.text for c in auto.correct_many(records)] == [r.references[0] for r in records]
    bare = [replace(r, scores=None) for r in records]
    corrections = auto.correct_many(bare)
    sets = auto.score_candidates(bare, [c.generated for c in corrections])
    assert [c.text for c in corrections] == [s.texts[unscored.pick(s.features)[0]] for s in sets]


def test_constrained_paths_join_the_candidates_when_they_help():
    from neko.infer.calibrate import calibrate_task
    from neko.records import Record

    # The reference is the confusion network's consensus, which is none of the hypotheses; a large
    # CN weight makes the constrained search find it.
    corrector = tiny_corrector(cn_weight=100.0)
    hyps = ["turn of the lights", "turn off the light", "turn off the lights please"]
    records = [
        Record(
            id=str(i),
            task="asr",
            dataset="dev",
            hypotheses=[f"{h} {w}" for h in hyps],
            references=[f"turn off the lights {w}"],
        )
        for i, w in enumerate(["now", "again", "today"])
    ]
    plain = calibrate_task(corrector, "asr", records, batch_size=2, sources=())
    assert plain.fusion.extras == () and plain.fused > 0
    result = calibrate_task(corrector, "asr", records, batch_size=2)
    assert result.fusion.extras == ("constrained",) and result.fused == 0.0 and result.uses_fusion
    auto = tiny_corrector(cn_weight=100.0, task_fusion={"asr": result.fusion}).correct_many(records)
    assert [c.text for c in auto] == [r.references[0] for r in records]
    assert all(c.index is None and c.features["extra"] == 1.0 and not c.fallback for c in auto)


def test_a_dev_domain_with_nothing_to_gain_abstains_when_fusion_does_it_no_harm():
    from dataclasses import replace

    from neko.infer.calibrate import calibrate_task
    from neko.records import Record

    words = ["now", "again", "today", "please", "later", "soon", "here", "there", "too", "then", "so", "on"]

    def record(i, word, dataset, scores, right):
        hyps = [f"turn of the lights {word}", f"turn off the lights {word}"]
        return Record(str(i), "asr", dataset, hyps, scores=scores, references=[hyps[right]])

    # ATIS: the scores favour the second hypothesis, which is right. Clean: the scores favour the first,
    # which is right: no decision can gain there, and trusting the scores changes nothing.
    atis = [record(i, w, "atis_train", [-2.0, -0.5], 1) for i, w in enumerate(words[:8])]
    clean = [record(10 + i, w, "clean_dev", [-0.5, -2.0], 0) for i, w in enumerate(words)]
    result = calibrate_task(tiny_corrector(), "asr", atis + clean, batch_size=4, sources=(), confidence=0.95)
    assert result.fused == 0.0 and result.fusion is not None
    assert result.fusion.domains == ()  # every record, unseen domains included
    assert result.fusion.serves("chime4")
    # A domain with errors that fusion leaves exactly as they were (no hypothesis is right, the scores favour
    # the first) neither vouches nor objects: nothing was decided there.
    wrong = [record(10 + i, w, "noisy_dev", [-0.5, -2.0], 0) for i, w in enumerate(words)]
    wrong = [replace(r, references=[f"turn on the lights {w}"]) for r, w in zip(wrong, words, strict=True)]
    result = calibrate_task(tiny_corrector(), "asr", atis + wrong, batch_size=4, sources=(), confidence=0.95)
    assert result.fusion is not None and result.fusion.domains == ()
    # A domain with errors to fix that fusion changes must vouch itself: trusting the scores there swaps
    # as many right first hypotheses for wrong ones as the reverse (no worse, no better), so fusion serves
    # ATIS only.
    mixed = [record(10 + i, w, "noisy_dev", [-2.0, -0.5], i % 2) for i, w in enumerate(words)]
    result = calibrate_task(tiny_corrector(), "asr", atis + mixed, batch_size=4, sources=(), confidence=0.95)
    assert result.fusion is not None and result.fusion.domains == ("atis",)


def test_fusion_vouched_on_one_dev_domain_decides_that_domain_only():
    from dataclasses import replace

    from neko.infer.calibrate import calibrate_task
    from neko.records import Record

    words = ["now", "again", "today", "please", "later", "soon", "here", "there", "too", "then", "so", "on"]

    def record(i, word, dataset, right_first):
        # The same lists in both domains; the recogniser's scores favour the second hypothesis, which is
        # right in the ATIS dev part and wrong elsewhere.
        hyps = [f"turn of the lights {word}", f"turn off the lights {word}"]
        return Record(
            str(i), "asr", dataset, hyps, scores=[-2.0, -0.5], references=[hyps[0 if right_first else 1]]
        )

    atis = [record(i, w, "atis_train", right_first=False) for i, w in enumerate(words[:8])]
    other = [record(10 + i, w, "other_dev", right_first=True) for i, w in enumerate(words)]
    corrector = tiny_corrector()
    result = calibrate_task(corrector, "asr", atis + other, batch_size=4, sources=(), confidence=0.95)
    # On the pool trusting the scores loses (12 records made wrong, 8 made right): the pooled fit keeps the
    # first hypothesis. The ATIS records alone vouch for trusting them, so the weights fitted on them decide
    # ATIS records, and only those.
    pooled = calibrate_task(corrector, "asr", atis + other, batch_size=4, sources=())
    assert pooled.fused == pooled.first
    assert result.fusion is not None and result.fusion.domains == ("atis",) and result.uses_fusion
    assert result.fused == 0.0 and result.guarded > 0.0
    auto = tiny_corrector(task_fusion={"asr": result.fusion})
    atis_test = [replace(r, dataset="atis") for r in atis[:3]]  # the test file's records: the same domain
    unseen = [replace(r, dataset="chime4") for r in atis[:3]]
    assert [c.text for c in auto.correct_many(atis_test)] == [r.references[0] for r in atis_test]
    for rec, corrected in zip(other + unseen, auto.correct_many(other + unseen), strict=True):
        assert corrected.text == rec.hypotheses[0] and corrected.features is None  # the guard decided
    stored = FusionWeights.from_dict(result.fusion.to_dict())
    assert stored == result.fusion and stored.serves("atis_train") and not stored.serves("chime4")


def test_unseen_domain_weights_are_stored_and_chosen_by_the_record_domain():
    elsewhere = FusionWeights({"recog": 1.0}, generate=False)
    weights = FusionWeights({"lm": 1.0}, domains=("atis",), elsewhere=elsewhere)
    assert weights.serves("chime4") and not FusionWeights({"lm": 1.0}, domains=("atis",)).serves("chime4")
    assert weights.for_record("atis", scored=True) is weights
    assert weights.for_record("chime4", scored=True) is elsewhere
    stored = weights.to_dict()
    assert stored["elsewhere"] == {"recog": 1.0, "generate": False}
    assert FusionWeights.from_dict(json.loads(json.dumps(stored))) == weights
    with pytest.raises(ConfigError, match="generate"):
        FusionWeights.from_dict({"lm": 1.0, "generate": "no"})


def test_a_set_without_the_generated_text_keeps_the_hypotheses_and_extras():
    hyps = CN_HYPS
    cands = candidate_set(
        hyps,
        lm_of([*hyps, "turn on the lights", "turn off lights"]),
        generated="turn on the lights",
        extras=["turn off lights"],
    )
    bare = cands.without_generated()
    assert bare.texts == [*hyps, "turn off lights"] and bare.generated is None and bare.margin is None
    assert not bare.features[:, FEATURES.index("generated")].any()
    assert bare.features[3, FEATURES.index("extra")] == 1.0
    # A generated text that an extra source proposed too stays, as an extra.
    both = candidate_set(
        hyps,
        lm_of([*hyps, "turn on the lights"]),
        generated="turn on the lights",
        extras=["turn on the lights"],
    )
    assert both.without_generated().texts == [*hyps, "turn on the lights"]


def test_unseen_domains_get_weights_every_held_out_dev_domain_vouches_for(monkeypatch):
    from dataclasses import replace

    from neko.infer.calibrate import calibrate_task
    from neko.records import Record

    words = ["now", "again", "today", "please", "later", "soon", "here", "there", "too", "then", "so", "on"]

    def record(i, word, dataset, reference):
        # The recogniser's scores favour the second hypothesis.
        hyps = [f"turn of the lights {word}", f"turn off the lights {word}"]
        ref = hyps[1] if reference is None else f"{reference} {word}"
        return Record(str(i), "asr", dataset, hyps, scores=[-2.0, -0.5], references=[ref])

    # In domains a and b the second hypothesis is right. In c it is right twice; ten times neither is:
    # trusting the scores does c no harm, but two fixes cannot vouch for it (its references could).
    a = [record(i, w, "a_dev", None) for i, w in enumerate(words[:8])]
    b = [record(20 + i, w, "b_dev", None) for i, w in enumerate(words[:8])]
    c = [record(40 + i, w, "c_dev", None if i < 2 else "turn on the lights") for i, w in enumerate(words)]
    result = calibrate_task(tiny_corrector(), "asr", a + b + c, batch_size=4, sources=(), confidence=0.95)
    fusion = result.fusion
    assert fusion is not None and fusion.domains == ("a", "b") and fusion.generate
    # Each of a, b, c held out is no worse under the weights fitted on the other two: the scores' weights
    # serve c and every unseen domain, without generating (the random model's text is no candidate).
    assert fusion.elsewhere is not None and not fusion.elsewhere.generate
    assert result.fused < result.first

    def no_generation(*args, **kwargs):
        raise AssertionError("a record of an unseen domain was generated")

    monkeypatch.setattr("neko.infer.corrector.generate_all", no_generation)
    unseen = [replace(r, dataset="chime4") for r in a[:3]] + c[:2]
    out = tiny_corrector(task_fusion={"asr": fusion}).correct_many(unseen)
    assert [o.text for o in out] == [r.hypotheses[1] for r in unseen]
    assert all(o.generated is None and o.features["generated"] == 0.0 for o in out)


def test_unseen_domain_weights_are_refused_when_a_held_out_domain_loses():
    from neko.infer.calibrate import calibrate_task
    from neko.records import Record

    words = ["now", "again", "today", "please", "later", "soon", "here", "there", "too", "then", "so", "on"]

    def record(i, word, dataset, right):
        hyps = [f"turn of the lights {word}", f"turn off the lights {word}"]
        return Record(str(i), "asr", dataset, hyps, scores=[-2.0, -0.5], references=[hyps[right]])

    # Trusting the scores is right in a and b and wrong in c: weights fitted on a and b make c worse.
    a = [record(i, w, "a_dev", 1) for i, w in enumerate(words[:8])]
    b = [record(20 + i, w, "b_dev", 1) for i, w in enumerate(words[:8])]
    c = [record(40 + i, w, "c_dev", 0) for i, w in enumerate(words[:4])]
    result = calibrate_task(tiny_corrector(), "asr", a + b + c, batch_size=4, sources=(), confidence=0.95)
    assert result.fusion is not None and result.fusion.domains == ("a", "b")
    assert result.fusion.elsewhere is None and not result.fusion.serves("chime4")
    held_out = result.unseen_domains["c"]
    assert held_out["held_out"] > held_out["first"] == 0.0


@pytest.mark.parametrize("task", ["asr", "ocr", "gec"])
def test_the_summed_part_scorer_equals_the_corpus_metric(task):
    from neko.infer.calibrate import _part_scorer, task_score
    from neko.records import Record

    refs = ["turn off the lights now", "Book a table, please.", "he goes home", "a b c d e f"]
    outs = ["turn of the lights", "book a table please", "he go home", "a b d e f g"]
    records = [
        Record(str(i), task, "dev", [o], references=[r])
        for i, (o, r) in enumerate(zip(outs, refs, strict=True))
    ]
    score = _part_scorer(task, records)
    for rows in ([0, 1, 2, 3], [1, 3], [2]):
        part = [records[i] for i in rows]
        assert score(rows, [outs[i] for i in rows]) == pytest.approx(
            task_score(task, part)([outs[i] for i in rows]), abs=1e-12
        )


def test_weights_for_single_hypothesis_records_are_stored_and_chosen_by_the_record():
    single = FusionWeights({"lm_mean": 1.0, "edit": -1.0}, extras=("constrained",))
    weights = FusionWeights({"cn": 2.0}, unscored=FusionWeights({"lm": 1.0}), single=single)
    assert weights.for_record("x", scored=False, single=True) is single
    assert weights.for_record("x", scored=True) is weights
    assert weights.for_record("x", scored=False) is weights.unscored
    stored = weights.to_dict()
    assert stored["single"] == {"lm_mean": 1.0, "edit": -1.0, "extras": ["constrained"]}
    assert FusionWeights.from_dict(json.loads(json.dumps(stored))) == weights
    with pytest.raises(ConfigError, match="task_fusion.single"):
        FusionWeights.from_dict({"lm": 1.0, "single": {"bogus": 1.0}})
    # Unseen-domain weights decide their records whatever the count of hypotheses.
    elsewhere = FusionWeights({"recog": 1.0}, generate=False)
    served = FusionWeights({"lm": 1.0}, domains=("atis",), elsewhere=elsewhere, single=single)
    assert served.for_record("chime4", scored=False, single=True) is elsewhere
    assert served.for_record("atis", scored=False, single=True) is single


def test_calibration_fits_weights_for_single_hypothesis_records_and_auto_uses_them(monkeypatch):
    from dataclasses import replace

    from neko.infer import fusion as fusion_module
    from neko.infer.calibrate import calibrate_task

    words = ["now", "again", "today", "please", "later", "soon"]
    # The n-best's second hypothesis is right; cut to its first hypothesis a record has only the wrong one,
    # which a (test) source of extra candidates fixes by a rule: the single-hypothesis weights learn to take it.
    records = scored_lights(words)

    def fix(model, tokenizer, prepared, config):
        return [[p.record.hypotheses[0].replace(" of ", " off ")] for p in prepared]

    monkeypatch.setitem(fusion_module.EXTRA_SOURCES, "constrained", fix)
    result = calibrate_task(tiny_corrector(), "asr", records, batch_size=3)
    assert result.fused == 0.0 and result.fused_single == 0.0 < result.first
    single = result.fusion.single
    assert single is not None and single.extras == ("constrained",) and single.weights.get("extra", 0.0) > 0
    assert result.summary()["fused_single"] == 0.0
    lone = [replace(r, hypotheses=r.hypotheses[:1], scores=None) for r in records]
    auto = tiny_corrector(task_fusion={"asr": result.fusion}).correct_many(lone)
    assert [c.text for c in auto] == [r.references[0] for r in records]
    assert not single.generate  # the fix decides, the model's text never does: it is not generated
    # Without the fix, nothing beats a lone first hypothesis: the weights keep it and generate nothing.
    monkeypatch.setitem(fusion_module.EXTRA_SOURCES, "constrained", lambda *args: [[] for _ in args[2]])
    refused = calibrate_task(tiny_corrector(), "asr", records, batch_size=3)
    assert refused.fusion.single == replace(FusionWeights.first(), generate=False)
    assert refused.fused_single == refused.first

    def no_generation(*args, **kwargs):
        raise AssertionError("a single-hypothesis record was generated")

    monkeypatch.setattr("neko.infer.corrector.generate_all", no_generation)
    kept = tiny_corrector(task_fusion={"asr": refused.fusion}).correct_many(lone)
    assert [c.text for c in kept] == [r.hypotheses[0] for r in lone]


def test_weights_the_dev_data_refuse_are_refitted_to_make_no_domain_worse():
    from neko.infer.calibrate import _fit_reduced
    from neko.infer.fusion import CandidateSet
    from neko.records import Record

    # Lone OCR lines and one lattice path each. Noisy lines: the path fixes the line, and the model and
    # the confusion network both favour it (12) or only the model does (6). Clean lines: the path spoils the
    # line, and the model favours it on 2 of them where the network does not. Trusting the model alone wins
    # on the pool (18 fixes, 2 spoilt) and makes the clean domain worse; trusting both fixes 12, spoils none.
    def line(i, dataset, right, lm, cn):
        good, bad = f"the cat sat on the mat {i}", f"tbe cat sat on the mat {i}"
        texts = [good, bad] if right else [bad, good]
        features = np.zeros((2, len(FEATURES)))
        for name, values in (("lm", [0.0, lm]), ("cn", [0.0, cn]), ("extra", [0, 1]), ("rank", [0, -0.7])):
            features[:, FEATURES.index(name)] = values
        record = Record(str(i), "ocr", dataset, [texts[0]], references=[good])
        return record, CandidateSet(texts, [0, None], features)

    lines = (
        [line(i, "noisy", False, 1.0, 1.0) for i in range(12)]
        + [line(i, "noisy", False, 1.0, -1.0) for i in range(12, 18)]
        + [line(i, "clean", True, 1.0, -1.0) for i in range(18, 20)]
        + [line(i, "clean", True, -1.0, -1.0) for i in range(20, 38)]
    )
    records, sets = [r for r, _ in lines], [s for _, s in lines]

    def picks(weights):
        return [s.texts[weights.pick(s.features)[0]] for s in sets]

    pooled, _ = _fit_reduced("ocr", records, sets, ("constrained",), confidence=0.0)
    assert sum(p != r.hypotheses[0] for p, r in zip(picks(pooled), records, strict=True)) == 20
    kept, figure = _fit_reduced("ocr", records, sets, ("constrained",), confidence=0.95)
    chosen = picks(kept)
    assert [p == r.references[0] for p, r in zip(chosen, records, strict=True)] == [True] * 12 + [
        False
    ] * 6 + [True] * 20
    assert chosen[18:] == [r.hypotheses[0] for r in records[18:]]  # the clean lines as they were
    assert not kept.generate  # no generated text among the candidates: none to generate
    assert 0.0 < figure < 0.02


def test_single_hypothesis_weights_keep_generation_where_the_generated_text_decides(monkeypatch):
    import re
    from dataclasses import replace

    from neko.infer.calibrate import calibrate_task

    # The model's text is the fix ("of" -> "off" in the record's words): the lone-record weights take it, so
    # those records must still be generated.
    records = scored_lights(["now", "again", "today", "please", "later", "soon"])
    corrector = tiny_corrector()

    def fixed(model, tokenizer, prompts, budgets, **kwargs):
        shown = [re.findall(r"turn of the lights \w+", tokenizer.decode(p))[0] for p in prompts]
        return [text.replace(" of ", " off ") for text in shown]

    monkeypatch.setattr("neko.infer.corrector.generate_all", fixed)
    result = calibrate_task(corrector, "asr", records, batch_size=3, sources=())
    single = result.fusion.single
    assert result.fused_single == 0.0 and single.generate
    lone = [replace(r, hypotheses=r.hypotheses[:1], scores=None) for r in records]
    auto = tiny_corrector(task_fusion={"asr": result.fusion}).correct_many(lone)
    assert [c.text for c in auto] == [r.references[0] for r in records]

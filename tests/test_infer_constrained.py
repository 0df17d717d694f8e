"""``constrained`` mode: only confusion-network paths come out, scored exactly as ``select`` scores a text."""

from __future__ import annotations

import random

import pytest
import torch

from neko.infer.config import InferConfig
from neko.infer.constrained import constrained_candidates, constrained_paths, is_path, network_of
from neko.infer.corrector import Corrector
from neko.infer.prompt import answer_ids
from neko.infer.select import score_shared
from neko.model.tiny import tiny_dense_model, tiny_tokenizer
from neko.records import Record

torch.set_num_threads(1)

TOK = tiny_tokenizer()
# "zebra" and "lorry" are not in the tiny tokenizer's corpus: several tokens each (the trie pass runs).
WORDS = "the quick brown fox jumps over lazy dog she sells sea shells by shore zebra lorry".split()


def model_of(family: str):
    if family == "moe":
        from neko.model.upcycle import upcycle

        return upcycle(tiny_dense_model(seed=3), num_experts=4, top_k=2).eval()
    return tiny_dense_model(family, seed=3)


def random_nbest(rng: random.Random) -> list[str]:
    """A few noisy copies of one random sentence: substitutions, deletions and insertions (maybe empty)."""
    base = [rng.choice(WORDS) for _ in range(rng.randint(0, 7))]
    hyps = []
    for _ in range(rng.randint(1, 5)):
        words = list(base)
        for _ in range(rng.randint(0, 3)):
            op = rng.random()
            if op < 0.4 and words:
                words[rng.randrange(len(words))] = rng.choice(WORDS)
            elif op < 0.7 and words:
                del words[rng.randrange(len(words))]
            else:
                words.insert(rng.randint(0, len(words)), rng.choice(WORDS))
        hyps.append(" ".join(words))
    return hyps


def prompt_of(hyps: list[str]) -> list[int]:
    return TOK("fix the transcript: " + " | ".join(hyps) + " answer:", add_special_tokens=False)["input_ids"]


def test_is_path():
    net = network_of(["the quick brown fox", "a quick fox", "the quick brown box jumps"])
    # Slots: the|a, quick, brown|EPS, EPS|box, fox|jumps.
    assert [sorted(slot) for slot in net.slots] == [
        ["a", "the"],
        ["quick"],
        ["", "brown"],
        ["", "box"],
        ["fox", "jumps"],
    ]
    for text in ("the quick brown fox", "a quick fox", "a quick box jumps", "the quick fox"):
        assert is_path(text.split(), net), text
    for text in ("the quick fox jumps", "the slow fox", "quick the fox", "the quick brown", "a fox"):
        assert not is_path(text.split(), net), text


@pytest.mark.parametrize("family", ["llama", "moe"])
@pytest.mark.parametrize("beams", [1, 3])
def test_outputs_are_network_paths_scored_as_select_scores_them(family, beams):
    model = model_of(family)
    rng = random.Random(7 + beams)
    nbests = [random_nbest(rng) for _ in range(8)]
    nets = [network_of(h) for h in nbests]
    prompts = [prompt_of(h) for h in nbests]
    results = constrained_paths(model, TOK, prompts, nets, beams=beams, top_k=4)
    checked = 0
    for prompt, net, paths in zip(prompts, nets, results, strict=True):
        assert 1 <= len(paths) <= 4
        texts = [p.text for p in paths]
        assert len(set(texts)) == len(texts)
        assert [p.score for p in paths] == sorted((p.score for p in paths), reverse=True)
        for path in paths:
            assert is_path(path.text.split(), net), (path.text, net.slots)
        # The beam's incremental score (shared cache, word tokens, trie pass) is select's score of the text.
        exact = score_shared(model, TOK, [prompt], [[answer_ids(TOK, t) for t in texts]])[0]
        assert [p.lm_score for p in paths] == pytest.approx(exact, abs=1e-4)
        checked += len(paths)
    assert checked > len(nbests)  # more than one path per record on average: the top-k is exercised
    # A record alone gets the same paths as inside the batch (padding and row bookkeeping are invisible).
    alone = constrained_paths(model, TOK, prompts[3:4], nets[3:4], beams=beams, top_k=4)[0]
    assert [p.text for p in alone] == [p.text for p in results[3]]


def biased(model, words: list[str], bonus: float = 12.0):
    """``model`` with ``bonus`` added to the logits of the tokens of ``words`` (a model that prefers them)."""
    ids = sorted({i for w in words for i in answer_ids(TOK, w)})
    bias = torch.zeros(len(TOK))
    bias[ids] = bonus
    model.get_output_embeddings().register_forward_hook(lambda module, args, out: out + bias)
    return model


def test_recombines_words_split_across_hypotheses():
    hyps = ["the quick brown box", "a quick brown fox", "a quick crown box"]
    model = biased(tiny_dense_model(seed=3), ["the", "fox"])
    config = InferConfig(mode="constrained", cn_beams=2)
    corrector = Corrector(model, TOK, config)
    out = corrector.correct(hyps)
    # Neither hypothesis holds both words; only a recombined path does, and the biased model finds it.
    assert out.text == "the quick brown fox" and out.mode == "constrained" and out.index is None
    assert corrector.correct(hyps, mode="select").text in hyps
    # With a strong weight on the slot votes, the majority words win instead ("a", "box").
    voted = Corrector(model, TOK, InferConfig(mode="constrained", cn_weight=100.0)).correct(hyps)
    assert voted.text == "a quick brown box"


def test_corrector_mode_and_fallback_for_other_tasks():
    rng = random.Random(3)
    records = [{"id": str(i), "hypotheses": random_nbest(rng)} for i in range(6)]
    records.append({"id": "gec", "task": "gec", "hypotheses": ["he go to school every day"]})
    corrector = Corrector(tiny_dense_model(seed=3), TOK, InferConfig(mode="constrained"))
    outs = corrector.correct_many(records, batch_size=3)
    for rec, out in zip(records[:-1], outs[:-1], strict=True):
        assert out.mode == "constrained" and is_path(out.text.split(), network_of(rec["hypotheses"]))
        if out.index is not None:
            assert " ".join(rec["hypotheses"][out.index].split()) == out.text
    assert outs[-1].mode == "select" and outs[-1].text == records[-1]["hypotheses"][0]
    one = [corrector.correct_many([r])[0].text for r in records]
    assert one == [o.text for o in outs]


def test_candidates_for_fusion():
    records = [
        Record("a", "asr", "d", ["the quick brown box", "a quick brown fox"]),
        Record("b", "gec", "d", ["th3 quick"]),
    ]
    found = constrained_candidates(tiny_dense_model(seed=3), TOK, records, InferConfig(), top_k=3)
    assert len(found[0]) == 3 and found[1] == []  # GEC has no lattice
    net = network_of(records[0].hypotheses)
    assert all(is_path(p.text.split(), net) for p in found[0])

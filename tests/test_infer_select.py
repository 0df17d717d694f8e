"""``select`` with prefix sharing (prompt once, hypotheses as a trie): scores equal unshared passes to 1e-4."""

from __future__ import annotations

import pytest
import torch

from neko.infer import select
from neko.infer.generate import left_pad
from neko.infer.select import Trie, score_shared, select_best
from neko.model.tiny import tiny_dense_model, tiny_tokenizer

torch.set_num_threads(1)

TOK = tiny_tokenizer()
PROMPTS = [
    "correct the transcription: the quick brown fox | the quick brown box",
    "fix the grammar: he go to school",
    "translate: the weather today is sunny with a chance of rain in the evening",
]
HYPS = [
    [" the quick brown fox", " the quick brown box", " the quick brown fox jumps over the lazy dog"],
    [" he goes to school", ""],  # an empty hypothesis is scored by its EOS alone
    [" sunny", " the weather today is sunny"],
]


def model_of(family: str):
    if family == "moe":
        from neko.model.upcycle import upcycle

        return upcycle(tiny_dense_model(seed=3), num_experts=4, top_k=2).eval()
    return tiny_dense_model(family, seed=3)


def encode(text: str) -> list[int]:
    return TOK(text, add_special_tokens=False)["input_ids"]


def plain_score(model, prompt: list[int], cont: list[int]) -> float:
    """The definition: one unpadded forward pass over prompt + continuation + EOS."""
    full = cont + [TOK.eos_token_id]
    logp = torch.log_softmax(model(torch.tensor([prompt + full])).logits[0].float(), -1)
    return sum(logp[len(prompt) - 1 + k, t].item() for k, t in enumerate(full))


def unshared_scores(model, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
    """The former implementation: every (prompt + continuation + EOS) left-padded in ONE forward pass."""
    seqs = [p + c + [TOK.eos_token_id] for p, c in pairs]
    ids, mask = left_pad(seqs, TOK.pad_token_id, "cpu")
    logits = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
    logp = torch.log_softmax(logits.float(), -1)
    width = ids.shape[1]
    return [
        sum(logp[row, width - len(c) - 2 + k, t].item() for k, t in enumerate(c + [TOK.eos_token_id]))
        for row, (_, c) in enumerate(pairs)
    ]


@pytest.mark.parametrize("family", ["llama", "qwen2", "moe"])
def test_shared_prefix_scores_equal_unshared_passes(family, monkeypatch):
    monkeypatch.setattr(select, "LOGIT_ROWS", 3)  # several logit chunks, even on tiny inputs
    model = model_of(family)
    prompts = [encode(p) for p in PROMPTS]
    hyps = [[encode(h) for h in record] for record in HYPS]
    shared = score_shared(model, TOK, prompts, hyps)
    pairs = [(prompts[r], h) for r, record in enumerate(hyps) for h in record]
    flat = [s for record in shared for s in record]
    assert flat == pytest.approx(unshared_scores(model, pairs), abs=1e-4)
    assert flat == pytest.approx([plain_score(model, p, c) for p, c in pairs], abs=1e-4)
    mean = [s for record in score_shared(model, TOK, prompts, hyps, reduce="mean") for s in record]
    assert mean == pytest.approx([s / (len(c) + 1) for s, (_, c) in zip(flat, pairs, strict=True)], abs=1e-5)


def test_trie_shares_prefixes():
    trie = Trie()
    for h in ([1, 2, 3], [1, 2, 4], [1, 2, 3], [], [5]):
        trie.add(h)
    assert trie.tokens == [1, 2, 3, 4, 5] and trie.parents == [-1, 0, 1, 1, -1]
    assert trie.paths == [[0, 1, 2], [0, 1, 3], [0, 1, 2], [], [4]]
    seen = trie.ancestors(6)
    assert seen[3].tolist() == [True, True, False, True, False, False]


def test_select_best_scores_repeats_once_and_breaks_ties_to_the_first():
    model = model_of("llama")
    prompt = encode(PROMPTS[0])
    a, b = encode(HYPS[0][0]), encode(HYPS[0][1])
    (best, scores), (single, _) = select_best(model, TOK, [prompt, prompt], [[a, b, a], [b]])
    assert scores[0] == scores[2] and best == max(range(3), key=lambda i: (scores[i], -i))
    assert single == 0


def test_select_best_splits_passes_without_changing_scores(monkeypatch):
    model = model_of("llama")
    prompts = [encode(p) for p in PROMPTS]
    hyps = [[encode(h) for h in record] for record in HYPS]
    whole = select_best(model, TOK, prompts, hyps)
    monkeypatch.setattr(select, "PASS_TOKENS", 1)  # one record a pass
    for (b1, s1), (b2, s2) in zip(whole, select_best(model, TOK, prompts, hyps), strict=True):
        assert b1 == b2 and s1 == pytest.approx(s2, abs=1e-5)


@pytest.mark.parametrize("family", ["llama", "qwen2", "moe"])
def test_last_log_probs_are_the_causal_lm_s_own(family):
    """The head over the last hidden states as one matrix gives the causal LM's ``logits_to_keep=1`` result,
    and a cache that continues the rows as the causal LM's does."""
    from neko.infer.generate import last_log_probs

    model = model_of(family)
    ids, mask = left_pad([encode(p) for p in PROMPTS], TOK.pad_token_id, "cpu")
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1
        )
        got, cache = last_log_probs(model, input_ids=ids, attention_mask=mask, position_ids=positions)
        torch.testing.assert_close(got, torch.log_softmax(out.logits[:, -1].float(), -1), atol=1e-5, rtol=0)
        step = dict(input_ids=ids[:, -1:], attention_mask=torch.cat([mask, mask[:, -1:]], 1))
        step["position_ids"] = positions[:, -1:] + 1
        expected = model(**step, cache=out.cache, use_cache=True).logits[:, -1]
        got_next, _ = last_log_probs(model, **step, cache=cache)
    torch.testing.assert_close(got_next, torch.log_softmax(expected.float(), -1), atol=1e-5, rtol=0)

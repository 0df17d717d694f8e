"""The n-best ranking loss: select's scores in one pass, and a gradient step that favours the closest hypothesis."""

from __future__ import annotations

import pytest
import torch

from neko.infer.select import score_shared
from neko.model.tiny import tiny_dense_model, tiny_tokenizer
from neko.records import Record
from neko.tasks import encode_prompt
from neko.train.ranking import rank_lists, rank_loss, rank_target, sequence_scores

torch.set_num_threads(1)

TOK = tiny_tokenizer()
REFERENCE = "the quick brown fox jumps over the lazy dog"
RECORDS = [
    Record(
        "a",
        "asr",
        "d",
        ["the quick brown box jumps over a lazy dog", REFERENCE[:-4], "a quick crown box", REFERENCE[:-4]],
        references=[REFERENCE],
    ),
    Record(
        "b",
        "asr",
        "d",
        ["she sells sea shells", "she sells see shells by"],
        references=["she sells sea shells"],
    ),
    Record("c", "gec", "d", ["he go to school"], references=["he goes to school"]),  # nothing to rank
    Record(
        "d",
        "mt",
        "d",
        ["", "the weather is sunny"],
        source="il fait beau",
        references=["the weather is sunny"],
    ),
]


def model_of(family: str):
    if family == "moe":
        from neko.model.upcycle import upcycle

        return upcycle(tiny_dense_model(seed=3), num_experts=4, top_k=2).eval()
    return tiny_dense_model(family, seed=3)


def test_lists_targets_and_prompts():
    lists = rank_lists(TOK, RECORDS, max_len=512, temperature=1.0)
    assert [item.row for item in lists] == [0, 1, 3]
    first = lists[0]
    assert len(first.hypotheses) == 3  # the repeat is dropped, as the prompt drops it
    assert first.prompt == encode_prompt(TOK, RECORDS[0])
    assert first.hypotheses[1] == TOK(" " + REFERENCE[:-4], add_special_tokens=False)["input_ids"] + [
        TOK.eos_token_id
    ]
    assert first.target == pytest.approx(rank_target(RECORDS[0].hypotheses[:3], REFERENCE, 1.0))
    assert max(range(3), key=lambda k: first.target[k]) == 1 and sum(first.target) == pytest.approx(1.0)
    # A tight budget cuts the prompt, never below what the longest hypothesis needs.
    short = rank_lists(TOK, RECORDS[:1], max_len=40, temperature=1.0)[0]
    assert all(len(short.prompt) + len(h) <= 40 for h in short.hypotheses)


@pytest.mark.parametrize("family", ["llama", "qwen2", "moe"])
def test_one_pass_scores_equal_select_scores(family):
    model = model_of(family)
    lists = rank_lists(TOK, RECORDS, max_len=512, temperature=1.0)
    with torch.no_grad():
        ours = [s.tolist() for s in sequence_scores(model, TOK.pad_token_id, lists)]
    # select scores the same ids without their EOS (it adds the EOS itself).
    expected = score_shared(
        model, TOK, [i.prompt for i in lists], [[h[:-1] for h in i.hypotheses] for i in lists]
    )
    for a, b in zip(ours, expected, strict=True):
        assert a == pytest.approx(b, abs=1e-4)


def test_a_gradient_step_favours_the_hypothesis_closest_to_the_reference():
    model = tiny_dense_model(seed=3).train()
    lists = rank_lists(TOK, RECORDS[:1], max_len=512, temperature=0.5)
    best = max(range(3), key=lambda k: lists[0].target[k])

    def margin() -> float:
        with torch.no_grad():
            scores = sequence_scores(model, TOK.pad_token_id, lists)[0]
        others = torch.cat([scores[:best], scores[best + 1 :]])
        return float(scores[best] - torch.logsumexp(others, 0))

    before = margin()
    loss = rank_loss(model, TOK, RECORDS[:1], 512, 0.5)
    loss_before = float(loss.detach())
    loss.backward()
    with torch.no_grad():
        for param in model.parameters():
            param -= 1e-3 * param.grad
    after = margin()
    assert after > before
    assert float(rank_loss(model, TOK, RECORDS[:1], 512, 0.5)) < loss_before


def test_no_list_is_a_zero_loss():
    loss = rank_loss(tiny_dense_model(seed=3), TOK, RECORDS[2:3], 512, 1.0)
    assert float(loss) == 0.0

"""The Corrector API on tiny random models: batched == naive greedy, select, auto, budgets, lazy import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from neko.errors import NekoError
from neko.infer.config import InferConfig
from neko.infer.corrector import Corrector
from neko.infer.prompt import answer_ids, prepare
from neko.model.tiny import tiny_dense_model, tiny_tokenizer
from neko.records import Record

torch.set_num_threads(1)

RECORDS = [
    {
        "id": str(i),
        "hypotheses": [("the quick brown fox " * (i % 4 + 1)).strip(), "the lazy dog", "the lazy dog"],
    }
    for i in range(9)
] + [{"id": "gec", "task": "gec", "hypotheses": ["he go to school every day"]}]


def make(mode: str = "generate", model=None, **kw) -> Corrector:
    return Corrector(
        model or tiny_dense_model(), tiny_tokenizer(), InferConfig(mode=mode, max_new_tokens=10, **kw)
    )


def moe_model():
    from neko.model.upcycle import upcycle

    return upcycle(tiny_dense_model(), num_experts=4, top_k=2).eval()


@pytest.mark.parametrize("family", ["llama", "qwen2", "moe"])
def test_batched_greedy_equals_naive(family):
    model = moe_model() if family == "moe" else tiny_dense_model(family)
    corrector = make(model=model)
    batched = corrector.correct_many(RECORDS, batch_size=4)
    naive = [corrector.correct_many([r], batch_size=1)[0] for r in RECORDS]
    assert [c.text for c in batched] == [c.text for c in naive]
    assert all(c.mode == "generate" and not c.fallback for c in batched)
    assert [c.task for c in batched] == ["asr"] * 9 + ["gec"]


def test_select_returns_a_hypothesis_and_its_true_log_prob():
    corrector = make("select")
    out = corrector.correct_many(RECORDS, batch_size=3)
    for rec, c in zip(RECORDS, out, strict=True):
        assert c.text == rec["hypotheses"][c.index] and c.mode == "select"
    # The batched, left-padded score equals a plain unpadded forward pass over prompt + " hyp" + EOS.
    tok, model = corrector.tokenizer, corrector.model
    rec = Record(id="x", task="asr", dataset="d", hypotheses=RECORDS[2]["hypotheses"])
    prepared = prepare(tok, rec, corrector.config)
    for score, hyp in zip(out[2].scores, prepared.record.hypotheses, strict=True):
        cont = answer_ids(tok, hyp) + [tok.eos_token_id]
        ids = torch.tensor([prepared.prompt_ids + cont])
        logp = torch.log_softmax(model(ids).logits[0, :-1], -1)
        expected = sum(logp[len(prepared.prompt_ids) - 1 + k, t].item() for k, t in enumerate(cont))
        assert score == pytest.approx(expected, abs=1e-3)
    assert len(out[2].scores) == 2  # the repeated "the lazy dog" is scored once


def test_auto_falls_back_on_garbage():
    out = make("auto").correct(["the quick brown fox jumps over the lazy dog"])
    assert out.fallback and out.text == "the quick brown fox jumps over the lazy dog" and out.index == 0
    assert out.generated and out.generated != out.text


def test_auto_margin_is_the_models_preference_over_the_first_hypothesis():
    from neko.infer.guard import GuardConfig

    hyps = ["the quick brown fox jumps over the lazy dog", "the lazy dog"]
    lenient = dict(max_edit_rate=float("inf"), min_length_ratio=0.0, max_length_ratio=float("inf"))
    kept = make("auto", guard=GuardConfig(**lenient, min_margin=-1e9)).correct(hyps)
    assert not kept.fallback and kept.text == kept.generated and isinstance(kept.margin, float)
    # The margin is log p(generated + EOS | prompt) - log p(first hypothesis + EOS | prompt).
    corrector = make("auto")
    tok, model = corrector.tokenizer, corrector.model
    prompt = prepare(
        tok, Record(id="x", task="asr", dataset="d", hypotheses=hyps), corrector.config
    ).prompt_ids

    def log_prob(text: str) -> float:
        cont = answer_ids(tok, text) + [tok.eos_token_id]
        logp = torch.log_softmax(model(torch.tensor([prompt + cont])).logits[0, :-1], -1)
        return sum(logp[len(prompt) - 1 + k, t].item() for k, t in enumerate(cont))

    assert kept.margin == pytest.approx(log_prob(kept.generated) - log_prob(hyps[0]), abs=1e-3)
    refused = make("auto", guard=GuardConfig(**lenient, min_margin=1e9)).correct(hyps)
    assert refused.fallback and refused.text == hyps[0] and refused.margin == pytest.approx(kept.margin)
    # Without a margin check no scoring pass runs.
    assert make("auto", guard=GuardConfig(**lenient)).correct(hyps).margin is None


def test_auto_does_not_generate_where_the_guard_accepts_no_change(monkeypatch):
    from neko.infer import corrector as corrector_module
    from neko.infer.guard import GuardConfig

    closed = {"asr": GuardConfig(min_margin=float("inf"))}
    corrector = make("auto", task_guards=closed)
    asr = [r for r in RECORDS if r.get("task") != "gec"]
    generated = corrector.correct_many(asr, mode="generate")
    calls = []
    real = corrector_module.generate_all
    monkeypatch.setattr(
        corrector_module, "generate_all", lambda *a, **k: calls.append(len(a[2])) or real(*a, **k)
    )
    seen = []
    out = corrector.correct_many(RECORDS, batch_size=4, progress=seen.append)
    # ASR records come back as their first hypothesis without a generation pass; GEC (open guard) generates.
    assert calls == [1] and sum(seen) == len(RECORDS)
    for rec, c in zip(asr, out, strict=False):
        assert (c.text, c.index, c.fallback, c.generated) == (rec["hypotheses"][0], 0, True, None)
    assert out[-1].generated is not None
    # What the guard would have made of the generated texts: the same outputs.
    from neko.infer.guard import guard_output

    same = [
        guard_output(g.text, r["hypotheses"], closed["asr"])[0] for g, r in zip(generated, asr, strict=True)
    ]
    assert same == [c.text for c in out[:-1]]


def test_length_batches_keep_rows_times_width_within_the_token_budget():
    from neko.infer.generate import length_batches

    lengths = [5, 40, 12, 38, 7, 90, 3]
    costs = [n + 10 for n in lengths]
    batches = length_batches(lengths, 4, max_tokens=100, costs=costs)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 4
        # One row alone may exceed the budget (it must still run); more rows may not.
        assert len(batch) == 1 or len(batch) * max(costs[i] for i in batch) <= 100
    assert [lengths[b[0]] for b in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)
    assert length_batches(lengths, 4) == [[5, 1, 3, 2], [4, 0, 6]]


@pytest.mark.parametrize("mode", ["generate", "select", "constrained"])
def test_a_token_budget_changes_the_batches_not_the_outputs(mode):
    corrector = make(mode)
    free = corrector.correct_many(RECORDS, batch_size=8)
    corrector.config.max_batch_tokens = 64  # one or two records a batch
    tight = corrector.correct_many(RECORDS, batch_size=8)
    assert [c.text for c in tight] == [c.text for c in free]
    for a, b in zip(tight, free, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-4)


def test_single_string_and_mode_override():
    corrector = make("auto")
    assert corrector.correct("he go to school", task="gec", mode="select").text == "he go to school"


def test_huge_inputs_are_cut_not_crashed():
    corrector = make("generate", max_hypothesis_tokens=32)
    many = [f"hypothesis number {i}" for i in range(1000)]
    long = ["word " * 2000 + "end"]  # 10,000 characters
    outs = corrector.correct_many(
        [{"id": "many", "hypotheses": many}, {"id": "long", "task": "ocr", "hypotheses": long}]
    )
    assert all(c.truncated for c in outs)
    sel = corrector.correct_many([{"id": "many", "hypotheses": many}], mode="select")[0]
    assert sel.index is not None and sel.index < 5 and len(sel.scores) == 5
    # The lattice searches see the cut texts too: a 10,000-character OCR line is a 32-token lattice.
    typo = ["tlie wrod " * 1000 + "end"]
    out = corrector.correct_many([{"id": "long", "task": "ocr", "hypotheses": typo}], mode="constrained")[0]
    assert out.truncated and len(out.text.split()) <= 32


def test_select_never_returns_an_mt_candidate_the_prompt_hides():
    from neko.infer.prompt import shown_for
    from neko.tasks import get_task

    candidates = [f"candidate translation number {i}" for i in range(6)]
    record = {"id": "mt", "task": "mt", "source": "quelle phrase", "hypotheses": candidates}
    corrector = make("select")
    assert corrector.config.max_hypotheses > get_task("mt").max_shown == 4
    prepared = prepare(corrector.tokenizer, Record(dataset="d", **record), corrector.config)
    shown = shown_for(Record(dataset="d", **record), corrector.config)
    assert prepared.shown == shown and len(set(shown)) == 4
    prompt = get_task("mt").build_prompt(prepared.record)
    assert prepared.truncated and all(candidates[i] in prompt for i in shown)
    # The prompt lists them in the shown order (the view is not ranked again).
    assert [prompt.index(candidates[i]) for i in shown] == sorted(prompt.index(candidates[i]) for i in shown)
    # Whatever the random model prefers, the answer is one of the four candidates the prompt listed.
    for hidden_best in range(6):
        rotated = {**record, "hypotheses": candidates[hidden_best:] + candidates[:hidden_best]}
        out = corrector.correct_many([rotated])[0]
        visible = shown_for(Record(dataset="d", **rotated), corrector.config)
        assert out.index in visible and len(out.scores) == 4


def test_route_task_forces_the_expert():
    from neko.model.config import ModelConfig

    plain = make(model=moe_model())
    routed = Corrector(
        plain.model, plain.tokenizer, InferConfig(mode="select", route_task=True), ModelConfig()
    )
    out = routed.correct_many(RECORDS[:3])
    assert all(c.text in r["hypotheses"] for c, r in zip(out, RECORDS, strict=False))


def test_no_bundled_model_is_a_clear_error(tmp_path, monkeypatch):
    import neko.infer.corrector as corrector_module

    monkeypatch.setattr(corrector_module, "DEFAULT_MODEL_DIR", tmp_path / "default_model")
    with pytest.raises(NekoError, match="no bundled model"):
        Corrector.from_pretrained()


def test_import_neko_stays_light():
    code = "import sys, neko; assert 'torch' not in sys.modules; print(neko.Corrector.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "Corrector"

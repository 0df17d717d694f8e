"""The token budget around the task prompt: the prompt itself is the one training uses (``neko.tasks``).

Inputs are cut before the prompt is built, so that the prompt keeps its shape: the n-best list keeps its
first ``max_hypotheses`` distinct entries, never more than the task's prompt shows (best first), and each
hypothesis (and the source) keeps its first ``max_hypothesis_tokens`` tokens. A prompt still longer than ``max_prompt_tokens`` keeps its head and its tail (instruction and
answer cue) and loses the middle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from neko.infer.config import InferConfig
from neko.records import Record
from neko.tasks import encode_prompt, get_task
from neko.tasks.base import SHOWN_IN_ORDER, PromptStyle


@dataclass
class Prepared:
    """One record made ready for the model.

    Attributes:
        record: the record as shown to the model (n-best and texts cut to the budget).
        shown: index in the original ``hypotheses`` of each shown hypothesis.
        prompt_ids: token ids of the task prompt.
        hypothesis_ids: token ids of each shown hypothesis as the answer after the prompt (no EOS).
        truncated: True when anything was cut.
    """

    record: Record
    shown: list[int]
    prompt_ids: list[int]
    hypothesis_ids: list[list[int]]
    truncated: bool


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def answer_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` as the answer after the prompt's cue: one space, then the whitespace-collapsed
    text, tokenised apart from the prompt, exactly as ``neko.tasks.encode_example`` builds training targets."""
    return encode_text(tokenizer, " " + " ".join(text.split()))


def _cut(tokenizer: Any, text: str, limit: int) -> tuple[str, bool]:
    # Cutting characters first keeps tokenising a 10 MB line cheap; 16 chars/token is far above any real rate.
    text_cut = text[: limit * 16]
    ids = encode_text(tokenizer, text_cut)
    if len(ids) <= limit and len(text_cut) == len(text):
        return text, False
    return tokenizer.decode(ids[:limit], skip_special_tokens=True), True


def _task_prompt(tokenizer: Any, record: Record, style: PromptStyle) -> list[int]:
    encoded = encode_prompt(tokenizer, record, style)
    if isinstance(encoded, dict) or hasattr(encoded, "keys"):
        encoded = encoded["input_ids"]
    return list(encoded)


def shown_for(record: Record, config: InferConfig) -> list[int]:
    """Indices of the hypotheses the prompt of ``record`` shows, in prompt order, and so the only ones
    ``select`` may return: the task's choice (``Task.shown_indices``: the first distinct ones; MT without
    scores: the most central by chrF), at most ``config.max_hypotheses`` and the task's own cap (MT: 4)."""
    return get_task(record.task).shown_indices(record, config.max_hypotheses)


def prepare(tokenizer: Any, record: Record, config: InferConfig, style: PromptStyle = "full") -> Prepared:
    """Cut ``record`` to the budget of ``config`` and encode its prompt (in the model's prompt ``style``,
    ``ModelConfig.prompt``) and its hypotheses."""
    shown = shown_for(record, config)
    texts = [record.hypotheses[i] for i in shown]
    truncated = len(shown) < len({" ".join(h.split()) for h in record.hypotheses})
    for k, hyp in enumerate(texts):
        texts[k], cut = _cut(tokenizer, hyp, config.max_hypothesis_tokens)
        truncated |= cut
    source = record.source
    if source is not None:
        source, cut = _cut(tokenizer, source, config.max_hypothesis_tokens)
        truncated |= cut
    scores = [record.scores[i] for i in shown] if record.scores is not None else None
    # The view lists the shown hypotheses in the order chosen above; a task that ranks them (MT by
    # consensus) must not rank this subset again.
    meta = {**record.meta, SHOWN_IN_ORDER: True}
    view = replace(record, hypotheses=texts, source=source, scores=scores, meta=meta)
    prompt_ids = _task_prompt(tokenizer, view, style)
    limit = config.max_prompt_tokens
    if len(prompt_ids) > limit:
        head = limit // 2
        prompt_ids = prompt_ids[:head] + prompt_ids[len(prompt_ids) - (limit - head) :]
        truncated = True
    return Prepared(view, shown, prompt_ids, [answer_ids(tokenizer, h) for h in texts], truncated)


def new_token_budget(prepared: Prepared, config: InferConfig) -> int:
    """How many tokens a record may generate: proportional to its longest shown hypothesis."""
    longest = max((len(ids) for ids in prepared.hypothesis_ids), default=0)
    return max(
        1, min(config.max_new_tokens, int(config.new_tokens_ratio * longest) + config.new_tokens_extra)
    )

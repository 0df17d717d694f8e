"""Token ids for training and inference, built from THE prompt of each task.

Prompt and target are tokenised separately and concatenated, so the prompt ids seen in training are exactly
the ids ``encode_prompt`` gives at inference (tokenising the joined string could merge the space after the
cue with the first target word differently).
"""

from __future__ import annotations

from typing import Any

from neko.records import Record
from neko.tasks.base import PromptStyle

IGNORE_INDEX = -100  # the label value that torch's cross-entropy skips
_KEEP_TAIL = 8  # prompt tokens kept from the end on truncation: the cue must survive


def _task(record: Record):
    from neko.tasks import get_task  # late: neko.tasks imports this module

    return get_task(record.task)


def encode_prompt(tokenizer: Any, record: Record, style: PromptStyle = "full") -> list[int]:
    """The prompt's token ids in ``style`` (with the tokenizer's own BOS, if it adds one), for generation."""
    return list(tokenizer(_task(record).build_prompt(record, style), add_special_tokens=True)["input_ids"])


def _truncate_prompt(ids: list[int], room: int) -> list[int]:
    """Keep the head (instruction, best hypotheses) and the last few tokens (the answer cue)."""
    if len(ids) <= room:
        return ids
    tail = min(_KEEP_TAIL, room)
    return ids[: room - tail] + ids[len(ids) - tail :]


def encode_example(
    tokenizer: Any, record: Record, max_len: int, style: PromptStyle = "full"
) -> dict[str, list[int]]:
    """``input_ids`` = prompt + " " + target + EOS and ``labels`` = -100 on the prompt, the ids on the rest.

    At most ``max_len`` tokens: a target longer than half of ``max_len`` is cut (and then gets no EOS, so
    the model never learns to stop mid-sentence), then the prompt is cut in its middle.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; the corrector could not learn when to stop")
    prompt = encode_prompt(tokenizer, record, style)
    target = list(tokenizer(" " + _task(record).target(record), add_special_tokens=False)["input_ids"])
    target.append(tokenizer.eos_token_id)
    if len(prompt) + len(target) > max_len:
        if len(target) > max_len // 2:
            target = target[: max_len // 2]
        prompt = _truncate_prompt(prompt, max_len - len(target))
    return {"input_ids": prompt + target, "labels": [IGNORE_INDEX] * len(prompt) + target}

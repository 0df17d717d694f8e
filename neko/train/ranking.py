"""A listwise n-best ranking loss: the model should score the hypotheses as their distance to the reference does.

For a record with at least two distinct hypotheses (those its prompt shows), each hypothesis h is scored as
the answer after the task prompt, exactly as ``select`` scores it at inference: s(h) = the sum of the
log-probabilities of its tokens and of the closing EOS. The loss is

    KL( softmax(-word_errors(h, reference) / temperature) || softmax(s) )

averaged over the records of the micro-batch (KL rather than cross-entropy: same gradient, and 0 means the
model ranks exactly as the target does). Its gradient on s is ``softmax(s) - target``: it raises the scores
of the hypotheses closer to the reference relative to the others. Records with fewer than two distinct
hypotheses (OCR, GEC) have nothing to rank and are skipped.

Cost: ONE forward pass per micro-batch, however many hypotheses. Each row is the record's prompt (left
padded) followed by the token trie of its hypotheses (shared prefixes once); a 4D attention mask lets each
trie node see the prompt and its own ancestors, at position prompt length + depth (``neko.infer.select``
does the same on a KV cache at inference; a single pass keeps gradient checkpointing usable). Logits are
kept only for the last prompt position and the trie nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from neko.baselines.oracle import word_errors
from neko.infer.select import Trie
from neko.records import Record
from neko.tasks import IGNORE_INDEX, encode_example, get_task
from neko.tasks.base import PromptStyle


@dataclass
class RankList:
    """One record made ready for the ranking loss.

    Attributes:
        row: the record's row in its micro-batch (for its expert id).
        prompt: prompt token ids (as training encodes it, cut so that the longest hypothesis fits).
        hypotheses: token ids of each distinct shown hypothesis as the answer, with the closing EOS (none
            when ``encode_example`` had to cut it).
        target: the target distribution over the hypotheses.
    """

    row: int
    prompt: list[int]
    hypotheses: list[list[int]]
    target: list[float]


def rank_target(hypotheses: Sequence[str], reference: str, temperature: float) -> list[float]:
    """softmax(-word_errors(h, reference) / temperature) over the hypotheses."""
    errors = torch.tensor([float(word_errors(reference, h)) for h in hypotheses])
    return torch.softmax(-errors / temperature, dim=0).tolist()


def shown_hypotheses(record: Record) -> list[str]:
    """The distinct hypotheses the task prompt shows (its own cap), whitespace collapsed."""
    return get_task(record.task).shown(record)


def rank_lists(
    tokenizer: Any, records: Sequence[Record], max_len: int, temperature: float, style: PromptStyle = "full"
) -> list[RankList]:
    """The ``RankList`` of every record with a reference and at least two distinct shown hypotheses (prompts
    in ``style``)."""
    lists = []
    for row, record in enumerate(records):
        hyps = shown_hypotheses(record)
        if len(hyps) < 2 or not record.references:
            continue
        # encode_example is THE encoding: the hypothesis as the target gives its ids (cut, EOS when whole).
        encoded = [encode_example(tokenizer, replace(record, references=[h]), max_len, style) for h in hyps]
        answers = [
            [t for t, label in zip(e["input_ids"], e["labels"], strict=True) if label != IGNORE_INDEX]
            for e in encoded
        ]
        # The prompt cut for the longest answer leaves room for every other one.
        longest = max(range(len(hyps)), key=lambda k: len(answers[k]))
        prompt = encoded[longest]["input_ids"][: len(encoded[longest]["input_ids"]) - len(answers[longest])]
        target = rank_target(hyps, " ".join(record.references[0].split()), temperature)
        lists.append(RankList(row, prompt, answers, target))
    return lists


def sequence_scores(model: Any, pad_id: int, lists: Sequence[RankList]) -> list[torch.Tensor]:
    """s(h) of every hypothesis of every list ([n_hypotheses] each, with gradients), in one forward pass."""
    device = next(model.parameters()).device
    tries = []
    for item in lists:
        trie = Trie()
        for ids in item.hypotheses:
            trie.add(ids[:-1])  # the last token (EOS) is only predicted, never fed
        tries.append(trie)
    prompt_width = max(len(item.prompt) for item in lists)
    width = max(1, max(len(trie.tokens) for trie in tries))
    total = prompt_width + width
    ids = torch.full((len(lists), total), pad_id, dtype=torch.long)
    positions = torch.zeros((len(lists), total), dtype=torch.long)
    allowed = torch.zeros((len(lists), total, total), dtype=torch.bool)
    causal = torch.ones((prompt_width, prompt_width), dtype=torch.bool).tril()
    for row, (item, trie) in enumerate(zip(lists, tries, strict=True)):
        start = prompt_width - len(item.prompt)  # left padding
        ids[row, start:prompt_width] = torch.tensor(item.prompt, dtype=torch.long)
        positions[row, start:prompt_width] = torch.arange(len(item.prompt))
        real = torch.zeros(prompt_width, dtype=torch.bool)
        real[start:] = True
        allowed[row, :prompt_width, :prompt_width] = causal & real[None, :]
        # A padding query must still see something: itself (its output is never used).
        allowed[row, :prompt_width, :prompt_width] |= torch.eye(prompt_width, dtype=torch.bool)
        n = len(trie.tokens)
        if n:
            ids[row, prompt_width : prompt_width + n] = torch.tensor(trie.tokens, dtype=torch.long)
            positions[row, prompt_width : prompt_width + n] = len(item.prompt) + torch.tensor(trie.depths)
        allowed[row, prompt_width:, :prompt_width] = real[None, :]
        allowed[row, prompt_width:, prompt_width:] = trie.ancestors(width)
    dtype = next(model.parameters()).dtype
    bias = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    logits = model(
        input_ids=ids.to(device),
        attention_mask=bias[:, None].to(device),
        position_ids=positions.to(device),
        logits_to_keep=width + 1,
    ).logits  # [lists, width + 1, vocabulary]: the last prompt position, then the trie nodes
    logp = torch.log_softmax(logits.float(), dim=-1)
    scores = []
    for row, (item, trie) in enumerate(zip(lists, tries, strict=True)):
        picks = []
        for ids_, path in zip(item.hypotheses, trie.paths, strict=True):
            # Token k is predicted at the node of token k - 1 (column 1 + node), the first at column 0.
            columns = torch.tensor([0] + [1 + node for node in path], device=logp.device)
            picks.append(logp[row, columns, torch.tensor(ids_, device=logp.device)].sum())
        scores.append(torch.stack(picks))
    return scores


def rank_loss(
    model: Any,
    tokenizer: Any,
    records: Sequence[Record],
    max_len: int,
    temperature: float,
    expert_ids: torch.Tensor | None = None,
    routing: str = "dense",
    style: PromptStyle = "full",
) -> torch.Tensor:
    """The mean ranking loss of the micro-batch's records (0, without a graph, when none has a list).

    ``expert_ids`` ([batch], the micro-batch's) and ``routing`` route the pass as the LM loss's pass is;
    ``style`` is the model's prompt style.
    """
    from neko.model.routing import task_routing

    lists = rank_lists(tokenizer, records, max_len, temperature, style)
    device = next(model.parameters()).device
    if not lists:
        return torch.zeros((), device=device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    experts = None if expert_ids is None else expert_ids[[item.row for item in lists]]
    with task_routing(model, experts, routing, record=False):
        scores = sequence_scores(model, pad_id, lists)
    losses = []
    for item, score in zip(lists, scores, strict=True):
        target = torch.tensor(item.target, device=score.device)
        losses.append(torch.nn.functional.kl_div(torch.log_softmax(score, 0), target, reduction="sum"))
    return torch.stack(losses).mean()

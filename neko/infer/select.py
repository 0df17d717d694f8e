"""``select`` mode: score each hypothesis as the continuation of the prompt and return the best one.

All (prompt, hypothesis) pairs of a batch of records go through ONE forward pass: sequences are
left-padded so that every hypothesis ends at the last position, and only the last positions' logits are
computed (``logits_to_keep``), which keeps memory at (pairs x hypothesis length x vocabulary). A
hypothesis's score is the sum (default) or mean of the log-probabilities of its tokens and of the
end-of-sequence token that closes it, as in training. No autoregressive loop: it can only return one of
the given hypotheses. Duplicate hypotheses of a record are scored once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from neko.infer.generate import left_pad, special_ids


@torch.inference_mode()
def score_pairs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    reduce: str = "sum",
) -> list[float]:
    """Log-probability score of each continuation (+ EOS) given its prompt, in one forward pass."""
    pad_id, eos_id = special_ids(tokenizer)
    conts = [list(c) + [eos_id] for c in continuations]
    sequences = [list(p) + c for p, c in zip(prompts, conts, strict=True)]
    device = next(model.parameters()).device
    ids, mask = left_pad(sequences, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    span = max(len(c) for c in conts)
    # Logits at position t predict token t+1: the last `span` tokens need the `span` logits before them.
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=span + 1).logits
    targets = ids[:, -span:]
    token_lp = torch.empty(targets.shape, dtype=torch.float32, device=device)
    # Row chunks: a full log-softmax copy of the logits would double the peak memory.
    for start in range(0, len(sequences), 8):
        rows = logits[start : start + 8, :-1].float()
        picked = rows.gather(-1, targets[start : start + 8].unsqueeze(-1)).squeeze(-1)
        token_lp[start : start + 8] = picked - torch.logsumexp(rows, dim=-1)
    lengths = torch.tensor([len(c) for c in conts], device=device)
    keep = torch.arange(span, device=device).unsqueeze(0) >= (span - lengths).unsqueeze(1)
    totals = (token_lp * keep).sum(-1)
    if reduce == "mean":
        totals = totals / lengths
    return totals.tolist()


def select_best(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    hypotheses: Sequence[Sequence[Sequence[int]]],
    *,
    reduce: str = "sum",
) -> list[tuple[int, list[float]]]:
    """For each record (prompt + its hypotheses' ids): (index of the best hypothesis, score of each).

    Ties go to the earlier hypothesis (the recogniser's preference).
    """
    pair_prompts, pair_conts, owners = [], [], []
    firsts: list[dict[tuple[int, ...], int]] = []
    for rec, (prompt, hyps) in enumerate(zip(prompts, hypotheses, strict=True)):
        first: dict[tuple[int, ...], int] = {}
        for h, ids in enumerate(hyps):
            key = tuple(ids)
            if key not in first:
                first[key] = h
                pair_prompts.append(prompt)
                pair_conts.append(ids)
                owners.append((rec, h))
        firsts.append(first)
    flat = score_pairs(model, tokenizer, pair_prompts, pair_conts, reduce=reduce) if owners else []
    by_pair = dict(zip(owners, flat, strict=True))
    results = []
    for rec, hyps in enumerate(hypotheses):
        scores = [by_pair[(rec, firsts[rec][tuple(ids)])] for ids in hyps]
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        results.append((best, scores))
    return results

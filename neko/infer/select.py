"""``select`` mode: score each hypothesis as the continuation of the prompt and return the best one.

Every hypothesis of a record shares the record's prompt, so the prompt is run once (prefix sharing):

1. the prompts of a batch of records go through one forward pass (left-padded, with position ids and the
   KV cache on), keeping only the last position's logits, which score each hypothesis's first token;
2. the KV cache is expanded to one row per (record, distinct hypothesis) (``index_select`` of the cache's
   batch rows) and all continuations (the hypothesis tokens, right-padded) run in a second forward pass
   in chunks of bounded size; the logits are computed only at the real (non-padding) positions, which
   score the remaining tokens and the closing end-of-sequence token.

A hypothesis's score is the sum (default) or mean of the log-probabilities of its tokens and of the EOS
that closes it, as in training; it equals the score of a plain forward pass over prompt + hypothesis +
EOS (tested to 1e-4). No autoregressive loop: it can only return one of the given hypotheses. Duplicate
hypotheses of a record are scored once. The logits are ``lm_head(hidden state)``, as in the Llama, Qwen2,
Mixtral and Qwen2-MoE heads (no logit scaling or soft-capping).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from neko.infer.generate import left_pad, special_ids

# Upper bound of (rows x cached + new tokens) in one continuation pass: bounds the expanded KV cache
# (SmolLM2 in fp32: 46 kB per token, so ~95 MB) whatever the n-best size and batch size.
CHUNK_TOKENS = 2048
# Rows of logits turned into log-probabilities at once ([rows, vocabulary] floats each).
LOGIT_ROWS = 256


def _log_probs(model: Any, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) of each row of ``hidden`` ([n, H]), the logits computed a few rows at a time."""
    head = model.get_output_embeddings()
    out = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)
    for start in range(0, len(targets), LOGIT_ROWS):
        logits = head(hidden[start : start + LOGIT_ROWS]).float()
        picked = logits.gather(-1, targets[start : start + LOGIT_ROWS, None]).squeeze(-1)
        out[start : start + LOGIT_ROWS] = picked - torch.logsumexp(logits, dim=-1)
    return out


@torch.inference_mode()
def score_shared(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    owners: Sequence[int],
    continuations: Sequence[Sequence[int]],
    *,
    reduce: str = "sum",
) -> list[float]:
    """Score of each continuation (+ EOS) given the prompt ``prompts[owners[j]]``, each prompt run once."""
    if not continuations:
        return []
    pad_id, eos_id = special_ids(tokenizer)
    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    first_lp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # [records, vocabulary]
    cache, width = out.cache, ids.shape[1]
    lengths = mask.sum(-1)
    conts = [list(c) for c in continuations]
    firsts = torch.tensor([c[0] if c else eos_id for c in conts], device=device)
    owner_t = torch.tensor(list(owners), device=device)
    totals = first_lp[owner_t, firsts].clone()
    span = max(len(c) for c in conts)
    if span:
        per_chunk = max(1, CHUNK_TOKENS // (width + span))
        for start in range(0, len(conts), per_chunk):
            stop = min(start + per_chunk, len(conts))
            if any(conts[start:stop]):  # a chunk of empty hypotheses has nothing after its first token
                totals[start:stop] += _continuation_log_probs(
                    model, cache, mask, lengths, owner_t[start:stop], conts[start:stop], eos_id
                )
    if reduce == "mean":
        totals = totals / torch.tensor([len(c) + 1 for c in conts], device=device)
    return totals.tolist()


def _continuation_log_probs(
    model: Any,
    cache: Any,
    prompt_mask: torch.Tensor,
    prompt_lengths: torch.Tensor,
    owners: torch.Tensor,
    conts: list[list[int]],
    eos_id: int,
) -> torch.Tensor:
    """Sum of log p(token) over every continuation token after the first, and over the closing EOS."""
    from transformers import DynamicCache

    device = prompt_mask.device
    span = max(len(c) for c in conts)
    ids = torch.full((len(conts), span), eos_id, dtype=torch.long)
    targets = torch.full((len(conts), span), eos_id, dtype=torch.long)
    valid = torch.zeros((len(conts), span), dtype=torch.bool)
    for row, cont in enumerate(conts):
        if not cont:
            continue
        ids[row, : len(cont)] = torch.tensor(cont, dtype=torch.long)
        targets[row, : len(cont) - 1] = torch.tensor(cont[1:], dtype=torch.long)  # then EOS after the last
        valid[row, : len(cont)] = True
    ids, targets, valid = ids.to(device), targets.to(device), valid.to(device)
    # One cache row per continuation: the rows of its record's prompt (new tensors; the shared cache stays).
    rows = DynamicCache(
        [
            (layer.keys.index_select(0, owners), layer.values.index_select(0, owners))
            for layer in cache.layers
        ],
        config=model.config,
    )
    mask = torch.cat([prompt_mask.index_select(0, owners), valid.long()], dim=-1)
    positions = prompt_lengths.index_select(0, owners)[:, None] + torch.arange(span, device=device)
    hidden = model.base_model(
        input_ids=ids, attention_mask=mask, position_ids=positions, cache=rows, use_cache=True
    ).last_hidden_state
    token_lp = torch.zeros(valid.shape, dtype=torch.float32, device=device)
    token_lp[valid] = _log_probs(model, hidden[valid], targets[valid])
    return token_lp.sum(-1)


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
    owners, conts = [], []
    firsts: list[dict[tuple[int, ...], int]] = []
    for rec, hyps in enumerate(hypotheses):
        first: dict[tuple[int, ...], int] = {}
        for ids in hyps:
            key = tuple(ids)
            if key not in first:
                first[key] = len(conts)
                owners.append(rec)
                conts.append(list(ids))
        firsts.append(first)
    flat = score_shared(model, tokenizer, prompts, owners, conts, reduce=reduce)
    results = []
    for rec, hyps in enumerate(hypotheses):
        scores = [flat[firsts[rec][tuple(ids)]] for ids in hyps]
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        results.append((best, scores))
    return results

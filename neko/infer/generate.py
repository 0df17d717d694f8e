"""Batched autoregressive decoding: requests sorted by length, left-padded, decoded with the KV cache.

Sorting by prompt length keeps padding small; left padding puts every prompt's last token at the same
position so that one ``generate`` call serves the whole batch; the results go back to input order. Each
record has its own new-token budget; a batch decodes up to its largest budget and each output is cut to its
own, so batched greedy decoding returns exactly what per-record decoding returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def special_ids(tokenizer: Any) -> tuple[int, int]:
    """(pad id, eos id); a tokenizer without a pad token pads with EOS (the attention mask hides it)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no end-of-sequence token")
    pad = tokenizer.pad_token_id
    return (eos if pad is None else pad), eos


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of ``sequences`` padded on the left to the longest."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)


def last_log_probs(model: Any, rows: torch.Tensor | None = None, **inputs: Any) -> tuple[torch.Tensor, Any]:
    """(next-token log-probabilities after each row's last position [rows, vocabulary], KV cache) of one
    forward pass of ``model`` over ``inputs`` (``input_ids``, ``attention_mask``, ...; ``use_cache`` on).
    ``rows`` (a bool mask or indices) keeps only those rows' log-probabilities: the head runs on them alone.

    The head multiplies the last hidden states as one [rows, H] matrix. Through the causal LM's own forward
    (``logits_to_keep=1``) it gets a strided [rows, 1, H] view, which torch multiplies as a batch of
    matrix-vector products, reading the whole head once per row (docs/INFERENCE.md: 606 ms of select's 34.6 s
    on 64 records).
    """
    out = model.base_model(**inputs, use_cache=True)
    last = out.last_hidden_state[:, -1]
    logits = model.get_output_embeddings()((last if rows is None else last[rows]).contiguous())
    return torch.log_softmax(logits.float(), dim=-1), out.cache


def length_batches(
    lengths: Sequence[int],
    batch_size: int,
    max_tokens: int | None = None,
    costs: Sequence[int] | None = None,
) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first, so memory peaks early).

    A batch holds at most ``batch_size`` rows and, given ``max_tokens``, at most as many rows as keep
    rows x (largest cost among them) within it (always at least one row): the token budget of a padded
    batch, which bounds its activations and KV cache whatever the inputs' lengths. ``costs`` are the tokens
    a row takes (default its length; for generation, prompt plus new tokens).
    """
    costs = lengths if costs is None else costs
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    width = 0
    for i in order:
        batch = batches[-1] if batches else None
        wider = max(width, costs[i])
        full = batch is None or len(batch) >= batch_size
        if not full and max_tokens is not None and (len(batch) + 1) * wider > max_tokens:
            full = True
        if full:
            batches.append([i])
            width = costs[i]
        else:
            batch.append(i)
            width = wider
    return batches


@torch.inference_mode()
def generate_batch(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    budgets: Sequence[int],
    *,
    num_beams: int = 1,
) -> list[list[int]]:
    """Generated token ids (without the prompt, cut at EOS and at each budget) of one batch of prompts."""
    from transformers import GenerationConfig

    pad_id, eos_id = special_ids(tokenizer)
    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, pad_id, device)
    gen_config = GenerationConfig(
        max_new_tokens=max(budgets),
        do_sample=False,
        num_beams=num_beams,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        use_cache=True,
    )
    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_config)
    results = []
    for row, budget in enumerate(budgets):
        new = out[row, ids.shape[1] :].tolist()[:budget]
        if eos_id in new:
            new = new[: new.index(eos_id)]
        results.append(new)
    return results


def generate_all(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    budgets: Sequence[int],
    *,
    batch_size: int = 16,
    num_beams: int = 1,
    max_batch_tokens: int | None = None,
) -> list[str]:
    """Decoded texts of every prompt, in input order, generated in length-sorted batches (of at most
    ``max_batch_tokens`` prompt-plus-new tokens times rows, beams counted as rows)."""
    texts: list[str] = [""] * len(prompts)
    costs = [(len(p) + b) * num_beams for p, b in zip(prompts, budgets, strict=True)]
    for batch in length_batches([len(p) for p in prompts], batch_size, max_batch_tokens, costs):
        outs = generate_batch(
            model, tokenizer, [prompts[i] for i in batch], [budgets[i] for i in batch], num_beams=num_beams
        )
        for i, new in zip(batch, outs, strict=True):
            texts[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    return texts

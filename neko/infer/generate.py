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


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first, so memory peaks early)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


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
) -> list[str]:
    """Decoded texts of every prompt, in input order, generated in length-sorted batches."""
    texts: list[str] = [""] * len(prompts)
    for batch in length_batches([len(p) for p in prompts], batch_size):
        outs = generate_batch(
            model, tokenizer, [prompts[i] for i in batch], [budgets[i] for i in batch], num_beams=num_beams
        )
        for i, new in zip(batch, outs, strict=True):
            texts[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    return texts

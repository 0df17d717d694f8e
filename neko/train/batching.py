"""From recipe to micro-batches: the mixture, the bucketing sampler, and padded tensors with expert ids.

Every process of a distributed run builds the same sampler from the same seed and takes every
``world_size``-th batch (rank ``r`` the ``r``-th of each group), so the global stream, and its every-record-
once-per-dataset-epoch guarantee, does not depend on the number of processes, and a checkpoint of rank 0's
sampler state is the state of all ranks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from neko.model.config import ModelConfig
from neko.records import Record
from neko.tasks import IGNORE_INDEX, encode_example
from neko.train.config import DataSource, TrainConfig
from neko.train.mixture import Mixture, open_sources
from neko.train.sampler import DynamicBucketingSampler, estimate_bucket_edges


def build_mixture(sources: list[DataSource], alpha: float, seed: int) -> Mixture:
    """The seeded mixture of the recipe's data sources."""
    opened = [source for s in sources for source in open_sources(s.path, s.name, s.weight)]
    return Mixture(opened, alpha=alpha, seed=seed)


def build_sampler(train: TrainConfig, tokenizer: Any) -> DynamicBucketingSampler[Record]:
    """The token-budget sampler over the training mixture, with bucket edges from a separate seeded sample."""

    def length(record: Record) -> int:
        return len(encode_example(tokenizer, record, train.max_len)["input_ids"])

    # A second mixture with another seed gives the length sample without advancing the training stream.
    probe = build_mixture(train.data, train.alpha, train.seed + 1)
    edges = estimate_bucket_edges(
        [length(probe.draw()) for _ in range(train.bucket_sample)], train.num_buckets
    )
    return DynamicBucketingSampler(
        build_mixture(train.data, train.alpha, train.seed),
        length_fn=length,
        max_tokens=train.max_tokens,
        bucket_edges=edges,
        quadratic_length=train.quadratic_length,
        buffer_size=train.buffer_size,
        seed=train.seed,
    )


def rank_batches(batches: Iterator[list[Record]], rank: int, world_size: int) -> Iterator[list[Record]]:
    """This process's share of the global batch stream (see the module docstring)."""
    while True:
        group = []
        for _ in range(world_size):
            try:
                group.append(next(batches))
            except StopIteration:
                return
        yield group[rank]


@dataclass
class Batch:
    """Padded tensors of one micro-batch.

    Attributes:
        input_ids, attention_mask, labels: [batch, width] (labels -100 on prompt and padding).
        expert_ids: [batch] the task expert of each row (None for the dense model).
        tokens: non-padding tokens; padded: batch * width.
    """

    input_ids: Any
    attention_mask: Any
    labels: Any
    expert_ids: Any
    tokens: int
    padded: int


def collate(
    records: list[Record], tokenizer: Any, max_len: int, model: ModelConfig, device: Any = None
) -> Batch:
    """Encode, right-pad to the longest row, and look up each row's expert."""
    import torch

    examples = [encode_example(tokenizer, r, max_len) for r in records]
    width = max(len(e["input_ids"]) for e in examples)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        ids[row, :n] = torch.tensor(example["input_ids"])
        labels[row, :n] = torch.tensor(example["labels"])
        mask[row, :n] = 1
    experts = None
    if model.routing != "dense":
        experts = torch.tensor([model.expert_for(r.task, r.dataset) for r in records], dtype=torch.long)
    tokens = int(mask.sum())
    if device is not None:
        ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
        experts = experts.to(device) if experts is not None else None
    return Batch(ids, mask, labels, experts, tokens, ids.numel())

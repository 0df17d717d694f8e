"""From recipe to micro-batches: the mixture, the bucketing sampler, and padded tensors with expert ids.

Every process of a distributed run builds the same sampler from the same seed and takes every
``world_size``-th batch (rank ``r`` the ``r``-th of each group), so the global stream, and its every-record-
once-per-dataset-epoch guarantee, does not depend on the number of processes, and a checkpoint of rank 0's
sampler state is the state of all ranks.

Each training record is tokenised once: the sampler measures the encoding it carries (``EncodedRecord``) and
``collate`` pads that same encoding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from neko.model.config import ModelConfig
from neko.records import Record
from neko.tasks import IGNORE_INDEX, encode_example
from neko.tasks.base import PromptStyle
from neko.train.config import DataSource, TrainConfig
from neko.train.mixture import Mixture, open_sources
from neko.train.sampler import DynamicBucketingSampler, estimate_bucket_edges


def build_mixture(sources: list[DataSource], alpha: float, seed: int) -> Mixture:
    """The seeded mixture of the recipe's data sources."""
    opened = [source for s in sources for source in open_sources(s.path, s.name, s.weight, s.exclude)]
    return Mixture(opened, alpha=alpha, seed=seed)


@dataclass
class EncodedRecord(Record):
    """A training record with its ``encode_example`` encoding (``input_ids``, ``labels``), made once."""

    encoding: dict[str, list[int]] = field(default_factory=dict, repr=False, compare=False)


class EncodedMixture:
    """The mixture's records as ``EncodedRecord``; its state is the mixture's (the sampler checkpoints it)."""

    def __init__(self, mixture: Mixture, tokenizer: Any, max_len: int, style: PromptStyle = "full") -> None:
        self.mixture, self.tokenizer, self.max_len, self.style = mixture, tokenizer, max_len, style

    def __iter__(self) -> Iterator[EncodedRecord]:
        for record in self.mixture:
            encoding = encode_example(self.tokenizer, record, self.max_len, self.style)
            yield EncodedRecord(**vars(record), encoding=encoding)

    def state_dict(self) -> dict[str, Any]:
        """The mixture's state."""
        return self.mixture.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the mixture from ``state_dict()``."""
        self.mixture.load_state_dict(state)


def build_sampler(
    train: TrainConfig, tokenizer: Any, style: PromptStyle = "full"
) -> DynamicBucketingSampler[EncodedRecord]:
    """The token-budget sampler over the training mixture (prompts in ``style``), with bucket edges from a
    separate seeded sample."""
    # A second mixture with another seed gives the length sample without advancing the training stream.
    probe = build_mixture(train.data, train.alpha, train.seed + 1)
    lengths = [
        len(encode_example(tokenizer, probe.draw(), train.max_len, style)["input_ids"])
        for _ in range(train.bucket_sample)
    ]
    return DynamicBucketingSampler(
        EncodedMixture(build_mixture(train.data, train.alpha, train.seed), tokenizer, train.max_len, style),
        length_fn=lambda record: len(record.encoding["input_ids"]),
        max_tokens=train.max_tokens,
        bucket_edges=estimate_bucket_edges(lengths, train.num_buckets),
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
    """Encode (unless the sampler already did: ``EncodedRecord``), right-pad to the longest row, and look up
    each row's expert."""
    import torch

    examples = [
        r.encoding if isinstance(r, EncodedRecord) else encode_example(tokenizer, r, max_len, model.prompt)
        for r in records
    ]
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

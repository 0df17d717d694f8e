"""Batches under a token budget from length buckets, after lhotse's ``DynamicBucketingSampler``.

Items stream in (from the mixture), are put into the bucket of their length (edges from quantiles of a
sample of lengths, so buckets hold about equally many items), and a full bucket gives one batch. A batch's
cost is::

    cost = max_len * batch_size * (1 + max_len / quadratic_length)

the padded token count, plus a penalty for attention, whose time and memory grow with the square of the
length: with ``quadratic_length = L`` a batch of length-``L`` sequences costs twice its token count, so long
batches get fewer rows. ``quadratic_length = None`` turns the penalty off (pure token budget).

The buffer holds at most ``buffer_size`` items; a batch comes from a bucket picked at random among the
ready ones (cost reached), which keeps batch lengths mixed over time rather than short-to-long. The naive
sampler (fixed batch size, arrival order) is kept for the benchmark.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def batch_cost(max_len: int, batch_size: int, quadratic_length: int | None) -> float:
    """The padded token count of a batch, with the attention penalty (see the module docstring)."""
    penalty = 1.0 + max_len / quadratic_length if quadratic_length else 1.0
    return max_len * batch_size * penalty


def estimate_bucket_edges(lengths: list[int], num_buckets: int, max_ratio: float = 1.1) -> list[int]:
    """Inner bucket edges: bucket ``i`` holds lengths in ``[edge[i-1], edge[i])``.

    Edges sit at the length quantiles (buckets about equally full); gaps wider than ``max_ratio`` (the sparse
    tails, where a quantile bucket can span 4 to 18 tokens) are split geometrically, since a batch mixing
    lengths ``a < b`` pads up to ``1 - a / b`` of its tokens.
    """
    if not lengths:
        return []
    ordered = sorted(lengths)
    points = [ordered[0]] + [ordered[len(ordered) * i // num_buckets] for i in range(1, num_buckets)]
    points.append(ordered[-1] + 1)
    edges: set[int] = set()
    for lo, hi in zip(points[:-1], points[1:], strict=True):
        edge = float(max(lo, 1))
        while edge * max_ratio < hi:
            edge *= max_ratio
            edges.add(round(edge))
        edges.add(hi)
    return sorted(e for e in edges if ordered[0] < e <= ordered[-1])


def padding_share(lengths_per_batch: Iterable[list[int]]) -> float:
    """Padding tokens / all tokens, when each batch is right-padded to its longest item."""
    pad = total = 0
    for lengths in lengths_per_batch:
        width = max(lengths)
        total += width * len(lengths)
        pad += sum(width - n for n in lengths)
    return pad / total if total else 0.0


class DynamicBucketingSampler(Generic[T]):
    """Token-budget batches of items of similar length (see the module docstring).

    Args:
        source: items; any iterable, finite (one pass = one epoch) or endless. When it has ``state_dict`` /
            ``load_state_dict`` (the Mixture), they are saved with the sampler's state.
        length_fn: the token length of an item.
        max_tokens: the budget on ``batch_cost``; an item over budget on its own still forms a batch of one.
        bucket_edges: inner edges (see ``estimate_bucket_edges``).
        quadratic_length: the attention penalty scale, or None.
        buffer_size: most items held in buckets before a batch is forced from the fullest one.
        seed: for the choice among ready buckets.
    """

    def __init__(
        self,
        source: Iterable[T],
        length_fn: Callable[[T], int],
        max_tokens: int,
        bucket_edges: list[int],
        quadratic_length: int | None = None,
        buffer_size: int = 1000,
        seed: int = 0,
    ) -> None:
        self.source = source
        self.length_fn = length_fn
        self.max_tokens = max_tokens
        self.edges = list(bucket_edges)
        self.quadratic_length = quadratic_length
        self.buffer_size = buffer_size
        self._rng = random.Random(seed)
        self._buckets: list[list[tuple[int, T]]] = [[] for _ in range(len(self.edges) + 1)]
        self._iterator: Iterator[T] | None = None

    def _cost(self, bucket: list[tuple[int, T]], count: int | None = None) -> float:
        items = bucket if count is None else bucket[:count]
        return batch_cost(max(n for n, _ in items), len(items), self.quadratic_length) if items else 0.0

    def _take(self, b: int) -> list[T]:
        """The longest prefix of bucket ``b`` within budget (at least one item)."""
        bucket = self._buckets[b]
        count, width = 0, 0
        while count < len(bucket):
            width = max(width, bucket[count][0])
            if count and batch_cost(width, count + 1, self.quadratic_length) > self.max_tokens:
                break
            count += 1
        batch = [item for _, item in bucket[:count]]
        del bucket[:count]
        return batch

    def _ready(self) -> list[int]:
        # A bucket is ready when one more item of its current width would not fit.
        ready = []
        for b, bucket in enumerate(self._buckets):
            if bucket:
                width = max(n for n, _ in bucket)
                if batch_cost(width, len(bucket) + 1, self.quadratic_length) > self.max_tokens:
                    ready.append(b)
        return ready

    def _buffered(self) -> int:
        return sum(len(b) for b in self._buckets)

    def __iter__(self) -> Iterator[list[T]]:
        """Batches until the source ends, then the leftovers, bucket by bucket (smaller than the budget)."""
        if self._iterator is None:
            self._iterator = iter(self.source)
        exhausted = False
        while True:
            while not exhausted and not self._ready() and self._buffered() < self.buffer_size:
                try:
                    item = next(self._iterator)
                except StopIteration:
                    exhausted = True
                    break
                length = self.length_fn(item)
                self._buckets[bisect.bisect_right(self.edges, length)].append((length, item))
            ready = self._ready()
            if ready:
                yield self._take(self._rng.choice(ready))
            elif self._buffered():
                # Buffer full (or source done) with no bucket at budget: the fullest one goes, partly filled.
                yield self._take(max(range(len(self._buckets)), key=lambda b: self._cost(self._buckets[b])))
            else:
                self._iterator = None
                return

    def state_dict(self) -> dict[str, Any]:
        """The buffered items, the RNG and the source's state: restoring gives the same following batches."""
        state: dict[str, Any] = {
            "edges": list(self.edges),
            "buckets": [list(b) for b in self._buckets],
            "rng": self._rng.getstate(),
        }
        if hasattr(self.source, "state_dict"):
            state["source"] = self.source.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()`` (the source must be the same kind, freshly built)."""
        self.edges = list(state["edges"])
        self._buckets = [list(b) for b in state["buckets"]]
        self._rng.setstate(state["rng"])
        if "source" in state:
            self.source.load_state_dict(state["source"])
        self._iterator = None


class NaiveSampler(Generic[T]):
    """Fixed-size batches in arrival order (random order when the source is the mixture): the baseline."""

    def __init__(self, source: Iterable[T], batch_size: int) -> None:
        self.source = source
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[list[T]]:
        batch: list[T] = []
        for item in self.source:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Only the source's state: no item is held between batches."""
        return {"source": self.source.state_dict()} if hasattr(self.source, "state_dict") else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``."""
        if "source" in state:
            self.source.load_state_dict(state["source"])

"""Token-budget bucketing and the seeded mixture: budget, padding, coverage, n^alpha, exact restore."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from neko.errors import ConfigError
from neko.records import Record, write_records
from neko.train.mixture import Mixture, mixture_weights, open_source
from neko.train.sampler import (
    DynamicBucketingSampler,
    NaiveSampler,
    batch_cost,
    estimate_bucket_edges,
    padding_share,
)


def _lengths(n: int = 2000, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [max(4, int(rng.lognormvariate(4.0, 0.6))) for _ in range(n)]


def _bucketed(items: list[int], **kwargs) -> DynamicBucketingSampler:
    edges = estimate_bucket_edges(items[:500], 30)
    return DynamicBucketingSampler(items, length_fn=lambda n: n, bucket_edges=edges, **kwargs)


def test_budget_respected_and_every_item_once() -> None:
    lengths = _lengths()
    items = list(range(len(lengths)))
    edges = estimate_bucket_edges(lengths[:500], 16)
    sampler = DynamicBucketingSampler(
        items, length_fn=lambda i: lengths[i], max_tokens=4096, bucket_edges=edges, quadratic_length=512
    )
    batches = list(sampler)
    seen = sorted(i for batch in batches for i in batch)
    assert seen == items  # every item exactly once per epoch
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert len(batch) == 1 or batch_cost(width, len(batch), 512) <= 4096
    # A second pass over the same (finite) source is the next epoch: every item once again.
    assert sorted(i for batch in sampler for i in batch) == items


def test_bucketed_padding_is_small_and_beats_naive() -> None:
    lengths = _lengths()
    bucketed = list(_bucketed(lengths, max_tokens=4096, buffer_size=1000))
    naive = list(NaiveSampler(lengths, batch_size=16))
    assert padding_share(bucketed) < 0.05
    assert padding_share(naive) > 4 * padding_share(bucketed)


def test_quadratic_penalty_shrinks_long_batches() -> None:
    assert batch_cost(100, 10, None) == 1000
    assert batch_cost(512, 2, 512) == 2 * 512 * 2
    lengths = [500] * 64
    plain = next(iter(_bucketed(lengths, max_tokens=8000)))
    penalised = next(iter(_bucketed(lengths, max_tokens=8000, quadratic_length=500)))
    assert len(plain) == 16 and len(penalised) == 8


def _write_datasets(tmp_path: Path, sizes: dict[str, int]) -> list[str]:
    paths = []
    for name, size in sizes.items():
        records = [
            Record(f"{name}-{i}", "gec", name, ["x " * (1 + i % 37)], references=["y"]) for i in range(size)
        ]
        path = tmp_path / f"{name}.jsonl"
        write_records(path, records)
        paths.append(str(path))
    return paths


def test_mixture_weights_follow_n_alpha(tmp_path: Path) -> None:
    assert mixture_weights([100, 400], 1.0) == pytest.approx([0.2, 0.8])
    assert mixture_weights([100, 400], 0.0) == pytest.approx([0.5, 0.5])
    assert mixture_weights([100, 400], 0.5) == pytest.approx([1 / 3, 2 / 3])
    paths = _write_datasets(tmp_path, {"small": 100, "large": 400})
    mixture = Mixture([open_source(p) for p in paths], alpha=0.5, seed=3)
    counts = {"small": 0, "large": 0}
    for _ in range(3000):
        counts[mixture.draw().dataset] += 1
    assert counts["small"] / 3000 == pytest.approx(1 / 3, abs=0.03)


def test_mixture_epoch_is_a_permutation(tmp_path: Path) -> None:
    (path,) = _write_datasets(tmp_path, {"only": 50})
    mixture = Mixture([open_source(path)], seed=1)
    first = [mixture.draw().id for _ in range(50)]
    second = [mixture.draw().id for _ in range(50)]
    assert sorted(first) == sorted(second) == sorted(f"only-{i}" for i in range(50))
    assert first != second  # a new shuffle each epoch


def test_exclude_leaves_out_records_by_meta(tmp_path: Path) -> None:
    voices = ["espeak:en+f2", "piper:en_US-lessac", "espeak:en-029", "piper:en_GB-alan", None]
    records = [
        Record(
            id=f"r{i}",
            task="asr",
            dataset="voices",
            hypotheses=["a b"],
            references=["a b"],
            meta={"voice": v} if v else {},
        )
        for i, v in enumerate(voices)
    ]
    path = tmp_path / "voices.jsonl"
    write_records(path, records)
    kept = open_source(str(path), exclude={"voice": "espeak:*"}).records
    assert sorted(kept[i].id for i in range(len(kept))) == ["r1", "r3", "r4"]  # no meta key: kept
    assert len(open_source(str(path)).records) == 5


def test_mixture_rejects_missing_and_duplicate_sources(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="matches no file"):
        open_source(str(tmp_path / "nothing_*.jsonl"))
    (path,) = _write_datasets(tmp_path, {"a": 3})
    with pytest.raises(ConfigError, match="share a name"):
        Mixture([open_source(path), open_source(path)])


def test_state_restore_gives_the_same_following_batches(tmp_path: Path) -> None:
    paths = _write_datasets(tmp_path, {"a": 120, "b": 60})

    def build() -> DynamicBucketingSampler:
        mixture = Mixture([open_source(p) for p in paths], alpha=0.7, seed=5)
        return DynamicBucketingSampler(
            mixture,
            length_fn=lambda r: len(r.hypotheses[0].split()),
            max_tokens=64,
            bucket_edges=[5, 10, 20, 30],
            buffer_size=40,
            seed=9,
        )

    reference = build()
    stream = iter(reference)
    for _ in range(7):
        next(stream)
    state = reference.state_dict()
    expected = [[r.id for r in next(stream)] for _ in range(10)]

    restored = build()
    restored.load_state_dict(state)
    again = iter(restored)
    assert [[r.id for r in next(again)] for _ in range(10)] == expected

"""A seeded, lazy mixture of record JSONL files, in the spirit of lhotse's ``CutSet.mux``.

Each dataset is opened once to index the byte offset of every line (records are read only when drawn).
A draw first picks a dataset with probability ``p_d ~ w_d * n_d ** alpha`` (``alpha = 1``: proportional to
size, ``0``: uniform, in between: small datasets up-sampled as in multilingual LM training), then takes the
next record of that dataset's current epoch, a seeded permutation, so within a dataset epoch every record
comes exactly once. The state (the RNG state, each dataset's epoch and position) is small and restores the
stream exactly.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neko.errors import ConfigError, InputError
from neko.records import Record, validate


def expand_paths(pattern: str | os.PathLike) -> list[Path]:
    """A path or a glob pattern (``~`` expanded) to the sorted list of existing files; ConfigError when none."""
    text = os.path.expanduser(str(pattern))
    paths = sorted(Path(p) for p in glob.glob(text)) if glob.has_magic(text) else [Path(text)]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise ConfigError(f"data path {pattern!r} matches no file")
    return paths


def excluded(meta: Mapping[str, Any] | None, exclude: Mapping[str, str]) -> bool:
    """Whether a record's ``meta`` matches any ``key: glob`` of ``exclude`` (``fnmatch``, on the value's str)."""
    meta = meta or {}
    return any(
        key in meta and fnmatch.fnmatchcase(str(meta[key]), pattern) for key, pattern in exclude.items()
    )


class LazyRecords:
    """The records of one or more JSONL files, indexed by byte offset and read (and validated) on demand.

    With ``exclude`` (``{meta key: glob}``), every line is parsed once while indexing and the records whose
    ``meta`` matches are left out of the index (e.g. ``{"voice": "espeak:*"}``).
    """

    def __init__(self, paths: list[Path], exclude: Mapping[str, str] | None = None) -> None:
        self.paths = paths
        self._index: list[tuple[int, int, int]] = []  # (file number, byte offset, 1-based line)
        for number, path in enumerate(paths):
            with open(path, "rb") as handle:
                offset, line_no = 0, 0
                for line in handle:
                    line_no += 1
                    if line.strip() and not (exclude and self._matches(line, path, line_no, exclude)):
                        self._index.append((number, offset, line_no))
                    offset += len(line)

    @staticmethod
    def _matches(line: bytes, path: Path, line_no: int, exclude: Mapping[str, str]) -> bool:
        import json

        try:
            return excluded(json.loads(line.decode("utf-8")).get("meta"), exclude)
        except (ValueError, UnicodeDecodeError, AttributeError) as exc:
            raise InputError(str(path), line_no, str(exc)) from None

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> Record:
        import json

        number, offset, line_no = self._index[i]
        path = self.paths[number]
        with open(path, "rb") as handle:
            handle.seek(offset)
            raw = handle.readline()
        try:
            return validate(json.loads(raw.decode("utf-8")))
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            raise InputError(str(path), line_no, str(exc)) from None


@dataclass
class MixtureSource:
    """One dataset of the mixture.

    Attributes:
        name: the dataset name used in logs and state (default: the file stem).
        records: the records, read on demand: ``LazyRecords`` over JSONL files, or a ``datasets.Dataset``
            seen through ``neko.readers.dataset.DatasetRecords`` (``neko.records.load_dataset``).
        weight: a multiplier on ``n_d ** alpha`` (1.0 = no preference).
    """

    name: str
    records: Sequence[Record]
    weight: float = 1.0


def mixture_weights(sizes: list[int], alpha: float, weights: list[float] | None = None) -> list[float]:
    """Normalised probabilities ``p_d ~ w_d * n_d ** alpha``."""
    if weights is None:
        weights = [1.0] * len(sizes)
    raw = [w * (n**alpha) if n > 0 else 0.0 for n, w in zip(sizes, weights, strict=True)]
    total = sum(raw)
    if total <= 0:
        raise ConfigError("the training mixture is empty (every dataset has 0 records or weight 0)")
    return [r / total for r in raw]


class Mixture:
    """An endless, seeded stream of records drawn from several datasets (see the module docstring)."""

    def __init__(self, sources: list[MixtureSource], alpha: float = 1.0, seed: int = 0) -> None:
        if not sources:
            raise ConfigError("the training mixture has no data sources")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ConfigError(f"two data sources share a name in {names}; give each a distinct `name`")
        self.sources = sources
        self.alpha = alpha
        self.seed = seed
        self.probs = mixture_weights([len(s.records) for s in sources], alpha, [s.weight for s in sources])
        self._rng = random.Random(seed)
        self._epochs = [0] * len(sources)
        self._positions = [0] * len(sources)
        self._orders: list[list[int] | None] = [None] * len(sources)

    def _order(self, d: int) -> list[int]:
        # Regenerated from (seed, dataset, epoch) instead of stored, so the state stays a few integers.
        if self._orders[d] is None:
            order = list(range(len(self.sources[d].records)))
            random.Random(f"{self.seed}/{self.sources[d].name}/{self._epochs[d]}").shuffle(order)
            self._orders[d] = order
        return self._orders[d]

    def draw(self) -> Record:
        """The next record of the stream."""
        d = self._rng.choices(range(len(self.sources)), weights=self.probs)[0]
        order = self._order(d)
        record = self.sources[d].records[order[self._positions[d]]]
        self._positions[d] += 1
        if self._positions[d] == len(order):
            self._epochs[d] += 1
            self._positions[d] = 0
            self._orders[d] = None
        return record

    def __iter__(self) -> Iterator[Record]:
        while True:
            yield self.draw()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the stream exactly (JSON- and pickle-friendly)."""
        version, internal, gauss = self._rng.getstate()
        return {
            "names": [s.name for s in self.sources],
            "rng": [version, list(internal), gauss],
            "epochs": list(self._epochs),
            "positions": list(self._positions),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``; the datasets must be the same, in the same order."""
        names = [s.name for s in self.sources]
        if state["names"] != names:
            raise ConfigError(f"checkpoint mixture has datasets {state['names']}, the config has {names}")
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))
        self._epochs = list(state["epochs"])
        self._positions = list(state["positions"])
        self._orders = [None] * len(self.sources)


def open_source(
    path: str, name: str | None = None, weight: float = 1.0, exclude: Mapping[str, str] | None = None
) -> MixtureSource:
    """A mixture source from a path or glob (records whose meta matches ``exclude`` left out); the name
    defaults to the stem of the first file."""
    paths = expand_paths(path)
    return MixtureSource(name=name or paths[0].stem, records=LazyRecords(paths, exclude), weight=weight)


def open_sources(
    path: str, name: str | None = None, weight: float = 1.0, exclude: Mapping[str, str] | None = None
) -> list[MixtureSource]:
    """The mixture sources of one recipe entry: a named entry is one source over every file it matches; an
    unnamed glob is one source per file (named by its stem), so that each generated condition is its own
    dataset in the mixture without listing files that may not exist yet."""
    if name is not None:
        return [open_source(path, name, weight, exclude)]
    return [open_source(str(p), None, weight, exclude) for p in expand_paths(path)]

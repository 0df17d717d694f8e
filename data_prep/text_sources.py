"""Modern, varied English sentences to synthesise and render: WMT22 English references, WordNet examples, fortunes.

Every sentence is checked against a blocklist of the HyPoradise test references (after normalisation) so that
no generated training item can leak an evaluation transcript. The pool is shuffled with a fixed seed and split
into train and dev by a hash of the normalised text, so the split of a sentence never depends on the pool.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.normalize import normalize_text
from neko.errors import InputError

WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
# Fortune files that are mostly prose; the others are ASCII art, code, poems or offensive.
FORTUNE_FILES = (
    "fortunes",
    "wisdom",
    "people",
    "literature",
    "science",
    "work",
    "education",
    "law",
    "politics",
    "platitudes",
    "humorists",
    "miscellaneous",
    "food",
    "pets",
    "sports",
    "medicine",
    "love",
    "goedel",
)
MIN_WORDS, MAX_WORDS = 4, 30
DEV_PERCENT = 6
_QUOTED = re.compile(r'"([^"]+)"')
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")


@dataclass(frozen=True)
class Sentence:
    """One sentence: the written text (shown to OCR), its HyPoradise form (spoken, the ASR reference), origin."""

    text: str
    normalized: str
    source: str


@dataclass
class PoolStats:
    """How many candidates each filter removed; blocked are the exact HyPoradise test reference matches."""

    read: int = 0
    filtered: int = 0
    duplicates: int = 0
    blocked: int = 0
    kept: dict[str, int] = field(default_factory=dict)


def hyporadise_blocklist(folder: Path) -> set[str]:
    """The normalised ``output`` of every record in ``folder/test_*.json`` (HyPoradise test references)."""
    blocked: set[str] = set()
    for path in sorted(Path(folder).glob("test_*.json")):
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(str(path), exc.lineno, f"invalid JSON: {exc.msg}") from None
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("output"), str):
                raise InputError(str(path), i + 1, "expected an object with a string 'output'", unit="record")
            blocked.add(normalize_text(item["output"]))
    return blocked


def wmt_references(folder: Path) -> Iterator[str]:
    """English reference lines of WMT22 (``*.en`` files of the references folder), in file order."""
    for path in sorted(Path(folder).glob("*.en")):
        yield from path.read_text(encoding="utf-8").splitlines()


def wordnet_examples(folder: Path = WORDNET_DIR) -> Iterator[str]:
    """Quoted example sentences from WordNet glosses (``data.noun`` etc., text after the ``|``)."""
    for pos in ("noun", "verb", "adj", "adv"):
        path = folder / f"data.{pos}"
        if not path.exists():
            continue
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:  # licence header lines start with two spaces
                continue
            yield from _QUOTED.findall(line.split("|", 1)[1])


def fortunes(folder: Path = FORTUNES_DIR, names: Iterable[str] = FORTUNE_FILES) -> Iterator[str]:
    """Sentences of the prose fortune files: cookies split on ``%``, joined lines, split at sentence ends."""
    for name in names:
        path = folder / name
        if not path.exists():
            continue
        for cookie in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            if "--" in cookie:  # drop the attribution line ("-- Mark Twain")
                cookie = cookie[: cookie.rindex("--")]
            yield from _SENTENCE_END.split(" ".join(cookie.split()))


def is_usable(text: str) -> bool:
    """Plain English prose of 4-30 words: mostly ASCII letters, no URLs, code or tab-separated tables."""
    words = text.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return False
    if any(c in text for c in "@<>{}|\\#_*=~^") or "http" in text or "www." in text:
        return False
    letters = sum(c.isascii() and c.isalpha() for c in text)
    return letters >= 0.7 * len(text.replace(" ", "")) and sum(not c.isascii() for c in text) <= 2


def split_of(normalized: str, dev_percent: int = DEV_PERCENT) -> str:
    """``dev`` or ``train``, from a stable hash of the normalised text (independent of the pool and its order)."""
    bucket = int(hashlib.sha1(normalized.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "dev" if bucket < dev_percent else "train"


def build_pool(
    sources: dict[str, Iterable[str]], blocklist: set[str], *, seed: int = 0
) -> tuple[list[Sentence], PoolStats]:
    """Filter, normalise, de-duplicate and block the candidate sentences; shuffle them with ``seed``."""
    stats = PoolStats()
    seen: set[str] = set()
    pool: list[Sentence] = []
    for name, lines in sources.items():
        stats.kept[name] = 0
        for line in lines:
            stats.read += 1
            text = " ".join(line.split())
            if not is_usable(text):
                stats.filtered += 1
                continue
            norm = normalize_text(text)
            if len(norm.split()) < MIN_WORDS:
                stats.filtered += 1
                continue
            if norm in blocklist:
                stats.blocked += 1
                continue
            if norm in seen:
                stats.duplicates += 1
                continue
            seen.add(norm)
            pool.append(Sentence(text, norm, name))
            stats.kept[name] += 1
    random.Random(seed).shuffle(pool)
    return pool, stats


# Sources read from the shared data folder: their text is not ours to redistribute, so the versioned corpus
# (data_prep/corpus.py) leaves out the records made from them; `make data` regenerates them.
SHARED_SOURCES = frozenset({"wmt22"})


def default_pool(data: Path, *, seed: int = 0) -> tuple[list[Sentence], PoolStats]:
    """The pool from the shared data folder (WMT22, HyPoradise blocklist) and the Debian text packages.

    Without the HyPoradise test files nothing could keep their references out of training, and without the
    WMT22 references the pool (so every generated dataset) would differ: both missing folders are errors.
    """
    hyporadise, references = data / "hyporadise", data / "wmt" / "wmt22" / "references"
    for folder, pattern in ((hyporadise, "test_*.json"), (references, "*.en")):
        if not any(folder.glob(pattern)):
            raise InputError(
                str(folder),
                None,
                f"no {pattern} files: the text pool needs them (pass --data or set NEKO_DATA)",
            )
    sources = {
        "wmt22": wmt_references(references),
        "wordnet": wordnet_examples(),
        "fortunes": fortunes(),
    }
    return build_pool(sources, hyporadise_blocklist(hyporadise), seed=seed)


def sentences_for(pool: list[Sentence], split: str, stream: str, n: int) -> list[Sentence]:
    """The first ``n`` sentences of ``split`` in an order specific to ``stream`` (e.g. a condition name).

    Different streams draw different orders from the same pool, so conditions do not all speak the same
    sentences, while each stream stays deterministic and its first ``n`` are a prefix of its first ``n + k``.
    """
    chosen = [s for s in pool if split_of(s.normalized) == split]
    seed = int(hashlib.sha1(f"{split}/{stream}".encode()).hexdigest()[:8], 16)
    random.Random(seed).shuffle(chosen)
    return chosen[:n]

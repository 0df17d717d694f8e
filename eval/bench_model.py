"""Cost of upcycling: forward+backward time and peak memory of the dense LoRA model vs the NeKo MoE.

    python eval/bench_model.py --base smollm2-135m --experts 4 --batch 4 --seq 128 --steps 2 --threads 1

Each variant runs in its own subprocess so that its peak RSS (``ru_maxrss``) is its own. A step is the
training step that `neko train` runs: forward with task routing, LM loss + router loss, backward, AdamW.
Prints one line per variant, the MoE/dense ratios, and a final JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="smollm2-135m", help="packaged base name or HF folder")
    parser.add_argument("--experts", type=int, default=4)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--variant", choices=["dense", "neko"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_variant(args: argparse.Namespace) -> dict:
    """Build one variant, run warm-up + timed steps, return its figures."""
    import resource

    import torch

    from neko.model.config import ModelConfig
    from neko.model.io import build_model
    from neko.model.lora import trainable_parameters
    from neko.model.routing import task_routing

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    start = time.perf_counter()
    cfg = ModelConfig(base=args.base, num_experts=args.experts, top_k=args.top_k, routing=args.variant)
    model, tok = build_model(cfg)
    build_s = time.perf_counter() - start
    ids = torch.randint(0, len(tok), (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    experts = torch.arange(args.batch) % args.experts
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    times = []
    for _ in range(args.steps + 1):
        t0 = time.perf_counter()
        with task_routing(model, experts, cfg.routing) as rec:
            loss = model(input_ids=ids, attention_mask=mask, labels=ids).loss
            loss = loss + cfg.router_loss_weight * rec.router_loss(mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    counts = trainable_parameters(model)
    return {
        "variant": args.variant,
        "params_total": counts["total"],
        "params_trainable": counts["trainable"],
        "build_s": round(build_s, 1),
        "step_s": round(statistics.median(times[1:]), 2),
        "step_s_all": [round(t, 2) for t in times],
        "peak_rss_gib": round(rss_kib / 2**20, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Run both variants in subprocesses and print the comparison."""
    args = parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args)))
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    results = {}
    for variant in ("dense", "neko"):
        cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--variant", variant]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[variant]
        print(
            f"{variant:6s} params {r['params_total'] / 1e6:7.1f}M (trainable {r['params_trainable'] / 1e6:.2f}M) "
            f"step {r['step_s']:6.2f}s  peak RSS {r['peak_rss_gib']:5.2f} GiB  (build {r['build_s']}s)"
        )
    ratio = {
        "step_time": round(results["neko"]["step_s"] / results["dense"]["step_s"], 2),
        "peak_rss": round(results["neko"]["peak_rss_gib"] / results["dense"]["peak_rss_gib"], 2),
    }
    print(f"MoE / dense: step time x{ratio['step_time']}, peak RSS x{ratio['peak_rss']}")
    setup = {k: getattr(args, k) for k in ("base", "experts", "top_k", "batch", "seq", "steps", "threads")}
    print(json.dumps({"setup": setup, "results": results, "ratio": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cost of upcycling: training-step time and peak memory of the NeKo MoE against the dense LoRA model.

    python eval/bench_model.py --base smollm2-135m --experts 4 --batch 4 --seq 128 --steps 4 --threads 1

Each variant lives in its own worker process (so that its peak RSS, ``ru_maxrss``, is its own; both give
freed heap pages back after each step, untimed: ``neko.allocator.release_freed_memory``), and the
parent drives them step by step, alternating: dense, MoE, dense, MoE, ... Only one worker computes at a
time, and both see the same machine load within a pair, so the median of the per-pair time ratios survives
a noisy shared machine where whole-run timings do not. A step is the training step `neko train` runs:
forward with task routing, LM loss (its logits at the target positions only, `target_lm_loss`; every
position is a target unless ``--target-share`` makes the first part of each row a prompt) + router loss,
backward, AdamW. One untimed warm-up pair comes first.
Each step is timed twice: wall clock, and the worker's CPU time (``time.process_time``, all its threads).
The ratio uses ``--clock`` (default ``cpu``): when other jobs hold the cores, a niced worker's wall time is
mostly waiting for the scheduler (measured: the same step 56 s in one pair, 259 s in the next), while its
CPU time stays what the step costs; with ``--threads 1`` that is the single-core time the step takes on an
idle machine. Both ratios are printed.

``--moe shared`` (default) is the MoE as `neko train` runs it: shared experts (`build_model`), compiled as
a recipe's default ``compile_experts`` asks (``--no-compile``: the eager shared form); ``--moe fused`` undoes
the sharing (peft's fused expert forward, E base copies): the model as it was before shared experts. The
warm-up pair holds the compilation.
The shared MoE also checks its logits against the fused forward on the same (perturbed) weights, in float32
and in float64, and reports how far float32 rounding alone moves each from the float64 fused logits (a
30-layer model's float32 logits differ at the 1e-4 level between any two summation orders).

Ends with ONE JSON line: {"moe_dense_time_ratio", "moe_dense_memory_ratio", "max_abs_logit_diff" (float32)};
the line before it holds every figure (the float64 ones under ``results.neko``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    parser.add_argument("--steps", type=int, default=4, help="timed pairs after one warm-up pair")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--moe", choices=["shared", "fused"], default="shared", help="MoE expert forward")
    parser.add_argument(
        "--no-compile",
        dest="compile",
        action="store_false",
        help="shared experts run eagerly (default: torch.compile, as neko train's compile_experts)",
    )
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="time of a step: the worker's CPU time (default; what the step costs, whatever else runs) or wall",
    )
    parser.add_argument(
        "--target-share",
        type=float,
        default=1.0,
        help="share of each row's positions that are targets (the rest prompt, no logits), as in training "
        "data (12-41%% of a prompt + target; default 1: every position)",
    )
    parser.add_argument("--variant", choices=["dense", "neko"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


class Worker:
    """One variant's model in this process: build it, then run steps on command (see `serve`)."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        from neko.model.config import ModelConfig
        from neko.model.io import build_model
        from neko.model.lora import trainable_parameters
        from neko.train.loss import IGNORE_INDEX

        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        start = time.perf_counter()
        self.cfg = ModelConfig(
            base=args.base, num_experts=args.experts, top_k=args.top_k, routing=args.variant
        )
        self.model, tok = build_model(self.cfg)
        if args.variant == "neko" and args.moe == "fused":
            from neko.model.shared_training import unshare_trainable_experts

            unshare_trainable_experts(self.model)
        compiled = args.variant == "neko" and args.moe == "shared" and args.compile
        if compiled:
            from neko.model.shared_training import compile_trainable_experts

            compile_trainable_experts(self.model)
        self.info = {
            "variant": args.variant
            if args.variant == "dense"
            else f"neko ({args.moe} experts{', compiled' if compiled else ''})",
            "build_s": round(time.perf_counter() - start, 1),
            **{f"params_{k}": v for k, v in trainable_parameters(self.model).items()},
        }
        gen = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, len(tok), (args.batch, args.seq), generator=gen)
        self.mask = torch.ones_like(self.ids)
        self.labels = self.ids.clone()
        self.labels[:, : round((1 - args.target_share) * args.seq)] = IGNORE_INDEX  # the prompt part
        self.experts = torch.arange(args.batch) % args.experts
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=1e-4)
        self.compare = args.variant == "neko" and args.moe == "shared"

    def step(self) -> dict:
        """One training step; its wall time and its CPU time (all of this process's threads) in seconds."""
        from neko.allocator import release_freed_memory
        from neko.model.routing import task_routing
        from neko.train.loss import target_lm_loss

        self.model.train()
        start, cpu = time.perf_counter(), time.process_time()
        with task_routing(self.model, self.experts, self.cfg.routing) as rec:
            loss = target_lm_loss(self.model, self.ids, self.mask, self.labels)
            loss = loss + self.cfg.router_loss_weight * rec.router_loss(self.mask)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        times = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}
        release_freed_memory()  # untimed: peak RSS = what a step holds, not pages glibc kept from earlier ones
        return times

    def finish(self) -> dict:
        """Peak RSS so far and, for the shared MoE, the largest logit difference to the fused forward."""
        out = {
            **self.info,
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        }
        # After the peak is read: the float64 copies of the comparison must not count as training memory.
        if self.compare:
            out.update(self._logit_diff())
        return out

    def _logit_diff(self) -> dict:
        """Shared vs fused logits of the batch, after seeded noise on every trainable weight (fresh LoRA B is
        zero, which would hide the experts' own terms): their largest difference in float32 (as trained) and
        in float64 (the same weights, cast), and each float32 forward's largest error against the float64
        fused logits, i.e. how far float32 rounding alone moves the fused experts' own logits."""
        import torch

        from neko.model.shared_training import unshare_trainable_experts

        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for param in self.model.parameters():
                if param.requires_grad:
                    param.add_(torch.randn(param.shape, generator=gen) * 0.02)
        self.model.eval()
        shared32 = self._logits()
        implementation = self._experts_implementation("eager")  # torch's grouped_mm has no float64 kernel
        self.model.double()
        shared64 = self._logits()
        unshare_trainable_experts(self.model)
        fused64 = self._logits()
        self.model.float()  # float64 holds every float32 exactly: the weights return unchanged
        self._experts_implementation(implementation)
        fused32 = self._logits()

        def diff(a, b) -> float:
            return float((a.double() - b.double()).abs().max())

        return {
            "max_abs_logit_diff": diff(shared32, fused32),
            "max_abs_logit_diff_fp64": diff(shared64, fused64),
            "fp32_error_fused": diff(fused32, fused64),
            "fp32_error_shared": diff(shared32, fused64),
        }

    def _experts_implementation(self, name: str | None) -> str | None:
        """Set transformers' expert kernel on every config of the model; return the one it had."""
        from transformers import PretrainedConfig

        configs = {
            id(c): c
            for m in self.model.modules()
            if isinstance(c := getattr(m, "config", None), PretrainedConfig)
        }
        before = next(iter(configs.values()))._experts_implementation
        for config in configs.values():
            config._experts_implementation = name
        return before

    def _logits(self):
        import torch

        from neko.model.routing import task_routing

        with torch.no_grad(), task_routing(self.model, self.experts, self.cfg.routing):
            return self.model(input_ids=self.ids, attention_mask=self.mask).logits


def serve(args: argparse.Namespace) -> int:
    """Worker loop: print the model's info, then answer each stdin line ``step`` / ``finish`` with JSON."""
    worker = Worker(args)
    print(json.dumps(worker.info), flush=True)
    for line in sys.stdin:
        if line.strip() == "step":
            print(json.dumps(worker.step()), flush=True)
        else:
            print(json.dumps(worker.finish()), flush=True)
            return 0
    return 1


def _ask(proc: subprocess.Popen, command: str | None = None) -> dict:
    if command is not None:
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"bench_model: worker exited with {proc.wait()}")
    return json.loads(line)


def main(argv: list[str] | None = None) -> int:
    """Start both workers, alternate their steps, print per-variant figures and the ratio line."""
    args = parse_args(argv)
    if args.variant:
        return serve(args)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    argv = argv if argv is not None else sys.argv[1:]
    procs = {}
    for variant in ("dense", "neko"):
        cmd = [sys.executable, __file__, *argv, "--variant", variant]
        procs[variant] = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        _ask(procs[variant])  # built (one at a time: the two builds would compete for memory and cores)
    times: dict[str, list[dict]] = {"dense": [], "neko": []}
    for pair in range(args.steps + 1):
        for variant in ("dense", "neko"):
            times[variant].append(_ask(procs[variant], "step"))
        dense, moe = times["dense"][-1], times["neko"][-1]
        print(
            f"pair {pair}: dense {dense['cpu']:6.2f} s CPU ({dense['wall']:6.2f} s wall), "
            f"MoE {moe['cpu']:6.2f} s CPU ({moe['wall']:6.2f} s wall)",
            flush=True,
        )
    results = {variant: _ask(proc, "finish") for variant, proc in procs.items()}
    for proc in procs.values():
        proc.wait()
    ratios = {
        clock: [m[clock] / d[clock] for d, m in zip(times["dense"][1:], times["neko"][1:], strict=True)]
        for clock in ("cpu", "wall")
    }
    for variant, r in results.items():
        for clock in ("cpu", "wall"):
            r[f"step_{clock}_s"] = [round(t[clock], 2) for t in times[variant]]
        print(
            f"{r['variant']:22s} params {r['params_total'] / 1e6:7.1f}M "
            f"(trainable {r['params_trainable'] / 1e6:.2f}M)  median step "
            f"{statistics.median(t[args.clock] for t in times[variant][1:]):6.2f} s {args.clock}  "
            f"peak RSS {r['peak_rss_gib']:5.2f} GiB"
        )
    summary = {
        "moe_dense_time_ratio": round(statistics.median(ratios[args.clock]), 3),
        "moe_dense_memory_ratio": round(
            results["neko"]["peak_rss_gib"] / results["dense"]["peak_rss_gib"], 3
        ),
        "max_abs_logit_diff": results["neko"].get("max_abs_logit_diff"),
    }
    setup = {
        k: getattr(args, k)
        for k in ("base", "experts", "top_k", "batch", "seq", "steps", "threads", "moe", "target_share")
    }
    pairs = {f"pair_{clock}_time_ratios": [round(r, 3) for r in ratios[clock]] for clock in ratios}
    medians = {f"median_{clock}_time_ratio": round(statistics.median(ratios[clock]), 3) for clock in ratios}
    print(json.dumps({"setup": setup, "results": results, **pairs, **medians}))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Loading memory and forward time of the bundled model: merged experts (E MLP copies) vs shared experts.

Run: python eval/bench_load.py [--model PATH] [--threads 2] [--batch 16] [--tokens 150] [--repeats 2]

Each way runs in its own child process, so each peak RSS (``resource.getrusage`` high-water mark, glibc told
to return freed blocks as ``bench_infer`` does) is its own:

- ``merged``: ``load_folder(share_experts=False)``: every expert's LoRA merged into its own MLP copy;
- ``shared``: ``load_folder()`` as inference loads by default: one MLP copy per layer plus LoRA factors
  (`neko.model.shared_experts`).

Both load through ``Corrector.from_pretrained(threads=...)``, then time one forward pass (best of
``--repeats``, after an untimed small warm-up) over a seeded ``--batch`` x ``--tokens`` batch of random token
ids. The children's last-position logits are compared. The last line is one JSON object with both ways and
the shared/merged ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
WAYS = ("merged", "shared")


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """Load one way, time the forward pass, write logits to ``--logits`` and print one JSON line."""
    import functools

    from neko.allocator import return_freed_memory

    return_freed_memory()
    import torch

    import neko.infer.loading as loading
    from neko.infer.corrector import Corrector
    from neko.model.shared_experts import SharedLoraExperts

    if args.child == "merged":
        # Corrector.from_pretrained imports load_folder at call time, so this reaches it.
        loading.load_folder = functools.partial(loading.load_folder, share_experts=False)
    start = time.perf_counter()
    corrector = Corrector.from_pretrained(args.model, threads=args.threads)
    load_s = time.perf_counter() - start
    load_rss = peak_rss_mb()
    model = corrector.model
    shared = sum(isinstance(m, SharedLoraExperts) for m in model.modules())
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.tokens), generator=gen)
    mask = torch.ones_like(ids)
    times = []
    with torch.no_grad():
        model(input_ids=ids[:2, :16], attention_mask=mask[:2, :16])
        for _ in range(args.repeats):
            start = time.perf_counter()
            logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits
            times.append(time.perf_counter() - start)
    torch.save(logits[:, -1].float().clone(), args.logits)
    result = {
        "way": args.child,
        "shared_modules": shared,
        "parameters_mb": round(sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, 1),
        "load_s": round(load_s, 2),
        "load_peak_rss_mb": round(load_rss, 1),
        "forward_s": round(min(times), 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the bundled model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--logits", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    import torch

    results, logits = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for way in WAYS:
            cmd = [sys.executable, __file__, "--child", way, "--logits", f"{tmp}/{way}.pt"]
            cmd += ["--threads", str(args.threads), "--batch", str(args.batch), "--tokens", str(args.tokens)]
            cmd += ["--repeats", str(args.repeats)] + (["--model", args.model] if args.model else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"bench_load: the {way} child failed:\n{out.stderr[-3000:]}")
            results[way] = json.loads(out.stdout.strip().splitlines()[-1])
            logits[way] = torch.load(f"{tmp}/{way}.pt")
            print(json.dumps(results[way]), flush=True)
    merged, shared = results["merged"], results["shared"]
    summary = {
        **{f"{way}_{key}": value for way, r in results.items() for key, value in r.items() if key != "way"},
        "load_peak_rss_ratio": round(shared["load_peak_rss_mb"] / merged["load_peak_rss_mb"], 3),
        "peak_rss_ratio": round(shared["peak_rss_mb"] / merged["peak_rss_mb"], 3),
        "forward_time_ratio": round(shared["forward_s"] / merged["forward_s"], 3),
        "max_abs_logit_diff": float((logits["shared"] - logits["merged"]).abs().max()),
        "batch": [args.batch, args.tokens],
        "threads": args.threads,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

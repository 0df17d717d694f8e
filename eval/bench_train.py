"""Training throughput: naive fixed-size batches vs token-budget bucketed batches, real optimiser steps.

Both samplers draw from the same seeded mixture and train the same model (same init) for the same wall
time each; reported are the padding share and the non-padding tokens per second of each, and their ratio.

Fairness: a fixed batch size must fit the worst case, so the naive sampler gets the largest batch whose
padded cost at ``--max-len`` stays within the bucketed sampler's budget (the same peak memory bound):
``batch = max_tokens // cost(max_len)``. ``--naive-batch`` overrides it (e.g. the mean-length size).

Model: by default a small random Llama (hidden 256, 4 layers) with SmolLM2's real tokenizer (when the packaged
base is converted), upcycled to 4 experts with LoRA and NeKo routing, i.e. the real training step on a model
cheap enough for minutes of CPU; ``--base smollm2-135m`` runs the real 373M MoE (about 20-40 s a step on 2
cores: use a long ``--seconds``). Data: the prepared shared data if present, else records synthesised here.

    python eval/bench_train.py [--seconds 90] [--max-tokens 2048] [--max-len 256]

Ends with ONE JSON line: {"padding_naive", "padding_bucketed", "nonpad_tokens_per_s_ratio", ...}.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import tempfile
import time
from pathlib import Path

PREPARED = ["fce_train.jsonl", "wmt22_*.jsonl", "overproof_dataset2.jsonl", "fce_dev.jsonl"]


def _data(folder: Path, scratch: Path) -> list[str]:
    found = [p for pattern in PREPARED for p in sorted(glob.glob(str(folder / pattern)))]
    if found:
        return found
    from neko.records import Record, write_records

    rng = random.Random(0)
    words = "the a of to and in was he she it for on with as by at from his her they said".split()
    path = scratch / "synthetic.jsonl"
    records = []
    for i in range(3000):
        n = max(3, int(rng.lognormvariate(2.8, 0.6)))
        ref = " ".join(rng.choice(words) for _ in range(n))
        records.append(Record(str(i), "gec", "synthetic", [ref.replace(" a ", " an ")], references=[ref]))
    write_records(path, records)
    return [str(path)]


def _model(base: str, scratch: Path, seed: int):
    from neko.model.config import LoraSettings, ModelConfig
    from neko.model.io import build_model

    if base == "small":
        from neko.model.base import resolve_base
        from neko.model.tiny import tiny_dense_model, tiny_tokenizer

        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(resolve_base("smollm2-135m"))
        except Exception as exc:  # the packaged model is optional here: fall back to the tiny tokenizer
            print(f"SmolLM2 tokenizer unavailable ({exc}); using the tiny test tokenizer")
            tokenizer = tiny_tokenizer()
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        folder = scratch / "base"
        tiny_dense_model("llama", len(tokenizer), hidden_size=256, num_layers=4, seed=seed).save_pretrained(
            folder
        )
        tokenizer.save_pretrained(folder)
        base = str(folder)
    cfg = ModelConfig(base=base, num_experts=4, top_k=2, routing="neko", lora=LoraSettings(r=16, alpha=32))
    return build_model(cfg), cfg


def _run(name, sampler, model, tokenizer, cfg, args) -> dict:
    import torch

    from neko.model.routing import task_routing
    from neko.train.batching import collate

    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    tokens = padded = steps = 0
    batches = iter(sampler)
    started = time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        batch = collate(next(batches), tokenizer, args.max_len, cfg)
        with task_routing(model, batch.expert_ids, cfg.routing) as routing:
            out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
            loss = out.loss + cfg.router_loss_weight * routing.router_loss(batch.attention_mask)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        tokens, padded, steps = tokens + batch.tokens, padded + batch.padded, steps + 1
    elapsed = time.perf_counter() - started
    row = {
        "sampler": name,
        "steps": steps,
        "seconds": round(elapsed, 1),
        "padding": round(1 - tokens / padded, 4),
        "nonpad_tokens_per_s": round(tokens / elapsed, 1),
    }
    print(json.dumps(row))
    return row


def main() -> None:
    """Parse flags, run both samplers, print the summary line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90, help="wall time of each sampler's run")
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--quadratic-length", type=int, default=2048)
    parser.add_argument("--naive-batch", type=int, default=None)
    parser.add_argument("--base", default="small", help="'small' (default) or a base name/folder")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    parser.add_argument("--data", default=str(Path.home() / ".cache" / "neko" / "prepared"))
    args = parser.parse_args()

    import torch

    from neko.train.batching import build_mixture, build_sampler
    from neko.train.config import DataSource, TrainConfig
    from neko.train.sampler import NaiveSampler, batch_cost

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        paths = _data(Path(args.data), scratch)
        sources = [DataSource(p, Path(p).stem) for p in paths]
        tc = TrainConfig(
            data=sources, alpha=0.5, max_tokens=args.max_tokens, quadratic_length=args.quadratic_length,
            max_len=args.max_len, seed=0,
        )  # fmt: skip
        naive_batch = args.naive_batch or max(
            1, int(args.max_tokens // batch_cost(args.max_len, 1, args.quadratic_length))
        )
        print(
            f"data: {[Path(p).name for p in paths]}; naive batch size {naive_batch}; budget {args.max_tokens}"
        )
        rows = []
        for name in ("naive", "bucketed"):
            torch.manual_seed(0)
            (model, tokenizer), cfg = _model(args.base, scratch / name, seed=0)
            if name == "naive":
                sampler = NaiveSampler(build_mixture(sources, tc.alpha, tc.seed), naive_batch)
            else:
                sampler = build_sampler(tc, tokenizer)
            rows.append(_run(name, sampler, model, tokenizer, cfg, args))
    naive, bucketed = rows
    print(
        json.dumps(
            {
                "padding_naive": naive["padding"],
                "padding_bucketed": bucketed["padding"],
                "nonpad_tokens_per_s_ratio": round(
                    bucketed["nonpad_tokens_per_s"] / naive["nonpad_tokens_per_s"], 2
                ),
                "nonpad_tokens_per_s_naive": naive["nonpad_tokens_per_s"],
                "nonpad_tokens_per_s_bucketed": bucketed["nonpad_tokens_per_s"],
                "naive_batch_size": naive_batch,
                "max_tokens": args.max_tokens,
            }
        )
    )


if __name__ == "__main__":
    main()

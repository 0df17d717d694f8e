"""Training step time: transformers' full-vocabulary LM loss vs the target-only loss (`neko.train.loss`).

The real SmolLM2-135M with the dense LoRA of ``neko adapt`` trains on the same micro-batches of HyPoradise
ATIS train records (prompts + targets, ~1,024 tokens a batch) with both losses, alternating A, B, A, B so
that a noisy machine slows both alike; reported is the median of the per-pair time ratios and the largest
difference between the two losses.

    python eval/bench_target_loss.py [--pairs 8] [--threads 2] [--data ../shared/data]

Ends with ONE JSON line: {"full_target_time_ratio", "max_abs_loss_diff", ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    """Time both losses on the same batches, alternating."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--data", default=None, help="the shared data folder (default ../shared/data)")
    args = parser.parse_args()

    import torch

    from neko.model.io import build_model
    from neko.paths import data_dir
    from neko.readers import read_items
    from neko.train.adapt import start_point
    from neko.train.batching import collate
    from neko.train.loss import target_lm_loss

    torch.set_num_threads(args.threads)
    _, items = read_items(str(data_dir(args.data) / "hyporadise" / "train_atis.json"), "hyporadise")
    records = [item.record for item in items]
    cfg, _ = start_point(None)
    model, tokenizer = build_model(cfg)
    model.train()
    per_batch = max(1, args.max_tokens // 128)
    batches = [
        collate(records[i * per_batch : (i + 1) * per_batch], tokenizer, 256, cfg) for i in range(args.pairs)
    ]

    def full(batch):
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss

    def target(batch):
        return target_lm_loss(model, batch.input_ids, batch.attention_mask, batch.labels)

    def step(loss_fn, batch) -> tuple[float, float]:
        started = time.perf_counter()
        loss = loss_fn(batch)
        loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - started, float(loss.detach())

    step(target, batches[0])  # warm-up: first-call allocations
    ratios, diffs, times = [], [], {"full": [], "target": []}
    for batch in batches:
        t_full, l_full = step(full, batch)
        t_target, l_target = step(target, batch)
        ratios.append(t_full / t_target)
        diffs.append(abs(l_full - l_target))
        times["full"].append(t_full)
        times["target"].append(t_target)
    result = {
        "full_target_time_ratio": round(statistics.median(ratios), 3),
        "max_abs_loss_diff": max(diffs),
        "median_step_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "pairs": args.pairs,
        "tokens_per_batch": round(statistics.mean(b.tokens for b in batches)),
        "threads": args.threads,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Choosing the defaults of ``neko adapt``: dev loss after the same number of training tokens, per variant.

Each variant trains from the same seed on the same training split for about ``--tokens`` target+prompt tokens
and reports its LM loss on the dev split before and after (``neko.train.dev.dev_loss``, teacher-forced,
every dev record), and its tokens per second. Comparing at equal tokens keeps the comparison fair on a busy
machine (the dev loss does not depend on how fast the steps ran); the time per token of each variant is
reported beside it, to turn tokens into minutes.

    python eval/sweep_adapt.py --train RUN/data/train.jsonl --dev RUN/data/dev.jsonl --out /tmp/sweep

Prints one JSON line per variant: {"variant", "dev_loss_before", "dev_loss_after", "steps", "tokens",
"tokens_per_s"}.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

VARIANTS = {
    "default": {},
    "lr1e-3": {"lr": 1e-3},
    "lr2e-3": {"lr": 2e-3},
    "tokens512": {"max_tokens": 512},
    "tokens512-lr1e-3": {"max_tokens": 512, "lr": 1e-3},
    "rank8": {"rank": 8},
    "continue-bundled-moe": {"continue_default": True},
}


def run_variant(name: str, train: str, dev: str, out: Path, tokens: int) -> dict:
    """Train one variant for about ``tokens`` tokens; its dev losses and speed."""
    from neko.infer.corrector import default_model_dir
    from neko.train.adapt import adapt_recipe
    from neko.train.checkpoint import latest_checkpoint
    from neko.train.config import DataSource
    from neko.train.trainer import train as run_training

    settings = VARIANTS[name]
    model = str(default_model_dir()) if settings.get("continue_default") else None
    config = adapt_recipe(out / name, model=model, minutes=None, max_steps=1)
    tc = config.train
    tc.max_tokens = settings.get("max_tokens", tc.max_tokens)
    tc.max_steps = max(1, tokens // int(0.9 * tc.max_tokens))  # batches fill ~90% of their budget
    tc.lr = settings.get("lr", tc.lr)
    tc.warmup_steps = max(1, tc.max_steps // 10)
    tc.data = [DataSource(path=train, name="adapt")]
    tc.dev, tc.dev_size, tc.dev_loss_size = [DataSource(path=dev)], 0, 10_000
    if "rank" in settings:
        rank = settings["rank"]
        config.model = replace(config.model, lora=replace(config.model.lora, r=rank, alpha=2 * rank))
    run_dir = Path(config.output_dir)
    if not (run_dir / "final").is_dir():  # a finished variant is read back, not trained again
        run_training(config, resume=latest_checkpoint(run_dir) is not None)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    dev_rows = [r for r in rows if "dev_loss" in r]
    steps = [r for r in rows if "tokens_per_s" in r]
    return {
        "variant": name,
        "dev_loss_before": dev_rows[0]["dev_loss"],
        "dev_loss_after": dev_rows[-1]["dev_loss"],
        "steps": tc.max_steps,
        "tokens": steps[-1]["tokens"],
        "tokens_per_s": sum(r["tokens_per_s"] for r in steps[1:]) / max(1, len(steps) - 1),
    }


def main() -> None:
    """Run the chosen variants one after the other."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tokens", type=int, default=30_000)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    for name in args.variants:
        print(json.dumps(run_variant(name, args.train, args.dev, Path(args.out), args.tokens)), flush=True)


if __name__ == "__main__":
    main()

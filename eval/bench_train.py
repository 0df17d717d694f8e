"""Training throughput: naive fixed-size batches vs token-budget bucketed batches, real optimiser steps.

Both samplers draw from the same seeded mixture and train the same model with `neko train`'s loss (logits of
the target positions only, `neko.train.loss.target_lm_loss`); their steps alternate (naive, bucketed, plain,
naive, bucketed, plain, ...) after one untimed warm-up round, so all see the same machine load within a
round. ``plain`` is the naive batches again under the model's own ``labels=`` loss, which computes the logits
of every position, padding and prompt included (what a plain transformers training loop does). Reported are
the padding share and the non-padding tokens per second of each, the median over rounds of the per-round
ratio of non-padding tokens/s bucketed / naive (the batching alone: ``nonpad_tokens_per_s_ratio``) and
bucketed / plain (the batching and the loss: ``bucketed_plain_ratio``): on a shared, noisy machine the
median of paired ratios holds where two separate timed runs do not. A step's time is by default this
process's CPU time (``--clock cpu``, ``time.process_time``): with ``--threads 1`` it is what the step costs
on one core, while the wall time of a process niced under other jobs is mostly scheduler waiting;
``--clock wall`` uses the wall clock (tokens per wall second are printed either way). Until 2026-12-01 both
samplers ran the full-logits loss, which `neko train` does not; on the small model, whose 49,152-word output
layer is most of a step, that made padding cost more than it does in training (docs/TRAINING.md).

Fairness: a fixed batch size must fit the worst case, so the naive sampler gets the largest batch whose
padded cost at ``--max-len`` stays within the bucketed sampler's budget (the same peak memory bound):
``batch = max_tokens // cost(max_len)``. ``--naive-batch`` overrides it (e.g. the mean-length size).

Model: by default a small random Llama (hidden 256, 4 layers) with SmolLM2's real tokenizer (when the packaged
base is converted), upcycled to 4 experts with LoRA and NeKo routing, i.e. the real training step on a model
cheap enough for minutes of CPU; ``--base smollm2-135m`` runs the real 373M MoE (``make bench-train`` runs
both). ``--compare experts`` instead alternates the MoE's expert forward, peft's fused experts (as before
shared experts) against shared experts (`neko.model.shared_training`), both on the bucketed sampler's
batches. The shared experts are compiled, as `neko train` runs them (``compile_experts``; ``--no-compile``:
eager). Data: the prepared shared data if present, else records synthesised here.

    python eval/bench_train.py [--pairs 20] [--max-tokens 2048] [--max-len 256] [--base small|smollm2-135m]

Ends with ONE JSON line: {"padding_naive", "padding_bucketed", "nonpad_tokens_per_s_ratio", ...,
"bucketed_plain_ratio"}
(``--compare experts``: {"nonpad_tokens_per_s_fused", "nonpad_tokens_per_s_shared", "shared_fused_ratio", ...}).
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


def _model(base: str, scratch: Path, seed: int, compiled: bool = True, checkpointing: bool = False):
    from neko.model.config import LoraSettings, ModelConfig
    from neko.model.io import build_model
    from neko.model.shared_training import compile_trainable_experts

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
    model, tokenizer = build_model(cfg)
    if checkpointing:
        model.gradient_checkpointing_enable()
    if compiled:
        compile_trainable_experts(model)
    return (model, tokenizer), cfg


class Variant:
    """One side of the comparison: a sampler's batches trained on a model, timed step by step."""

    def __init__(
        self, name: str, sampler, model, tokenizer, cfg, max_len: int, full_logits: bool = False
    ) -> None:
        import torch

        self.name, self.model, self.tokenizer, self.cfg, self.max_len = name, model, tokenizer, cfg, max_len
        # The loss: ``neko train``'s (logits of the target positions only) or, with ``full_logits``, the
        # model's own ``labels=`` loss over every position's logits (what a plain transformers loop computes).
        self.full_logits = full_logits
        self.batches = iter(sampler)
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        # (non-padding tokens, padded tokens, wall seconds, CPU seconds of this process)
        self.steps: list[tuple[int, int, float, float]] = []

    def step(self) -> None:
        """Collate the next batch and run one timed training step (forward, backward, AdamW)."""
        from neko.model.routing import task_routing
        from neko.train.batching import collate
        from neko.train.loss import target_lm_loss

        self.model.train()
        started, cpu = time.perf_counter(), time.process_time()
        batch = collate(next(self.batches), self.tokenizer, self.max_len, self.cfg)
        with task_routing(self.model, batch.expert_ids, self.cfg.routing) as routing:
            if self.full_logits:
                loss = self.model(
                    input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels
                ).loss
            else:
                loss = target_lm_loss(self.model, batch.input_ids, batch.attention_mask, batch.labels)
            loss = loss + self.cfg.router_loss_weight * routing.router_loss(batch.attention_mask)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.steps.append(
            (batch.tokens, batch.padded, time.perf_counter() - started, time.process_time() - cpu)
        )

    def row(self, clock: str) -> dict:
        """Totals over the timed steps (the first step is the warm-up); tokens/s by ``clock``."""
        timed = self.steps[1:]
        tokens, padded, wall, cpu = (sum(s[i] for s in timed) for i in range(4))
        return {
            "variant": self.name,
            "steps": len(timed),
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "padding": round(1 - tokens / padded, 4),
            "nonpad_tokens_per_s": round(tokens / (cpu if clock == "cpu" else wall), 1),
            "nonpad_tokens_per_wall_s": round(tokens / wall, 1),
        }


def alternate(variants: list[Variant], pairs: int, clock: str) -> list[list[float]]:
    """One untimed warm-up round, then ``pairs`` timed rounds, each stepping every variant once in turn;
    returns, per timed round, each later variant's tokens/s over the first variant's."""
    rounds = []
    col = 3 if clock == "cpu" else 2
    for pair in range(pairs + 1):
        for v in variants:
            v.step()
        rates = [v.steps[-1][0] / v.steps[-1][col] for v in variants]
        shown = ", ".join(f"{v.name} {r:7.1f}" for v, r in zip(variants, rates, strict=True))
        print(f"pair {pair}: {shown} tokens/s ({clock})", flush=True)
        if pair:
            rounds.append([r / rates[0] for r in rates[1:]])
    return rounds


def main() -> None:
    """Parse flags, alternate the variants' steps, print the summary line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pairs",
        type=int,
        default=20,
        help="timed rounds (one step of each variant) after one warm-up round",
    )
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--quadratic-length", type=int, default=2048)
    parser.add_argument("--naive-batch", type=int, default=None)
    parser.add_argument("--base", default="small", help="'small' (default) or a base name/folder")
    parser.add_argument("--compare", choices=["sampler", "experts"], default="sampler")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    parser.add_argument(
        "--no-compile", dest="compile", action="store_false", help="shared experts eager (default: compiled)"
    )
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in backward, as the large recipes do (memory for budgets above ~2048 here)",
    )
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="time of a step: this process's CPU time (default; its cost, whatever else runs) or wall time",
    )
    parser.add_argument("--data", default=str(Path.home() / ".cache" / "neko" / "prepared"))
    args = parser.parse_args()

    import statistics

    import torch

    from neko.model.shared_training import unshare_trainable_experts
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
            f"data: {[Path(p).name for p in paths]}; base {args.base}; budget {args.max_tokens}; "
            f"naive batch size {naive_batch}; {args.pairs} timed pairs; {torch.get_num_threads()} threads"
        )
        torch.manual_seed(0)
        (model, tokenizer), cfg = _model(
            args.base,
            scratch / "model",
            seed=0,
            compiled=args.compile,
            checkpointing=args.gradient_checkpointing,
        )
        if args.compare == "sampler":
            naive = NaiveSampler(build_mixture(sources, tc.alpha, tc.seed), naive_batch)
            a = Variant("naive", naive, model, tokenizer, cfg, args.max_len)
            b = Variant("bucketed", build_sampler(tc, tokenizer), model, tokenizer, cfg, args.max_len)
            # The same naive batches (a second sampler, same seed) under the full-logits loss.
            plain = NaiveSampler(build_mixture(sources, tc.alpha, tc.seed), naive_batch)
            variants = [a, b, Variant("plain", plain, model, tokenizer, cfg, args.max_len, full_logits=True)]
        else:
            torch.manual_seed(0)
            (fused, _), _ = _model(args.base, scratch / "fused", seed=0, compiled=False)
            unshare_trainable_experts(fused)
            a = Variant("fused", build_sampler(tc, tokenizer), fused, tokenizer, cfg, args.max_len)
            b = Variant("shared", build_sampler(tc, tokenizer), model, tokenizer, cfg, args.max_len)
            variants = [a, b]
        rounds = alternate(variants, args.pairs, args.clock)
    rows = [v.row(args.clock) for v in variants]
    for row in rows:
        print(json.dumps(row))
    ratio = round(statistics.median(r[0] for r in rounds), 2)
    if args.compare == "experts":
        summary = {
            "nonpad_tokens_per_s_fused": rows[0]["nonpad_tokens_per_s"],
            "nonpad_tokens_per_s_shared": rows[1]["nonpad_tokens_per_s"],
            "shared_fused_ratio": ratio,
            "padding": rows[1]["padding"],
        }
    else:
        summary = {
            "padding_naive": rows[0]["padding"],
            "padding_bucketed": rows[1]["padding"],
            "nonpad_tokens_per_s_ratio": ratio,
            "nonpad_tokens_per_s_naive": rows[0]["nonpad_tokens_per_s"],
            "nonpad_tokens_per_s_bucketed": rows[1]["nonpad_tokens_per_s"],
            "naive_batch_size": naive_batch,
            # bucketed (neko train's step) against naive batches under the full-logits loss: both savings
            "nonpad_tokens_per_s_plain": rows[2]["nonpad_tokens_per_s"],
            "bucketed_plain_ratio": round(statistics.median(r[0] / r[1] for r in rounds), 2),
        }
    summary.update(
        max_tokens=args.max_tokens, base=args.base, pairs=args.pairs, threads=args.threads, clock=args.clock
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""``neko upcycle --base NAME_OR_PATH --experts N --top-k K --out DIR``: dense LM -> task-routed MoE."""

from __future__ import annotations

import argparse

HELP = "upcycle a dense pretrained LM into a Mixtral / Qwen2-MoE checkpoint whose experts copy its MLP"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--base, --experts, --top-k, --out."""
    parser.add_argument(
        "--base", required=True, help="a packaged base (see `neko tasks`), an HF folder or hub name"
    )
    parser.add_argument("--experts", type=int, default=4, help="number of experts (default 4: one per task)")
    parser.add_argument("--top-k", type=int, default=2, help="experts per token at inference (default 2)")
    parser.add_argument("--out", required=True, help="output folder (loads with AutoModelForCausalLM)")


def run(args: argparse.Namespace) -> int:
    """Upcycle and save."""
    from neko.model.upcycle import upcycle_to_dir

    out = upcycle_to_dir(args.base, num_experts=args.experts, top_k=args.top_k, out_dir=args.out)
    print(f"wrote {out}")
    return 0

"""``neko export CHECKPOINT --out DIR [--no-merge | --trained-only]``: write a checkpoint for others."""

from __future__ import annotations

import argparse

HELP = "export a trained checkpoint (LoRA merged unless --no-merge) as a plain transformers model folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CHECKPOINT, --out, --no-merge."""
    parser.add_argument("checkpoint", help="a checkpoint folder written by `neko train`")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--no-merge",
        dest="merge",
        action="store_false",
        help="keep LoRA separate: base model with trained routers in OUT, the peft adapter in OUT/adapter",
    )
    parser.add_argument(
        "--trained-only",
        action="store_true",
        help="write only the trained parts (LoRA + routers in float16, config, tokenizer): a few MB that "
        "rebuild the model from its packaged base (how neko/default_model/ is made)",
    )


def run(args: argparse.Namespace) -> int:
    """Export."""
    from neko.model.export import export_checkpoint, export_trained_parts

    if args.trained_only:
        out = export_trained_parts(args.checkpoint, args.out)
    else:
        out = export_checkpoint(args.checkpoint, args.out, merge=args.merge)
    print(f"wrote {out}")
    return 0

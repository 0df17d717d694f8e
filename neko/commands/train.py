"""``neko train CONFIG.yaml [--resume]``: train a corrector from a recipe."""

from __future__ import annotations

import argparse

from neko.commands import default
from neko.train import trainer

HELP = "train a corrector from a YAML recipe in configs/ (resumable with --resume)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG, --resume, --out, --max-steps, --max-minutes, --set key=value overrides."""
    parser.add_argument("config", help="a recipe YAML, e.g. configs/neko-tiny.yaml")
    parser.add_argument("--out", default=None, help="run folder (default: the recipe's output_dir)")
    parser.add_argument("--resume", action="store_true", help="continue exactly from the last checkpoint")
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipe's step count")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=default(trainer.train, "max_minutes"),
        help="stop this run after N minutes of wall time (it saves a checkpoint; continue later with --resume): "
        "a long CPU run as a series of resumed runs. The recipe's train.budget_minutes instead fits the whole "
        "run's step count and schedule to a time budget",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.lr=1e-4 (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Load the recipe, apply overrides, train."""
    from neko.train.config import load_config

    config = load_config(args.config, overrides=args.overrides)
    if args.out:
        config.output_dir = args.out
    if args.max_steps is not None:
        config.train.max_steps = args.max_steps
    trainer.train(config, resume=args.resume, max_minutes=args.max_minutes)
    return 0

"""``neko adapt TRAIN... --out DIR``: fit the corrector to your own recogniser's n-best lists in minutes."""

from __future__ import annotations

import argparse

from neko.commands import default
from neko.readers import FORMATS
from neko.tasks.base import PROMPT_STYLES
from neko.train.adapt import DEFAULT_PROMPT, adapt

HELP = "fit the corrector to your own data (records with references): train within a time budget, calibrate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """TRAIN..., --out, --dev, --format, --task, --model, --minutes, --max-steps, --resume, --seed, --threads."""
    parser.add_argument(
        "train", nargs="+", help="training files with references (JSONL records, HyPoradise JSON)"
    )
    parser.add_argument(
        "--out", required=True, help="output folder: the adapted model, adapt.json, data/, run/"
    )
    parser.add_argument(
        "--dev",
        nargs="+",
        default=default(adapt, "dev"),
        help="dev files (default: a seeded 10%% of TRAIN, at most 200 records)",
    )
    parser.add_argument("--format", default=default(adapt, "format"), choices=["auto", *FORMATS])
    parser.add_argument(
        "--task", default=default(adapt, "task"), help="task of records that do not name one (default asr)"
    )
    parser.add_argument(
        "--model",
        default=default(adapt, "model"),
        help="start point: a base model name or folder (fresh LoRA), or a corrector folder (continued); "
        "default: a fresh LoRA on the bundled model's base",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=default(adapt, "minutes"),
        help="training time budget (default 15 unless --max-steps is given)",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=default(adapt, "max_steps"),
        help="optimiser steps (with --minutes: at most)",
    )
    parser.add_argument(
        "--prompt",
        default=default(adapt, "prompt"),
        choices=PROMPT_STYLES,
        help=f"prompt style of a fresh LoRA (default {DEFAULT_PROMPT}; a continued corrector keeps its own)",
    )
    parser.add_argument("--resume", action="store_true", help="continue a killed adaptation in --out exactly")
    parser.add_argument("--seed", type=int, default=default(adapt, "seed"))
    parser.add_argument(
        "--threads",
        type=int,
        default=default(adapt, "threads"),
        help="torch CPU threads (default: all cores)",
    )


def run(args: argparse.Namespace) -> int:
    """Adapt, then print the dev figures of each task."""
    import sys

    report = adapt(
        args.train,
        args.out,
        dev=args.dev,
        format=args.format,
        task=args.task,
        model=args.model,
        minutes=args.minutes,
        max_steps=args.max_steps,
        resume=args.resume,
        seed=args.seed,
        threads=args.threads,
        prompt=args.prompt,
    )
    print(
        f"adapted {report.start} on {report.train_records} records in {report.steps} steps "
        f"({report.train_minutes:.1f} min); dev: {report.dev_records} records ({report.dev_source})",
        file=sys.stderr,
    )
    for task, fig in report.dev.items():
        print(
            f"{task} dev {fig['metric']}: input {fig['input']:.2f} -> generated {fig['generated']:.2f}, "
            f"adapted (gated) {fig['adapted']:.2f}, fallback {fig['fallback_rate']:.0%}",
            file=sys.stderr,
        )
    print(
        f"model written to {report.model_dir}: neko correct INPUT --model {report.model_dir}", file=sys.stderr
    )
    return 0

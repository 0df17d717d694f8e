"""``neko correct INPUT [-o OUTPUT]``: correct a file of recogniser outputs, one output record per input."""

from __future__ import annotations

import argparse

from neko.infer.config import MODES

HELP = "correct n-best lists / OCR lines / sentences from a file or stdin; writes JSONL {id, text, fallback}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """INPUT, -o, --format, --task, --model, --mode, --batch-size, --resume, --on-error."""
    parser.add_argument("input", nargs="?", default="-", help="input file, or - for stdin (default)")
    parser.add_argument("-o", "--output", default="-", help="output JSONL (default: stdout)")
    parser.add_argument("--format", default="auto", choices=["auto", "jsonl", "hyporadise", "text"])
    parser.add_argument("--task", default=None, help="task of inputs that do not name one (text format: asr)")
    parser.add_argument("--model", default=None, help="model folder or name (default: the bundled model)")
    parser.add_argument("--mode", default="auto", choices=MODES)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--resume", action="store_true", help="continue a killed run of the same command")
    parser.add_argument("--on-error", default="stop", choices=["stop", "skip"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")


def run(args: argparse.Namespace) -> int:
    """Correct the file."""
    from neko.infer.files import correct_file

    return correct_file(args)

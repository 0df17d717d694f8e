"""``neko eval --pred P.jsonl --data DATA.jsonl``: score corrected outputs against the references."""

from __future__ import annotations

import argparse

HELP = "score corrected outputs ({id, text} JSONL) against the references of a record file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--pred, --data, --normalizer, --json."""
    parser.add_argument("--pred", required=True, metavar="P.jsonl", help="outputs of `neko correct`")
    parser.add_argument("--data", required=True, metavar="DATA.jsonl", help="the records that were corrected")
    parser.add_argument(
        "--normalizer",
        default=None,
        help="text normaliser: none, hyporadise, whisper (default: each task's own, hyporadise for asr, none otherwise)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per dataset")


def run(args: argparse.Namespace) -> int:
    """Score and print one row per dataset."""
    from neko.baselines.report import format_rows
    from neko.evaluate import evaluate

    rows = evaluate(args.pred, args.data, normalizer=args.normalizer)
    print(format_rows(rows, as_json=args.json))
    return 0

"""``neko baselines DATA.jsonl``: non-neural baselines and oracles, one table per dataset."""

from __future__ import annotations

import argparse

HELP = "score the non-neural baselines (1-best, oracles, ROVER, MBR) of a record file, per dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """DATA, --normalizer, --json."""
    parser.add_argument("data", metavar="DATA.jsonl", help="records (from `neko prepare`)")
    parser.add_argument(
        "--normalizer",
        default="none",
        help="text normaliser applied to hypotheses and references first: none (default), hyporadise, whisper",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per dataset")


def run(args: argparse.Namespace) -> int:
    """Compute and print the baseline rows."""
    from neko.baselines.report import baseline_rows, format_rows

    rows = baseline_rows(args.data, normalizer=args.normalizer)
    print(format_rows(rows, as_json=args.json))
    return 0

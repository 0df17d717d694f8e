"""``neko experiment CONFIG --out RESULT.json``: run one table row; ``make tables`` calls it per config."""

from __future__ import annotations

import argparse

HELP = "run one benchmark row (configs/experiments/<table>/<row>.yaml) into a result JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG, --prepared, --out, --limit, --seed."""
    parser.add_argument("config", help="an experiment YAML")
    parser.add_argument(
        "--prepared", default=None, help="prepared records folder (default ~/.cache/neko/prepared)"
    )
    parser.add_argument("--out", required=True, help="result JSON to write")
    parser.add_argument(
        "--limit", type=int, default=None, help="score a fixed seeded subset of N items per dataset"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset")


def run(args: argparse.Namespace) -> int:
    """Run the experiment and write its result."""
    from neko.experiments.run import run_experiment, write_result
    from neko.paths import cache_dir

    prepared = args.prepared or cache_dir("prepared")
    result = run_experiment(args.config, prepared, limit=args.limit or None, seed=args.seed)
    print(f"wrote {write_result(result, args.out)}")
    return 0

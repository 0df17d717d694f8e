"""``neko tables``: render every result file into docs/RESULTS.md and one plot per table."""

from __future__ import annotations

import argparse

HELP = "render results/<table>/<row>.json into docs/RESULTS.md (+ docs/plots/*.png)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--results, --out, --command."""
    parser.add_argument("--results", default="results", help="results folder (default results/)")
    parser.add_argument("--out", default="docs/RESULTS.md", help="Markdown file to write")
    parser.add_argument("--command", default="make tables", help="the command quoted at the top of the file")


def run(args: argparse.Namespace) -> int:
    """Render."""
    from neko.experiments.tables import render_results

    print(f"wrote {render_results(args.results, args.out, args.command)}")
    return 0

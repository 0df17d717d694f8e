"""The ``neko`` command: one subcommand per user job, each a thin wrapper over a library function.

Command modules import nothing heavy at module level, so ``neko --help`` is instant; torch and transformers
are imported inside the command that needs them.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from neko.commands import (
    adapt,
    baselines,
    calibrate,
    correct,
    evaluate,
    experiment,
    export,
    prepare,
    tables,
    tasks,
    train,
    upcycle,
)
from neko.errors import InputWarning, NekoError

COMMANDS = {
    "prepare": prepare,
    "baselines": baselines,
    "eval": evaluate,
    "upcycle": upcycle,
    "export": export,
    "train": train,
    "adapt": adapt,
    "correct": correct,
    "calibrate": calibrate,
    "experiment": experiment,
    "tables": tables,
    "tasks": tasks,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="neko", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        command = sub.add_parser(
            name,
            help=module.HELP,
            # A command may explain itself at more length (modes, formats); its layout is kept as written.
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def _one_line_warnings(command: str, show):
    """A ``warnings.showwarning`` that prints neko's InputWarning as one line and leaves the others to ``show``."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, InputWarning):
            print(f"neko {command}: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; bad input ends with one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", InputWarning)
            warnings.showwarning = _one_line_warnings(args.command, warnings.showwarning)
            return int(args.run(args) or 0)
    except NekoError as exc:
        print(f"neko {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"neko {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

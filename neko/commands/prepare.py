"""``neko prepare NAME ...``: convert a dataset (or generate one) into records."""

from __future__ import annotations

import argparse
from types import ModuleType

HELP = "convert a dataset in ../shared/data, or generate one, into records (JSONL)"


GROUP = "neko.preparers"


def preparers() -> dict[str, ModuleType]:
    """The dataset preparers by name, from the ``neko.preparers`` entry points (pyproject.toml): each entry
    is a dict name -> module with ``HELP``, ``add_arguments(parser)`` and ``run(args)``.

    The preparers live outside the library (their engines are an optional extra), so the library finds them
    through the installed package's metadata rather than importing them by name.
    """
    from importlib.metadata import entry_points

    found: dict[str, ModuleType] = {}
    for entry in entry_points(group=GROUP):
        found.update(entry.load())
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One sub-subcommand per preparer (``preparers()``)."""
    sub = parser.add_subparsers(dest="preparer", metavar="NAME", required=True)
    for name, module in preparers().items():
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(prepare_run=module.run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen preparer; an ``--out`` that is the ``--src`` itself is refused before anything runs."""
    from neko.errors import NekoError
    from neko.fileio import same_file

    src, out = getattr(args, "src", None), getattr(args, "out", None)
    if src and out and same_file(src, out):
        raise NekoError(
            f"--out {out} is also the --src: writing it would destroy the input; name another --out"
        )
    return args.prepare_run(args)

"""``neko tasks``: list the registries (tasks, preparers, normalisers, base models)."""

from __future__ import annotations

import argparse

HELP = "list the tasks, dataset preparers, normalisers and base models that neko knows"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No arguments."""


def run(args: argparse.Namespace) -> int:
    """Print each registry."""
    from neko.commands.prepare import preparers
    from neko.metrics.normalizers import NORMALIZERS
    from neko.model.base import BASE_MODELS
    from neko.tasks import TASKS

    print("tasks:       " + ", ".join(TASKS))
    print("preparers:   " + ", ".join(preparers()))
    print("normalizers: " + ", ".join(NORMALIZERS))
    print("base models: " + ", ".join(BASE_MODELS))
    return 0

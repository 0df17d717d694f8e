"""One module per ``neko`` subcommand: ``HELP``, ``add_arguments(parser)`` and ``run(args) -> exit code``."""

from __future__ import annotations

import inspect
from typing import Any


def default(target: Any, name: str) -> Any:
    """The default of parameter ``name`` of the library function (or options dataclass) ``target``.

    A command's parser takes its defaults from here, so that a default is declared once, in the library.
    """
    return inspect.signature(target).parameters[name].default

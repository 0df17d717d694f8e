"""Dataset converters and generators, each a ``neko prepare NAME`` subcommand.

Every module here has ``HELP``, ``add_arguments(parser)``, ``run(args)`` and a typed, pure, idempotent
``prepare_*`` function that tests and users import. Module level imports stay light.
"""

from __future__ import annotations

PREPARERS: dict = {}

"""Dataset converters and generators, each a ``neko prepare NAME`` subcommand.

Every module here has ``HELP``, ``add_arguments(parser)``, ``run(args)`` and a typed, pure, idempotent
``prepare_*`` function that tests and users import. Module level imports stay light.
"""

from __future__ import annotations

from data_prep import fce, hyporadise, icdar2017, jfleg, overproof, prepare_all, wmt

PREPARERS: dict = {
    "hyporadise": hyporadise,
    "wmt": wmt,
    "overproof": overproof,
    "icdar2017": icdar2017,
    "fce": fce,
    "jfleg": jfleg,
    "all": prepare_all,
}

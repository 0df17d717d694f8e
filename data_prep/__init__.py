"""Dataset converters and generators, each a ``neko prepare NAME`` subcommand.

Every module here has ``HELP``, ``add_arguments(parser)``, ``run(args)`` and a typed, pure, idempotent
``prepare_*`` function that tests and users import. Module level imports stay light.
"""

from __future__ import annotations

from data_prep import (
    asr_nbest,
    corpus,
    fce,
    hyporadise,
    icdar2017,
    jfleg,
    mixture,
    ocr_lines,
    overproof,
    prepare_all,
    wmt,
)

PREPARERS: dict = {
    "hyporadise": hyporadise,
    "wmt": wmt,
    "overproof": overproof,
    "icdar2017": icdar2017,
    "fce": fce,
    "jfleg": jfleg,
    "all": prepare_all,
    "asr-nbest": asr_nbest,
    "ocr-lines": ocr_lines,
    "manifest": mixture,
    "corpus": corpus,
}

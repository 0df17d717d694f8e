"""Each command is a thin wrapper: its parser's defaults are the library function's (declared once there)."""

from __future__ import annotations

import inspect
from dataclasses import asdict

from neko.cli import build_parser


def _defaults(argv: list[str]) -> dict:
    return vars(build_parser().parse_args(argv))


def test_correct_defaults_are_the_options_defaults() -> None:
    from neko.infer.files import CorrectOptions

    parsed = _defaults(["correct"])
    assert {key: parsed[key] for key in asdict(CorrectOptions())} == asdict(CorrectOptions())


def test_calibrate_and_adapt_defaults_are_the_functions_defaults() -> None:
    from neko.infer.calibrate import calibrate
    from neko.train.adapt import adapt

    for argv, function, skip in (
        (
            ["calibrate", "dev.jsonl"],
            calibrate,
            {"dev", "extras", "write", "report", "exclude"},
        ),  # KEY=GLOB strings
        (["adapt", "train.jsonl", "--out", "o"], adapt, {"train", "out", "resume"}),
    ):
        parsed = _defaults(argv)
        for name, parameter in inspect.signature(function).parameters.items():
            if name not in skip:
                assert parsed[name] == parameter.default, (argv[0], name)

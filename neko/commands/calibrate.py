"""``neko calibrate DEV.jsonl ...``: fit a model's ``auto`` guard on dev records, one task at a time."""

from __future__ import annotations

import argparse

from neko.commands import default
from neko.infer.calibrate import TaskCalibration, calibrate

HELP = (
    "calibrate auto mode on dev records (guard thresholds and evidence-fusion weights, the better kept); "
    "--write saves it"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """DEV..., --model, --limit, --seed, --batch-size, --threads, --write, --confidence, --exclude, --json,
    --no-extras."""
    parser.add_argument("dev", nargs="+", help="dev record files (JSONL with references; globs allowed)")
    parser.add_argument(
        "--model", default=default(calibrate, "model"), help="model folder (default: the bundled model)"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=default(calibrate, "limit"),
        help="seeded pick of at most N records per file",
    )
    parser.add_argument("--seed", type=int, default=default(calibrate, "seed"))
    parser.add_argument("--batch-size", type=int, default=default(calibrate, "batch_size"))
    parser.add_argument(
        "--threads",
        type=int,
        default=default(calibrate, "threads"),
        help="torch CPU threads (default: all cores)",
    )
    parser.add_argument(
        "--write", action="store_true", help="save the thresholds in the model's neko_config.json"
    )
    parser.add_argument(
        "--confidence",
        type=float,
        default=default(calibrate, "confidence"),
        help="share of bootstrap samples of the dev records of every dev source (record dataset) on which "
        "the guard or fusion must beat the first hypothesis, or it is not used (e.g. 0.95 for a small dev "
        "set; 0 = no check)",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="KEY=GLOB",
        help="leave out dev records whose meta KEY matches GLOB, e.g. voice='espeak:*' (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per task")
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="fit fusion on the hypotheses and the generated text only (no confusion-network or "
        "spelling-lattice paths)",
    )


def _printer(as_json: bool):
    """Print one task's result: a JSON object, or two lines of figures."""
    import json

    def show(result: TaskCalibration) -> None:
        summary = result.summary()
        if as_json:
            print(json.dumps(summary))
            return
        print(
            f"{result.task}: n={result.n} {result.metric} first hypothesis {result.first:.4f}, generated "
            f"{result.generated:.4f}, guarded {result.guarded:.4f} (fallback {result.fallback_rate:.0%}, "
            f"harmful edits {result.harmful_edit_rate:.0%}); guard {summary['guard']}"
        )
        if result.fused is not None:
            print(
                f"{result.task}: fused {result.fused:.4f} (first hypothesis picked "
                f"{result.fusion_fallback_rate:.0%}, harmful edits {result.fusion_harmful_edit_rate:.0%}); "
                f"weights {summary['fusion']}; auto will use the {result.decision}{_where(result)} "
                f"({'fused' if result.uses_fusion else 'guarded'} is the better dev figure, ties to the guard)"
            )
        if result.unseen_domains:
            held = ", ".join(
                f"{domain} {c['first']:.4f} -> {c['held_out']:.4f}"
                for domain, c in result.unseen_domains.items()
            )
            served = result.fusion is not None and result.fusion.serves_unseen
            print(
                f"{result.task}: weights for unseen domains, each dev domain held out (first -> fused): {held}; "
                + ("they serve every other domain" if served else "refused: the guard decides unseen domains")
            )
        if result.fused_unscored is not None:
            print(
                f"{result.task}: fused without recogniser scores {result.fused_unscored:.4f} (the weights for "
                "records that carry none, fitted on the same records with their scores removed)"
            )
        if result.fused_single is not None:
            kept = (
                result.fusion is not None
                and result.fusion.single is not None
                and result.fusion.single.generate
            )
            print(
                f"{result.task}: fused with one hypothesis {result.fused_single:.4f} (the weights for records with "
                "a single hypothesis, fitted on the same records cut to their first one"
                + ("" if kept else "; refused: such records keep their hypothesis")
                + ")"
            )

    return show


def _where(result: TaskCalibration) -> str:
    """`` for the records of ...`` when fusion decides only the dev domains that vouched for it."""
    if not (result.uses_fusion and result.fusion.domains):
        return ""
    return f" for the records of {', '.join(result.fusion.domains)} (the guard for every other record)"


def parse_exclude(items: list[str]) -> dict[str, str]:
    """``["voice=espeak:*"]`` -> ``{"voice": "espeak:*"}``; an item without ``=`` is a ConfigError."""
    from neko.errors import ConfigError

    pairs = {}
    for item in items:
        key, sep, pattern = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--exclude {item!r} is not KEY=GLOB")
        pairs[key] = pattern
    return pairs


def run(args: argparse.Namespace) -> int:
    """Calibrate (``neko.infer.calibrate.calibrate``), print each task's result, say what was written."""
    import sys

    outcome = calibrate(
        args.dev,
        model=args.model,
        limit=args.limit,
        seed=args.seed,
        batch_size=args.batch_size,
        threads=args.threads,
        extras=not args.no_extras,
        write=args.write,
        report=_printer(args.json),
        confidence=args.confidence,
        exclude=parse_exclude(args.exclude),
    )
    if outcome.written is not None:
        print(
            f"guard thresholds (and fusion weights where fusion won) written to {outcome.written}",
            file=sys.stderr,
        )
    return 0

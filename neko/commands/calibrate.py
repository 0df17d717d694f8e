"""``neko calibrate DEV.jsonl ...``: fit a model's ``auto`` guard on dev records, one task at a time."""

from __future__ import annotations

import argparse

HELP = (
    "calibrate auto mode on dev records (guard thresholds and evidence-fusion weights, the better kept); "
    "--write saves it"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """DEV..., --model, --limit, --seed, --batch-size, --threads, --write, --json, --no-extras."""
    parser.add_argument("dev", nargs="+", help="dev record files (JSONL with references; globs allowed)")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--limit", type=int, default=None, help="seeded pick of at most N records per file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument(
        "--write", action="store_true", help="save the thresholds in the model's neko_config.json"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per task")
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="fit fusion on the hypotheses and the generated text only (no confusion-network paths)",
    )


def run(args: argparse.Namespace) -> int:
    """Read the dev files, generate, calibrate each task, print (and with --write save) the result."""
    import json
    import sys

    from tqdm import tqdm

    from neko.errors import NekoError
    from neko.infer.calibrate import (
        TASK_TARGETS,
        calibrate_task,
        guard_dict,
        sample_records,
        write_task_guards,
    )
    from neko.infer.corrector import Corrector, default_model_dir
    from neko.infer.fusion import EXTRA_SOURCES
    from neko.records import read_records
    from neko.train.mixture import expand_paths

    files = [path for pattern in args.dev for path in expand_paths(pattern)]
    by_task: dict[str, list] = {}
    sources: dict[str, list[str]] = {}
    for path in files:
        records = [r for r in read_records(path) if r.references]
        if not records:
            raise NekoError(f"{path}: no record with a reference to calibrate on")
        for record in sample_records(records, args.limit, args.seed):
            by_task.setdefault(record.task, []).append(record)
            if str(path) not in sources.setdefault(record.task, []):
                sources[record.task].append(str(path))
    unknown = sorted(set(by_task) - set(TASK_TARGETS))
    if unknown:
        raise NekoError(f"no calibration metric for task(s) {', '.join(unknown)}")
    model_dir = args.model or default_model_dir()
    corrector = Corrector.from_pretrained(model_dir, threads=args.threads)
    results = []
    for task, records in by_task.items():
        with tqdm(total=len(records), desc=f"calibrate {task}", file=sys.stderr) as bar:
            result = calibrate_task(
                corrector,
                task,
                records,
                args.batch_size,
                progress=bar.update,
                sources=() if args.no_extras else tuple(EXTRA_SOURCES),
            )
        results.append(result)
        summary = {
            "task": task,
            "n": result.n,
            "metric": result.metric,
            "first": result.first,
            "generated": result.generated,
            "guarded": result.guarded,
            "fallback_rate": result.fallback_rate,
            "harmful_edit_rate": result.harmful_edit_rate,
            "guard": guard_dict(result.guard),
            "fused": result.fused,
            "fusion_fallback_rate": result.fusion_fallback_rate,
            "fusion_harmful_edit_rate": result.fusion_harmful_edit_rate,
            "fusion": result.fusion.to_dict() if result.fusion is not None else None,
            "decision": result.decision,
        }
        if args.json:
            print(json.dumps(summary))
        else:
            print(
                f"{task}: n={result.n} {result.metric} first hypothesis {result.first:.4f}, generated "
                f"{result.generated:.4f}, guarded {result.guarded:.4f} (fallback {result.fallback_rate:.0%}, "
                f"harmful edits {result.harmful_edit_rate:.0%}); guard {summary['guard']}"
            )
            if result.fused is not None:
                print(
                    f"{task}: fused {result.fused:.4f} (first hypothesis picked "
                    f"{result.fusion_fallback_rate:.0%}, harmful edits {result.fusion_harmful_edit_rate:.0%}); "
                    f"weights {summary['fusion']}; auto will use the {result.decision} "
                    f"({'fused' if result.uses_fusion else 'guarded'} is the better dev figure, ties to the guard)"
                )
    if args.write:
        file = write_task_guards(model_dir, results, sources)
        print(f"guard thresholds (and fusion weights where fusion won) written to {file}", file=sys.stderr)
    return 0

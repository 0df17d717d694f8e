"""``neko prepare manifest``: one row per dataset file (task, split, count, 1-best and oracle scores), as JSON.

    neko prepare manifest --dirs ~/.cache/neko/prepared ~/.cache/neko/generated --out manifest.json

Scores are corpus level (``neko.metrics``): WER for ASR and GEC, CER (and WER) for OCR, BLEU for MT. The
1-best is the first hypothesis; the oracle is the hypothesis closest to the first reference (fewest word edits,
fewest character edits for OCR, highest sentence BLEU for MT). Records without references are counted but not
scored. Partial files of a generation in progress (``*.partial.jsonl``) are left out.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from neko.records import read_records

HELP = "summarise dataset files (task, split, count, 1-best and oracle error rates) into a manifest JSON"
SPLITS = ("train", "dev", "test")
_SPLIT_IN_NAME = re.compile(r"[._-](train|dev|test)$")


@dataclass
class ManifestRow:
    """One dataset file: where it is, what it holds, and how good its 1-best and oracle hypotheses are."""

    path: str
    dataset: str
    task: str
    split: str
    count: int
    scored: int
    metric: str
    one_best: float | None
    oracle: float | None
    avg_hypotheses: float


def dataset_files(dirs: list[Path]) -> list[Path]:
    """Every ``*.jsonl`` under ``dirs`` (recursively), sorted, without partial generation files."""
    files: list[Path] = []
    for folder in dirs:
        files += [p for p in Path(folder).rglob("*.jsonl") if not p.name.endswith(".partial.jsonl")]
    return sorted(set(files))


def split_of_file(path: Path, meta_split: str | None) -> str:
    """The split named by the records (``meta.split``) or by the file name (``x.train.jsonl``, ``x_dev``)."""
    if meta_split in SPLITS:
        return meta_split
    match = _SPLIT_IN_NAME.search(path.stem)
    return match.group(1) if match else "-"


def _oracle_index(task: str, hyps: list[str], ref: str) -> int:
    from rapidfuzz.distance import Levenshtein

    if task == "mt":
        from sacrebleu import sentence_bleu

        scores = [sentence_bleu(h, [ref]).score for h in hyps]
        return scores.index(max(scores))
    if task == "ocr":
        errors = [Levenshtein.distance(ref, h) for h in hyps]
    else:
        errors = [Levenshtein.distance(ref.split(), h.split()) for h in hyps]
    return errors.index(min(errors))


def summarize_file(path: Path) -> ManifestRow:
    """Read one dataset file and score its 1-best and oracle at corpus level."""
    from neko.metrics.bleu import corpus_bleu
    from neko.metrics.wer import corpus_cer, corpus_wer

    records = list(read_records(path))
    scored = [r for r in records if r.references]
    task = records[0].task if records else "-"
    dataset = records[0].dataset if records else path.stem
    split = split_of_file(path, records[0].meta.get("split") if records else None)
    metric, one_best, oracle = (
        {"asr": "wer", "gec": "wer", "ocr": "cer", "mt": "bleu"}.get(task, "-"),
        None,
        None,
    )
    if scored:
        first = [r.hypotheses[0] for r in scored]
        best = [r.hypotheses[_oracle_index(task, r.hypotheses, r.references[0])] for r in scored]
        if metric == "bleu":
            refs = [r.references for r in scored]
            one_best, oracle = corpus_bleu(first, refs).score, corpus_bleu(best, refs).score
        else:
            score = corpus_cer if metric == "cer" else corpus_wer
            refs0 = [r.references[0] for r in scored]
            one_best, oracle = 100 * score(refs0, first).rate, 100 * score(refs0, best).rate
    avg = sum(len(r.hypotheses) for r in records) / len(records) if records else 0.0
    return ManifestRow(
        str(path),
        dataset,
        task,
        split,
        len(records),
        len(scored),
        metric,
        None if one_best is None else round(one_best, 2),
        None if oracle is None else round(oracle, 2),
        round(avg, 2),
    )


def build_manifest(dirs: list[Path]) -> list[ManifestRow]:
    """Rows for every dataset file under ``dirs``, in path order."""
    return [summarize_file(p) for p in dataset_files(dirs)]


def check_generated(path: Path, blocklist: set[str]) -> list[str]:
    """Problems in a generated file: schema (``read_records``), repeated hypotheses, ASR references that equal a
    HyPoradise test reference (after normalisation). Empty when the file is sound."""
    from data_prep.normalize import normalize_text

    problems = []
    for i, record in enumerate(read_records(path), start=1):
        where = f"{path}:{i}"
        if len(set(record.hypotheses)) != len(record.hypotheses):
            problems.append(f"{where}: repeated hypotheses")
        if not record.references:
            problems.append(f"{where}: no reference")
        elif normalize_text(record.references[0]) in blocklist:
            problems.append(f"{where}: reference equals a HyPoradise test reference")
    return problems


def format_table(rows: list[ManifestRow]) -> str:
    """A plain-text table: dataset, task, split, count, metric, 1-best, oracle, mean n-best size."""
    lines = [
        f"{'dataset':34} {'task':4} {'split':5} {'count':>7} {'metric':6} {'1-best':>7} {'oracle':>7} {'n':>5}"
    ]
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(
            f"{r.dataset:34} {r.task:4} {r.split:5} {r.count:7d} {r.metric:6} {fmt(r.one_best):>7} "
            f"{fmt(r.oracle):>7} {r.avg_hypotheses:5.2f}"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: --dirs (folders to scan), --out (manifest JSON)."""
    parser.add_argument(
        "--dirs",
        nargs="+",
        type=Path,
        default=None,
        help="folders to scan (default: ~/.cache/neko/prepared and ~/.cache/neko/generated)",
    )
    parser.add_argument("--out", type=Path, default=Path("manifest.json"), help="manifest JSON to write")
    parser.add_argument(
        "--check",
        action="store_true",
        help="also check every file as generated data (schema, distinct hypotheses, no "
        "HyPoradise test reference); problems exit with status 2",
    )
    parser.add_argument("--data", default=None, help="shared data folder, for --check's HyPoradise blocklist")


def run(args: argparse.Namespace) -> int:
    """Build, print and save the manifest."""
    from neko.paths import cache_dir

    dirs = args.dirs or [cache_dir("prepared"), cache_dir("generated")]
    rows = build_manifest(dirs)
    print(format_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "dirs": [str(d) for d in dirs],
        "metrics": "corpus level, neko.metrics (jiwer / sacrebleu); "
        "oracle = hypothesis closest to the first reference",
        "datasets": [asdict(r) for r in rows],
    }
    args.out.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(f"{len(rows)} dataset files -> {args.out}")
    if args.check:
        from data_prep.text_sources import hyporadise_blocklist
        from neko.errors import NekoError
        from neko.paths import data_dir

        blocklist = hyporadise_blocklist(data_dir(args.data) / "hyporadise")
        problems = [p for f in dataset_files(dirs) for p in check_generated(f, blocklist)]
        for problem in problems[:20]:
            print(problem)
        if problems:
            raise NekoError(f"{len(problems)} problem(s) in generated data (first ones above)")
        print(f"check: {len(rows)} files sound (schema, distinct hypotheses, no HyPoradise test reference)")
    return 0

"""``neko prepare asr-nbest``: ASR n-best training records from synthesised, degraded speech and real recognisers.

    neko prepare asr-nbest --condition noisy --recognizer whisper-tiny --n 750 --split train --workers 2

One utterance = one sentence of the text pool spoken under a condition (``data_prep.speech.CONDITIONS``); its
audio depends only on (condition, split, index), so several recognisers hear the same waveform. Results are
appended to ``<out>/parts/<dataset>.<split>.partial.jsonl`` as they arrive (a killed run resumes where it
stopped), then the requested ids are written sorted to ``<out>/<dataset>.<split>.jsonl`` (records) and
``<out>/hyporadise/<dataset>.<split>.json`` (HyPoradise schema: ``input`` 5-best, ``output`` reference).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from data_prep.normalize import distinct_hypotheses
from data_prep.resumable import append_results, finalize_records, read_partial
from neko.records import Record

HELP = "generate ASR n-best records: TTS -> degradation -> Whisper / pocketsphinx beam search"
TOP_K = 5


@dataclass(frozen=True)
class Utterance:
    """One sentence to speak under one condition; ``id`` is ``<condition>-<split>-<index>``."""

    id: str
    text: str
    written: str
    source: str
    condition: str
    split: str


def plan_utterances(pool: list, condition: str, split: str, n: int) -> list[Utterance]:
    """The first ``n`` utterances of (condition, split); a prefix of the plan for any larger ``n``."""
    from data_prep.text_sources import sentences_for

    return [
        Utterance(f"{condition}-{split}-{i:06d}", s.normalized, s.text, s.source, condition, split)
        for i, s in enumerate(sentences_for(pool, split, condition, n))
    ]


def utterance_seed(utt_id: str) -> int:
    """A 64-bit seed from the utterance id alone: the same id always gives the same audio."""
    return int(hashlib.sha256(utt_id.encode("utf-8")).hexdigest()[:16], 16)


def dataset_name(recognizer: str, condition: str) -> str:
    """``asr_<recogniser>_<condition>`` with underscores (``asr_whisper_tiny_noisy``)."""
    return f"asr_{recognizer}_{condition}".replace("-", "_")


def make_record(
    utt: Utterance, recognizer: str, texts: list[str], scores: list[float], meta: dict
) -> Record | None:
    """The record of one recognition: normalised, de-duplicated top-5; None when nothing was recognised."""
    hyps, kept_scores = distinct_hypotheses(texts, scores, keep=TOP_K)
    if not hyps:
        return None
    return Record(
        id=utt.id,
        task="asr",
        dataset=dataset_name(recognizer, utt.condition),
        hypotheses=hyps,
        scores=kept_scores,
        references=[utt.text],
        meta={
            **meta,
            "recognizer": recognizer,
            "text_source": utt.source,
            "written": utt.written,
            "n_raw": len(texts),
            "split": utt.split,
        },
    )


def recognize(job: tuple[Utterance, tuple[str, ...]]) -> list[dict]:
    """Speak one utterance and decode it with each recogniser; one result line per recogniser (worker side)."""
    import numpy as np

    from data_prep.recognizers import RECOGNIZERS
    from data_prep.speech import CONDITIONS, render

    utt, recognizers = job
    audio, meta = render(utt.text, CONDITIONS[utt.condition], np.random.default_rng(utterance_seed(utt.id)))
    meta["seconds"] = round(len(audio) / 16000, 2)
    lines = []
    for name in recognizers:
        texts, scores = RECOGNIZERS[name].decode(audio)
        record = make_record(utt, name, texts, scores, meta)
        if record is None:
            lines.append({"id": utt.id, "skipped": "no hypothesis", "recognizer": name})
        else:
            lines.append(asdict(record))
    return lines


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def prepare_asr(
    pool: list,
    condition: str,
    recognizers: list[str],
    out: Path,
    *,
    split: str = "train",
    n: int = 100,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, dict]:
    """Generate (or finish) ``n`` utterances of ``condition`` for each recogniser; returns per-dataset counts."""
    from data_prep.recognizers import RECOGNIZERS
    from data_prep.speech import CONDITIONS
    from neko.errors import unknown_choice

    if condition not in CONDITIONS:
        raise unknown_choice("condition", condition, CONDITIONS)
    for name in recognizers:
        if name not in RECOGNIZERS:
            raise unknown_choice("recognizer", name, RECOGNIZERS)
    plan = plan_utterances(pool, condition, split, n)
    parts = {r: out / "parts" / f"{dataset_name(r, condition)}.{split}.partial.jsonl" for r in recognizers}
    done = {r: read_partial(p) for r, p in parts.items()}
    todo = [u for u in plan if any(u.id not in done[r] for r in recognizers)]
    jobs = [(u, tuple(r for r in recognizers if u.id not in done[r])) for u in todo]
    results = _run(jobs, workers, progress, f"{condition}/{split}")
    for name, line in append_results(parts, results, key=_recognizer_of):
        done[name][line["id"]] = line
    return {
        dataset_name(r, condition): finalize(plan, done[r], out, dataset_name(r, condition), split)
        for r in recognizers
    }


def _recognizer_of(line: dict) -> str:
    return line.get("recognizer") or line["meta"]["recognizer"]


def _run(jobs: list, workers: int, progress: bool, label: str):
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=label, disable=not progress, mininterval=10, smoothing=0.05)
    if workers <= 1:
        _init_worker()
        for job in jobs:
            yield recognize(job)
            bar.update()
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for lines in pool.imap(recognize, jobs, chunksize=1):
                yield lines
                bar.update()
    bar.close()


def finalize(plan: list[Utterance], done: dict[str, dict], out: Path, dataset: str, split: str) -> dict:
    """Write the planned, finished utterances in plan order as records and in the HyPoradise schema."""
    records, skipped = finalize_records([u.id for u in plan], done, out / f"{dataset}.{split}.jsonl")
    hypo = out / "hyporadise" / f"{dataset}.{split}.json"
    hypo.parent.mkdir(parents=True, exist_ok=True)
    items = [
        {"id": r.id, "input": r.hypotheses, "output": r.references[0], "score": r.scores} for r in records
    ]
    hypo.write_text(json.dumps(items, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    return {"records": len(records), "skipped": skipped, "planned": len(plan)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: --n, --condition, --recognizer (comma list), --split, --out, --workers, --data, --seed."""
    parser.add_argument("--n", type=int, default=100, help="utterances to have in this condition and split")
    parser.add_argument("--condition", default="clean", help="clean, noisy, reverb or telephone")
    parser.add_argument(
        "--recognizer",
        default="whisper-tiny",
        help="comma list of whisper-tiny, whisper-base, pocketsphinx (decode the same audio)",
    )
    parser.add_argument("--split", default="train", choices=["train", "dev"])
    parser.add_argument("--out", type=Path, default=None, help="default: ~/.cache/neko/generated")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--data", default=None, help="shared data folder (default $NEKO_DATA or ../shared/data)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sentence pool shuffle")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Build the text pool, generate, print one summary line per dataset."""
    from data_prep.text_sources import default_pool
    from neko.paths import cache_dir, data_dir

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = args.out or cache_dir("generated")
    pool, stats = default_pool(data_dir(args.data), seed=args.seed)
    print(f"text pool: {len(pool)} sentences, {stats.blocked} HyPoradise test references blocked")
    recognizers = [r.strip() for r in args.recognizer.split(",") if r.strip()]
    summary = prepare_asr(
        pool,
        args.condition,
        recognizers,
        Path(out),
        split=args.split,
        n=args.n,
        workers=args.workers,
        progress=not args.quiet,
    )
    for name, info in summary.items():
        print(
            f"{name}.{args.split}: {info['records']} records of {info['planned']} planned, "
            f"{len(info['skipped'])} skipped (no hypothesis) -> {out}"
        )
    return 0

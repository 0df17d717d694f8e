"""Corpus-level metrics of the four tasks, from the standard libraries (jiwer, sacrebleu) plus JFLEG's GLEU.

``score_corpus`` is the one entry point used by ``neko baselines``, ``neko eval`` and the trainer's dev
evaluation. Scales: WER and CER are fractions (0.083, not 8.3); BLEU, chrF and GLEU are on the 0-100 scale
of sacrebleu and of the JFLEG leaderboard. Every result names its normaliser and a signature string.
The same metrics load as local Hugging Face ``evaluate`` modules: ``evaluate.load(evaluate_path("wer"))``
(``hf_evaluate.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

from neko.metrics.bleu import corpus_bleu, corpus_chrf
from neko.metrics.gleu import ITERATIONS, corpus_gleu
from neko.metrics.hf_evaluate import evaluate_path
from neko.metrics.normalizers import NORMALIZERS, get_normalizer
from neko.metrics.wer import ErrorRate, corpus_cer, corpus_wer
from neko.records import Record
from neko.tasks import TASKS

# Views of the task registry (each task declares its metrics, headline first, and its default normaliser).
TASK_METRICS: dict[str, list[str]] = {name: list(task.metrics) for name, task in TASKS.items()}
DEFAULT_NORMALIZERS: dict[str, str] = {name: task.normalizer for name, task in TASKS.items()}
# The error rates: lower is better, stored as fractions (shown as percentages); every other metric is a
# 0-100 score where higher is better.
ERROR_RATES = frozenset({"wer", "cer"})

_JIWER_VERSION = version("jiwer")


def _error_rate_fields(name: str, result: ErrorRate) -> dict[str, Any]:
    return {
        name: result.rate,
        f"{name}_counts": {
            "substitutions": result.substitutions,
            "deletions": result.deletions,
            "insertions": result.insertions,
            "reference": result.reference_units,
        },
    }


def _references_and_sources(
    items: Sequence[Record] | Sequence[Sequence[str]] | Sequence[str], sources: Sequence[str] | None
) -> tuple[list[list[str]], list[str] | None]:
    references: list[list[str]] = []
    found_sources: list[str] = []
    for index, item in enumerate(items):
        if isinstance(item, Record):
            if not item.references:
                raise ValueError(f"record {item.id!r} has no reference")
            references.append(list(item.references))
            # GEC records carry the text to correct as their only hypothesis; MT ones carry a source.
            found_sources.append(item.source if item.source is not None else item.hypotheses[0])
        elif isinstance(item, str):
            references.append([item])
        else:
            if not item:
                raise ValueError(f"item {index} has no reference")
            references.append(list(item))
    if sources is None and items and isinstance(items[0], Record):
        sources = found_sources
    return references, (list(sources) if sources is not None else None)


def score_corpus(
    task: str,
    predictions: Sequence[str],
    records_or_references: Sequence[Record] | Sequence[Sequence[str]] | Sequence[str],
    normalizer: str | Callable[[str], str] | None = None,
    sources: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score ``predictions`` with the metrics of ``task`` (``TASK_METRICS[task]``) at corpus level.

    Args:
        task: a name in ``neko.tasks.TASKS``.
        predictions: one output text per item.
        records_or_references: the records (their references, and their sources for GLEU), or per item a
            list of references, or per item one reference string.
        normalizer: a name from ``NORMALIZERS``, a callable, or None for the task's default; applied to
            predictions, references and sources alike.
        sources: the uncorrected texts, needed by GLEU when plain references are given.

    Returns:
        ``{metric: value, ...}`` plus ``<metric>_counts`` for WER/CER (substitutions, deletions, insertions,
        reference units), ``n`` (items), ``normalizer`` (its name) and ``signature`` (how each metric was
        computed, joined by " ; "). WER and CER use the first reference of each item.
    """
    if task not in TASK_METRICS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASK_METRICS)}")
    if normalizer is None:
        normalizer = DEFAULT_NORMALIZERS[task]
    if isinstance(normalizer, str):
        name, normalize = normalizer, get_normalizer(normalizer)
    else:
        name = next(
            (key for key, fn in NORMALIZERS.items() if fn is normalizer),
            getattr(normalizer, "__name__", "custom"),
        )
        normalize = normalizer
    references, sources = _references_and_sources(records_or_references, sources)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} items")
    hyps = [normalize(text) for text in predictions]
    refs = [[normalize(text) for text in item] for item in references]
    row: dict[str, Any] = {"n": len(hyps)}
    signatures = []
    for metric in TASK_METRICS[task]:
        if metric in ERROR_RATES:
            scorer = corpus_wer if metric == "wer" else corpus_cer
            row.update(_error_rate_fields(metric, scorer([r[0] for r in refs], hyps)))
            signatures.append(f"{metric}:jiwer-{_JIWER_VERSION}|corpus|ref:first")
        elif metric in ("bleu", "chrf"):
            result = (corpus_bleu if metric == "bleu" else corpus_chrf)(hyps, refs)
            row[metric] = result.score
            signatures.append(f"{metric}:{result.signature}")
        elif metric == "gleu":
            if sources is None:
                raise ValueError("GLEU needs the sources (the uncorrected sentences)")
            row[metric] = corpus_gleu(hyps, [normalize(s) for s in sources], refs)
            signatures.append(f"gleu:jfleg-2016|n:4|draws:{ITERATIONS}|seed:j*101|tok:split")
    row["normalizer"] = name
    row["signature"] = " ; ".join(signatures)
    return row


__all__ = [
    "DEFAULT_NORMALIZERS",
    "NORMALIZERS",
    "TASK_METRICS",
    "evaluate_path",
    "get_normalizer",
    "score_corpus",
]

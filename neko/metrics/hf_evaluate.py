"""neko's corpus metrics as local Hugging Face ``evaluate`` modules, for users of that stack.

    import evaluate, neko.metrics
    wer = evaluate.load(neko.metrics.evaluate_path("wer"))       # a folder inside the package: offline
    wer.compute(predictions=["a b"], references=["a c"], normalizer="hyporadise")

Each module (``evaluate_modules/<name>/<name>.py``) is a thin ``evaluate.Metric`` over ``score_corpus``,
so it gives exactly the numbers of ``neko eval`` and ``neko baselines``: corpus level, the same scales
(WER/CER fractions, BLEU/chrF/GLEU 0-100), the same signature. ``normalizer`` defaults to ``none``;
``neko eval`` applies each task's own (``neko.metrics.DEFAULT_NORMALIZERS``: ``hyporadise`` for ASR).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neko.tasks import TASKS

MODULES_DIR = Path(__file__).resolve().parent / "evaluate_modules"

_DESCRIPTIONS = {
    "wer": "Corpus word error rate (jiwer): total edits / total reference words, a fraction.",
    "cer": "Corpus character error rate (jiwer): total edits / total reference characters, a fraction.",
    "bleu": "Corpus BLEU (sacrebleu), 0-100, one or more references per prediction.",
    "chrf": "Corpus chrF (sacrebleu), 0-100, one or more references per prediction.",
    "gleu": "Corpus GLEU of JFLEG (Napoles et al. 2015/2016), 0-100; needs `sources`, the uncorrected text.",
}

# The (first) task whose metric set computes each metric (``Task.metrics`` in ``neko.tasks``).
METRIC_TASKS = {
    metric: next(name for name, task in TASKS.items() if metric in task.metrics) for metric in _DESCRIPTIONS
}


def evaluate_path(name: str) -> str:
    """The folder of metric ``name``'s local ``evaluate`` module, for ``evaluate.load``."""
    if name not in METRIC_TASKS:
        raise ValueError(f"unknown metric {name!r}; choose one of: {', '.join(METRIC_TASKS)}")
    return str(MODULES_DIR / name)


def metric_info(name: str) -> Any:
    """The ``evaluate.MetricInfo`` of metric ``name``: a string prediction, one or several references."""
    import datasets
    import evaluate

    text = datasets.Value("string")
    single = datasets.Features({"predictions": text, "references": text})
    several = datasets.Features({"predictions": text, "references": datasets.List(text)})
    return evaluate.MetricInfo(
        description=_DESCRIPTIONS[name],
        citation="",
        inputs_description=(
            "predictions: list of str; references: list of str (WER, CER: the first reference of an item), "
            "or list of list of str; normalizer: none (default), hyporadise or whisper; "
            "sources: list of str (GLEU only)."
        ),
        features=[several, single] if name in ("bleu", "chrf", "gleu") else [single, several],
        reference_urls=["https://github.com/jitsi/jiwer", "https://github.com/mjpost/sacrebleu"],
    )


def compute(
    name: str,
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    normalizer: str = "none",
    sources: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``{name: score, "normalizer": ..., "signature": ...}`` from ``neko.metrics.score_corpus``."""
    from neko.metrics import score_corpus

    result = score_corpus(METRIC_TASKS[name], predictions, references, normalizer, sources)
    signature = next(s for s in result["signature"].split(" ; ") if s.startswith(f"{name}:"))
    return {name: result[name], "normalizer": result["normalizer"], "signature": signature}

"""neko's corpus WER as a local ``evaluate`` module: ``evaluate.load(neko.metrics.evaluate_path("wer"))``."""

import evaluate

from neko.metrics.hf_evaluate import compute, metric_info


class Wer(evaluate.Metric):
    """Corpus WER computed by ``neko.metrics.score_corpus`` (the numbers of ``neko eval``)."""

    def _info(self):
        return metric_info("wer")

    def _compute(self, predictions, references, normalizer="none"):
        return compute("wer", predictions, references, normalizer)

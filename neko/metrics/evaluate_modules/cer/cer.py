"""neko's corpus CER as a local ``evaluate`` module: ``evaluate.load(neko.metrics.evaluate_path("cer"))``."""

import evaluate

from neko.metrics.hf_evaluate import compute, metric_info


class Cer(evaluate.Metric):
    """Corpus CER computed by ``neko.metrics.score_corpus`` (the numbers of ``neko eval``)."""

    def _info(self):
        return metric_info("cer")

    def _compute(self, predictions, references, normalizer="none"):
        return compute("cer", predictions, references, normalizer)

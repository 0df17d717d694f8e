"""neko's corpus CHRF as a local ``evaluate`` module: ``evaluate.load(neko.metrics.evaluate_path("chrf"))``."""

import evaluate

from neko.metrics.hf_evaluate import compute, metric_info


class Chrf(evaluate.Metric):
    """Corpus CHRF computed by ``neko.metrics.score_corpus`` (the numbers of ``neko eval``)."""

    def _info(self):
        return metric_info("chrf")

    def _compute(self, predictions, references, normalizer="none"):
        return compute("chrf", predictions, references, normalizer)

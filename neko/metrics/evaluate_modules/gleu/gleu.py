"""neko's corpus GLEU as a local ``evaluate`` module: ``evaluate.load(neko.metrics.evaluate_path("gleu"))``."""

import evaluate

from neko.metrics.hf_evaluate import compute, metric_info


class Gleu(evaluate.Metric):
    """Corpus GLEU computed by ``neko.metrics.score_corpus`` (the numbers of ``neko eval``)."""

    def _info(self):
        return metric_info("gleu")

    def _compute(self, predictions, references, normalizer="none", sources=None):
        return compute("gleu", predictions, references, normalizer, sources)

"""neko's corpus BLEU as a local ``evaluate`` module: ``evaluate.load(neko.metrics.evaluate_path("bleu"))``."""

import evaluate

from neko.metrics.hf_evaluate import compute, metric_info


class Bleu(evaluate.Metric):
    """Corpus BLEU computed by ``neko.metrics.score_corpus`` (the numbers of ``neko eval``)."""

    def _info(self):
        return metric_info("bleu")

    def _compute(self, predictions, references, normalizer="none"):
        return compute("bleu", predictions, references, normalizer)

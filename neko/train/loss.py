"""The LM loss on target tokens only, with the vocabulary projection computed only where it is scored.

A correction example is mostly prompt: on HyPoradise ATIS about 15 of ~120 tokens are the target. The usual
``model(labels=...)`` projects every position onto the 49k-word vocabulary (a [batch, width, vocab] tensor
and its gradient) and then ignores the prompt's rows. Passing the target positions as ``logits_to_keep``
(a boolean [batch, width] mask, which transformers' causal LMs accept) projects only those rows; the loss is
the same mean cross-entropy over target tokens.
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100


def target_lm_loss(model: Any, input_ids: Any, attention_mask: Any, labels: Any) -> Any:
    """Mean next-token cross-entropy over the positions whose label is not ``IGNORE_INDEX``."""
    import torch
    import torch.nn.functional as F

    # Position p predicts token p + 1: keep p where the next label counts (the last position never does).
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep).logits
    targets = labels[:, 1:][keep[:, :-1]]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets)

"""Dev evaluation during training: the LM loss on held-out records and greedy-decoded corpus metrics.

The subset is drawn once per run with the recipe's seed, so numbers at different steps compare like with
like. Decoding uses the task hint (each record's expert, as in training) and greedy search; the full
inference engine (beam search, no hint) is ``neko correct``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from neko.model.config import ModelConfig
from neko.records import Record, read_records
from neko.tasks import encode_prompt
from neko.train.batching import collate
from neko.train.config import TrainConfig
from neko.train.mixture import excluded, expand_paths

_BATCH = 8  # rows of a dev-loss batch (sorted by length, so padding stays small)


def load_dev(train: TrainConfig) -> tuple[list[Record], list[Record]]:
    """(records for the dev loss, records to decode): seeded subsets of EACH dev source, so that a small dev
    set of one task is not drowned by a large one of another."""
    rng = random.Random(train.seed)
    loss_set: list[Record] = []
    decode_set: list[Record] = []
    for source in train.dev:
        records = [r for path in expand_paths(source.path) for r in read_records(path) if r.references]
        if source.exclude:
            records = [r for r in records if not excluded(r.meta, source.exclude)]
        loss_set += rng.sample(records, min(train.dev_loss_size, len(records)))
        decode_set += rng.sample(records, min(train.dev_size, len(records)))
    return loss_set, decode_set


def _routing(model: Any, model_cfg: ModelConfig, expert_ids: Any):
    from neko.model.routing import task_routing

    return task_routing(model, expert_ids, model_cfg.routing, record=False)


def dev_loss(
    model: Any, tokenizer: Any, records: list[Record], train: TrainConfig, model_cfg: ModelConfig
) -> float:
    """Token-weighted mean LM loss over the target tokens of ``records``."""
    import torch

    device = next(model.parameters()).device
    ordered = sorted(records, key=lambda r: len(encode_prompt(tokenizer, r, model_cfg.prompt)))
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ordered), _BATCH):
            batch = collate(ordered[start : start + _BATCH], tokenizer, train.max_len, model_cfg, device)
            with _routing(model, model_cfg, batch.expert_ids):
                out = model(
                    input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels
                )
            targets = int((batch.labels[:, 1:] != -100).sum())  # the model shifts labels by one
            total += float(out.loss) * targets
            count += targets
    return total / count if count else float("nan")


def dev_metrics(
    model: Any, tokenizer: Any, records: list[Record], train: TrainConfig, model_cfg: ModelConfig
) -> dict[str, dict[str, Any]]:
    """Per task, the corpus-level metrics (``neko.metrics.score_corpus``) of greedy corrections.

    Decoding goes through the inference code (``neko.infer.Corrector``, ``generate`` mode, batched, no task
    hint: the router alone picks the experts), so the dev figures measure what users will get.
    """
    from neko.infer.config import InferConfig
    from neko.infer.corrector import Corrector
    from neko.metrics import score_corpus

    corrector = Corrector(
        model, tokenizer, InferConfig(mode="generate", max_new_tokens=train.max_new_tokens), model_cfg
    )

    by_task: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_task[record.task].append(record)
    results = {}
    for task, items in sorted(by_task.items()):
        predictions = [c.text for c in corrector.correct_many(items, batch_size=_BATCH)]
        scores = score_corpus(task, predictions, items)
        results[task] = {k: v for k, v in scores.items() if not k.endswith("_counts")}
    return results

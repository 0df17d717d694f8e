"""What produces a row's outputs: each method maps the records of one dataset to one text per record.

Non-neural rows are the baselines of ``neko.baselines.outputs`` (the same code as ``neko baselines``); model rows load a ``Corrector`` (or a plain base LM for LM
reranking) once per experiment and run it on every dataset of the row.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from neko.baselines import outputs
from neko.errors import unknown_choice
from neko.experiments.config import ExperimentConfig
from neko.records import Record

Method = Callable[[Sequence[Record], ExperimentConfig], tuple[list[str], dict[str, Any]]]


def _texts_only(choose: Callable[[Sequence[Record]], list[str]]) -> Method:
    """A method from a baseline of ``neko.baselines.outputs`` (the texts, no extra fields)."""

    def method(records: Sequence[Record], config: ExperimentConfig) -> tuple[list[str], dict[str, Any]]:
        return choose(records), {}

    method.__doc__ = choose.__doc__
    return method


def best_system(records: Sequence[Record], config: ExperimentConfig) -> tuple[list[str], dict[str, Any]]:
    """The single MT system (candidate position) with the best corpus BLEU on these records (an oracle pick)."""
    texts, name, _ = outputs.best_system(records)
    return texts, {"system": name}


@lru_cache(maxsize=2)
def _corrector(model: str | None, mode: str | None, route_task: bool = False):
    from neko.infer.corrector import Corrector

    name = None if model in (None, "default") else os.path.expanduser(model)
    corrector = Corrector.from_pretrained(name, mode=mode or "auto")
    corrector.config = dataclasses.replace(corrector.config, route_task=route_task)
    return corrector


def neko_corrector(records: Sequence[Record], config: ExperimentConfig) -> tuple[list[str], dict[str, Any]]:
    """The trained corrector (``model``: ``default`` or a checkpoint) in the row's ``mode`` (and routing)."""
    corrector = _corrector(config.model, config.mode, config.route_task)
    out = corrector.correct_many(records, batch_size=config.batch_size)
    return [c.text for c in out], {"fallbacks": sum(c.fallback for c in out)}


@lru_cache(maxsize=1)
def _base_lm(name: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from neko.model.base import resolve_base

    folder = resolve_base(name)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def lm_rerank(records: Sequence[Record], config: ExperimentConfig) -> tuple[list[str], dict[str, Any]]:
    """Rerank each n-best list by the base LM's log-probability of the hypothesis alone (no task prompt).

    Only the LM score is used (no interpolation with recogniser scores), so the row shows what the
    pretrained LM knows before any training; ties keep the recogniser's order.
    """
    from neko.infer.select import select_best

    model, tokenizer = _base_lm(config.model or "smollm2-135m")
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    texts = []
    for lo in range(0, len(records), config.batch_size):
        batch = records[lo : lo + config.batch_size]
        prompts = [[start] for _ in batch]
        hyps = [
            [tokenizer(h, add_special_tokens=False)["input_ids"] or [start] for h in r.hypotheses]
            for r in batch
        ]
        for r, (best, _) in zip(batch, select_best(model, tokenizer, prompts, hyps), strict=True):
            texts.append(r.hypotheses[best])
    return texts, {}


def predictions(records: Sequence[Record], config: ExperimentConfig) -> tuple[list[str], dict[str, Any]]:
    """What a ``neko correct`` command wrote (``predictions``: its output file), matched to the records by id,
    so that the row scores exactly the output of the command a user runs (e.g. on an adapted model)."""
    from neko.errors import ConfigError
    from neko.records import iter_json_lines

    path = Path(os.path.expanduser(config.predictions or ""))
    if not path.is_file():
        raise ConfigError(f"predictions file not found: {path} (run the row's neko correct command first)")
    outputs = {row["id"]: row for _, row in iter_json_lines(path)}
    missing = [r.id for r in records if r.id not in outputs]
    if missing:
        raise ConfigError(f"{path}: no output for {len(missing)} records (first: {missing[0]!r})")
    rows = [outputs[r.id] for r in records]
    return [row["text"] for row in rows], {"fallbacks": sum(bool(row.get("fallback")) for row in rows)}


METHODS: dict[str, Method] = {
    "onebest": _texts_only(outputs.one_best),
    "oracle_nbest": _texts_only(outputs.oracle_nbest),
    "oracle_compositional": _texts_only(outputs.oracle_compositional),
    "rover": _texts_only(outputs.rover),
    "mbr_chrf": _texts_only(outputs.mbr_chrf),
    "best_system": best_system,
    "lm_rerank": lm_rerank,
    "neko": neko_corrector,
    "predictions": predictions,
}


def get_method(name: str) -> Method:
    """The method called ``name``, or a ConfigError listing the valid names."""
    if name not in METHODS:
        raise unknown_choice("method", name, [*METHODS, "quoted"])
    return METHODS[name]

"""Typed configuration of the corrector model: which base, how it is upcycled, routed and adapted with LoRA.

The fully resolved `ModelConfig` is written as ``neko_config.json`` beside every checkpoint and read back by
inference, so nothing about the model is declared twice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from neko.errors import ConfigError, check_keys, unknown_choice
from neko.tasks import TASKS
from neko.tasks.base import PROMPT_STYLES, PromptStyle

Routing = Literal["neko", "learned", "dense"]

# The routing modes (``neko.model.routing`` implements them), with the line the CLI shows for each.
ROUTINGS: dict[Routing, str] = {
    "neko": "task-routed MoE: each token goes to its task's expert plus the router's top-1 of the others",
    "learned": "plain MoE: the router's own top-k, trained with the load-balancing loss",
    "dense": "no upcycling: the dense base with LoRA (multi-task baseline)",
}

# Each task's own expert (``Task.expert``), the default routing of a fresh model.
DEFAULT_EXPERT_MAP = {name: task.expert for name, task in TASKS.items()}


@dataclass
class LoraSettings:
    """Which parts of the model train: LoRA on attention and experts, full training of the small router."""

    r: int = 16
    alpha: int = 32
    attention: bool = True
    experts: bool = True
    train_router: bool = True
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class ModelConfig:
    """The corrector model.

    ``expert_map`` maps a task (a name in ``neko.tasks.TASKS``) or a dataset name to its expert; a dataset name wins over
    its task, so two datasets of one task can own different experts. ``router_loss_weight`` scales the
    router loss added to the LM loss: in ``neko`` routing that loss is the cross-entropy of the router
    logits against the task's expert (0.1 keeps it well below the LM loss of a pretrained model, yet the
    router reaches the right expert within a few hundred steps); in ``learned`` routing the load-balancing
    loss is scaled by ``aux_loss_coef`` (transformers' Mixtral default, 0.01) instead. ``prompt`` is the
    prompt style the model is trained on and read with (``neko.tasks.base.PROMPT_STYLES``; a config without
    it is ``full``, the style of every model trained before styles existed).
    """

    base: str = "smollm2-135m"
    num_experts: int = 4
    top_k: int = 2
    routing: Routing = "neko"
    expert_map: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_EXPERT_MAP))
    router_loss_weight: float = 0.1
    aux_loss_coef: float = 0.01
    lora: LoraSettings = field(default_factory=LoraSettings)
    base_sha256: str | None = None
    prompt: PromptStyle = "full"

    def __post_init__(self) -> None:
        if self.prompt not in PROMPT_STYLES:
            raise unknown_choice("prompt style", self.prompt, PROMPT_STYLES)
        if self.routing not in ROUTINGS:
            raise unknown_choice("routing", self.routing, ROUTINGS)
        if self.routing != "dense":
            if not 1 <= self.top_k <= self.num_experts:
                raise ConfigError(f"top_k={self.top_k} must lie in 1..num_experts={self.num_experts}")
            if self.routing == "neko" and self.top_k < 2:
                raise ConfigError(
                    "routing 'neko' needs top_k >= 2 (the task expert plus the router's choice)"
                )
            bad = {k: v for k, v in self.expert_map.items() if not 0 <= int(v) < self.num_experts}
            if bad:
                raise ConfigError(f"expert_map {bad} points outside 0..{self.num_experts - 1}")

    def expert_for(self, task: str, dataset: str | None = None) -> int:
        """The expert of a record: its dataset's entry if there is one, else its task's."""
        if dataset is not None and dataset in self.expert_map:
            return int(self.expert_map[dataset])
        if task in self.expert_map:
            return int(self.expert_map[task])
        raise unknown_choice("task (no expert in expert_map)", task, self.expert_map)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (nested dataclasses become dicts)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """The inverse of `to_dict`; unknown keys are an error naming them and the valid keys."""
        data = dict(data)
        check_keys(data, _field_names(cls), "model config")
        lora = data.pop("lora", None)
        if isinstance(lora, dict):
            check_keys(lora, _field_names(LoraSettings), "model config 'lora'")
            lora = LoraSettings(**lora)
        return cls(**data, lora=lora or LoraSettings())


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]

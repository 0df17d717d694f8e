"""The typed settings of a corrector."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

from neko.errors import unknown_choice
from neko.infer.guard import GuardConfig

if TYPE_CHECKING:
    from neko.infer.fusion import FusionWeights

Mode = Literal["auto", "generate", "select", "constrained"]
SelectScore = Literal["sum", "mean"]
MODES: tuple[Mode, ...] = get_args(Mode)
SELECT_SCORES: tuple[SelectScore, ...] = get_args(SelectScore)


@dataclass
class InferConfig:
    """How a ``Corrector`` decodes.

    Attributes:
        mode: ``generate`` (the model writes the correction), ``select`` (the model scores the hypotheses and
            the best one is returned: it cannot hallucinate), ``auto`` (generate, then the guard) or
            ``constrained`` (ASR: beam search over the paths of the n-best's confusion network, scored by
            the model; it can recombine words of different hypotheses but cannot write a new one; OCR: the
            same over the line's spelling lattice, ``neko.infer.spelling``; other tasks fall back to
            ``select``).
        num_beams: 1 = greedy decoding; more = beam search.
        max_hypotheses: n-best size shown in the prompt (and scored by ``select``), never more than the
            task's own cap (``Task.max_shown``: 4 MT candidates); longer lists keep their first (best)
            entries, as in training (MT candidates without scores are first ranked by chrF consensus:
            ``MtTask.shown_indices``).
        max_hypothesis_tokens: each hypothesis (and the source) is cut to this many tokens before the prompt
            is built, so a 10,000-character input cannot overflow the model.
        max_batch_tokens: a model batch holds no more rows than keep rows x its longest row's tokens (prompt
            plus new tokens; for scoring, prompt plus the texts scored) within this budget, so that long
            inputs (MT: source and four candidates) run in smaller batches and memory stays bounded; None:
            ``batch_size`` alone decides.
        max_prompt_tokens: hard cap of the prompt; a longer one keeps its head and tail (instruction and the
            answer cue) and loses the middle.
        new_tokens_ratio, new_tokens_extra, max_new_tokens: a record may generate
            ``min(max_new_tokens, ratio * longest hypothesis tokens + extra)`` tokens.
        cn_beams: beams of the ``constrained`` search (paths kept per record at each slot).
        cn_weight: ``constrained`` path score = model log-probability + cn_weight * sum of the log
            posteriors of the chosen slot options (0: the model alone).
        select_score: ``sum`` (the sequence log-probability: the default, what beam search maximises) or
            ``mean`` (per-token average, which does not favour short hypotheses).
        route_task: False (default): the router picks the experts, as the NeKo paper does at inference, and
            ``task`` only chooses the prompt. True: force the task's expert (a hint; needs a model whose
            config has an ``expert_map``).
        guard: thresholds of the ``auto`` mode guard.
        task_guards: per-task thresholds (calibrated on each task's dev data) that replace ``guard`` for
            that task.
        score_margins: compute ``Correction.margin`` for every output that changes the first hypothesis,
            even when the guard does not need it (``neko calibrate`` does).
        task_fusion: per-task fusion weights (``neko.infer.fusion``, fitted by ``neko calibrate``): for
            such a task ``auto`` scores every candidate (hypotheses, generated text) and returns the argmax
            of the fused score instead of consulting the guard.
    """

    mode: Mode = "auto"
    num_beams: int = 1
    max_hypotheses: int = 5
    max_hypothesis_tokens: int = 256
    max_prompt_tokens: int = 1536
    max_batch_tokens: int | None = 4096
    new_tokens_ratio: float = 1.5
    new_tokens_extra: int = 8
    max_new_tokens: int = 384
    select_score: SelectScore = "sum"
    cn_beams: int = 4
    cn_weight: float = 0.0
    route_task: bool = False
    guard: GuardConfig = field(default_factory=GuardConfig)
    task_guards: dict[str, GuardConfig] = field(default_factory=dict)
    score_margins: bool = False
    task_fusion: dict[str, FusionWeights] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.select_score not in SELECT_SCORES:
            raise unknown_choice("select score", self.select_score, SELECT_SCORES)
        if self.num_beams < 1 or self.max_hypotheses < 1 or self.cn_beams < 1:
            raise ValueError("num_beams, cn_beams and max_hypotheses must be at least 1")
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ValueError("max_batch_tokens must be at least 1 (or None: no token budget)")

    def guard_for(self, task: str) -> GuardConfig:
        """The guard thresholds of ``task``: its own when calibrated, else the general ones."""
        return self.task_guards.get(task, self.guard)


def check_mode(mode: str) -> Mode:
    """Return ``mode`` when it is a valid mode, else raise a ConfigError naming the choices."""
    if mode not in MODES:
        raise unknown_choice("mode", mode, MODES)
    return mode

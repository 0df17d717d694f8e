"""What every task shares: the prompt layout and the numbered candidate list.

The prompt is plain text, not the tokenizer's chat template: the upcycled MoE is trained from a base-model
checkpoint, the template of SmolLM2/Qwen adds ~20-30 tokens of role markers per example (a measurable cost
on CPU, where every token is paid for in the forward and backward pass), and a plain layout is the same for
every base model, so a checkpoint never depends on which template its tokenizer happened to ship with.

Layout (the cue ends the prompt; the target follows after one space and ends with the EOS token)::

    <instruction>
    <body lines>
    <cue>: <target><eos>

Two prompt styles (``PROMPT_STYLES``; a model's ``ModelConfig.prompt`` says which one it was trained on, and
inference reads it from there): ``full`` (above, with numbered candidates: what every model before the style
existed was trained on) and ``compact``, which drops what a trained corrector does not need to read: the
instruction sentence (ASR keeps a 3-token tag, the other tasks' bodies already name their input) and the
candidate numbers. ``eval/prompt_tokens.py --style`` measures both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from neko.errors import unknown_choice
from neko.records import Record

PromptStyle = Literal["full", "compact"]
PROMPT_STYLES: tuple[PromptStyle, ...] = get_args(PromptStyle)

# meta key of a record whose hypotheses are already the shown ones in prompt order (a task must not reorder them).
SHOWN_IN_ORDER = "shown_in_order"


def distinct_indices(texts: list[str], limit: int | None = None) -> list[int]:
    """Indices of the first ``limit`` (all when None) distinct texts, whitespace collapsed, in order.

    The one n-best de-duplication: the prompts show these texts, and inference scores exactly these.
    """
    seen: set[str] = set()
    out: list[int] = []
    for index, text in enumerate(texts):
        if limit is not None and len(out) == limit:
            break
        key = " ".join(text.split())
        if key not in seen:
            seen.add(key)
            out.append(index)
    return out


def numbered(texts: list[str], numbers: bool = True) -> str:
    """``1. first`` / ``2. second`` ... one a line (``numbers`` False: the texts alone, one a line)."""
    if not numbers:
        return "\n".join(texts)
    return "\n".join(f"{i}. {text}" for i, text in enumerate(texts, 1))


@dataclass(frozen=True)
class Task:
    """A correction task: the one place of its name, prompt, n-best cap, metrics, normaliser and expert.

    Subclasses implement ``body``; ``build_prompt`` is THE prompt function, used by training and inference.
    Everything else (records, metrics, the model config, inference) reads these facts from ``neko.tasks.TASKS``.

    Attributes:
        name: registry key, the same as ``Record.task``.
        instruction: the first prompt line.
        cue: the word that ends the prompt, before the answer.
        metrics: names in ``neko.metrics.TASK_METRICS``, the first being the headline metric.
        normalizer: the default normaliser name applied before scoring ("none" where case and punctuation
            are part of the output: sacrebleu tokenises MT itself, JFLEG is tokenised, OCR is scored on the
            characters as printed).
        expert: the task's expert in the default ``ModelConfig.expert_map``.
        max_shown: how many distinct hypotheses the prompt shows at most (None: the body decides, e.g. OCR
            and GEC show only the first); inference never shows or scores more.
        tag: the first line of the ``compact`` prompt ("": none, the body names the input itself).
    """

    name: str
    instruction: str
    cue: str
    metrics: tuple[str, ...]
    normalizer: str
    expert: int
    max_shown: int | None = None
    tag: str = ""

    def body(self, record: Record, numbers: bool = True) -> str:
        """The task-specific middle of the prompt (``numbers``: candidates numbered, as ``full`` shows them)."""
        raise NotImplementedError

    def shown_indices(self, record: Record, limit: int | None = None) -> list[int]:
        """Indices of the hypotheses the prompt lists, in prompt order: the first ``max_shown`` distinct ones
        (fewer with ``limit``). The one place that decides what the model sees and ``select`` may return."""
        return distinct_indices(record.hypotheses, self.shown_cap(limit))

    def shown_cap(self, limit: int | None = None) -> int | None:
        """How many hypotheses the prompt shows at most: ``max_shown``, lowered to ``limit`` when given."""
        return self.max_shown if limit is None else min(limit, self.max_shown or limit)

    def shown(self, record: Record) -> list[str]:
        """The hypotheses the prompt lists (``shown_indices``), whitespace collapsed."""
        return [" ".join(record.hypotheses[i].split()) for i in self.shown_indices(record)]

    def build_prompt(self, record: Record, style: PromptStyle = "full") -> str:
        """The prompt for a record in ``style`` (``PROMPT_STYLES``), ending with the answer cue (no trailing
        space)."""
        if style == "compact":
            head = f"{self.tag}\n" if self.tag else ""
            return f"{head}{self.body(record, numbers=False)}\n{self.cue}:"
        if style != "full":
            raise unknown_choice("prompt style", style, PROMPT_STYLES)
        return f"{self.instruction}\n{self.body(record)}\n{self.cue}:"

    def target(self, record: Record) -> str:
        """The training target: the first reference, whitespace collapsed."""
        if not record.references:
            raise ValueError(f"record {record.id!r} of {record.dataset!r} has no reference to train on")
        return " ".join(record.references[0].split())

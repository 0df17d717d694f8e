"""What every task shares: the prompt layout and the numbered candidate list.

The prompt is plain text, not the tokenizer's chat template: the upcycled MoE is trained from a base-model
checkpoint, the template of SmolLM2/Qwen adds ~20-30 tokens of role markers per example (a measurable cost
on CPU, where every token is paid for in the forward and backward pass), and a plain layout is the same for
every base model, so a checkpoint never depends on which template its tokenizer happened to ship with.

Layout (the cue ends the prompt; the target follows after one space and ends with the EOS token)::

    <instruction>
    <body lines>
    <cue>: <target><eos>
"""

from __future__ import annotations

from dataclasses import dataclass

from neko.records import Record


def dedupe(texts: list[str]) -> list[str]:
    """Drop exact repeats (after collapsing whitespace), keeping the first occurrence and the order."""
    seen: set[str] = set()
    out: list[str] = []
    for text in texts:
        key = " ".join(text.split())
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def numbered(texts: list[str]) -> str:
    """``1. first`` / ``2. second`` ... one a line."""
    return "\n".join(f"{i}. {text}" for i, text in enumerate(texts, 1))


@dataclass(frozen=True)
class Task:
    """A correction task: its prompt, its training target, its metrics and its default normaliser.

    Subclasses implement ``body``; ``build_prompt`` is THE prompt function, used by training and inference.

    Attributes:
        name: registry key, the same as ``Record.task``.
        instruction: the first prompt line.
        cue: the word that ends the prompt, before the answer.
        metrics: names in ``neko.metrics.TASK_METRICS``, the first being the headline metric.
        normalizer: the default normaliser name applied before scoring.
    """

    name: str
    instruction: str
    cue: str
    metrics: tuple[str, ...]
    normalizer: str

    def body(self, record: Record) -> str:
        """The task-specific middle of the prompt."""
        raise NotImplementedError

    def build_prompt(self, record: Record) -> str:
        """The full prompt for a record, ending with the answer cue (no trailing space)."""
        return f"{self.instruction}\n{self.body(record)}\n{self.cue}:"

    def target(self, record: Record) -> str:
        """The training target: the first reference, whitespace collapsed."""
        if not record.references:
            raise ValueError(f"record {record.id!r} of {record.dataset!r} has no reference to train on")
        return " ".join(record.references[0].split())

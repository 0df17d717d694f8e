"""The result of correcting one record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Correction:
    """What the corrector made of one record.

    Attributes:
        text: the corrected text.
        fallback: True when the guard rejected the generated text and ``text`` is a hypothesis instead; with
            fusion weights, True when the fused pick is the first hypothesis; under a guard that accepts no
            change (``min_margin`` inf), always True, and nothing is generated (``generated`` is None).
        mode: the mode that produced it: ``generate``, ``select``, ``auto`` or ``constrained`` (a
            ``constrained`` run gives ``select`` to the records of tasks without a confusion network).
        task: the task whose prompt was used.
        index: index (into the input hypotheses) of the hypothesis returned, for ``select`` and for a
            fallback; None when ``text`` was generated.
        scores: ``select`` only: the score of each hypothesis considered (the first distinct ones, in
            order), by default the sum of the log-probabilities of its tokens and of the end-of-sequence
            token given the prompt; empty otherwise.
        generated: ``auto`` only: the generated text the guard judged (equal to ``text`` unless it fell back).
        truncated: True when the input was cut to fit the prompt (n-best size or token budget).
        margin: ``auto`` only, when the guard's margin check ran (or fusion scored the candidates): score
            of the generated text minus that of the first hypothesis (nats); None otherwise.
        fused: ``auto`` with fusion weights (``neko.infer.fusion``): the fused score of the pick.
        features: ``auto`` with fusion weights: the features of the pick (``neko.infer.fusion.FEATURES``).
    """

    text: str
    fallback: bool = False
    mode: str = "generate"
    task: str = "asr"
    index: int | None = None
    scores: list[float] = field(default_factory=list)
    generated: str | None = None
    truncated: bool = False
    margin: float | None = None
    fused: float | None = None
    features: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the empty optional fields left out."""
        out = asdict(self)
        for key in ("index", "generated", "margin", "fused", "features"):
            if out[key] is None:
                del out[key]
        if not out["scores"]:
            del out["scores"]
        return out

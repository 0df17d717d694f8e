"""NeKo: post-recognition generative error correction with a task-routed Mixture-of-Experts LLM.

``from neko import Corrector`` (and ``neko.adapt``) loads the API on first use, so ``import neko`` stays light (no
torch, no transformers).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Corrector", "Correction", "adapt"]

_LAZY = {
    "Corrector": "neko.infer.corrector",
    "Correction": "neko.infer.correction",
    "adapt": "neko.train.adapt",
}


def __getattr__(name: str) -> Any:
    """Import ``Corrector`` / ``Correction`` / ``adapt`` when first asked for."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'neko' has no attribute {name!r}")

"""Where data and caches live: flags win, then environment variables, then defaults outside the repository."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The shared data folder: ``override``, else ``$NEKO_DATA``, else ``../shared/data`` beside the repository."""
    if override:
        return Path(override)
    if os.environ.get("NEKO_DATA"):
        return Path(os.environ["NEKO_DATA"])
    return REPO_ROOT.parent / "shared" / "data"


def cache_dir(*parts: str) -> Path:
    """A folder under ``$NEKO_CACHE`` (default ``~/.cache/neko``), created on demand."""
    root = Path(os.environ.get("NEKO_CACHE", Path.home() / ".cache" / "neko"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path

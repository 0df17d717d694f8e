"""Run a benchmark command, stream its output, and store its final JSON line as a result file.

    python eval/capture_json.py results/efficiency/train.json -- python eval/bench_train.py

The benchmark scripts end with one JSON line of figures; table 6 of docs/RESULTS.md is rendered from the
files this writes (``{"command": ..., "summary": {...}}``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from neko.fileio import atomic_write

REPO_ROOT = Path(__file__).resolve().parent.parent


def relative_paths(value):
    """``value`` with every absolute path inside the repository written relative to it: a result file
    records where things are in the repository, not where the repository was on the machine that ran it."""
    if isinstance(value, str):
        return value.replace(f"{REPO_ROOT}{os.sep}", "").replace(str(REPO_ROOT), ".")
    if isinstance(value, dict):
        return {key: relative_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [relative_paths(item) for item in value]
    return value


def main(argv: list[str]) -> int:
    """``OUT -- COMMAND...``: run COMMAND, echo its output, write OUT from its last JSON line."""
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    out, command = Path(argv[0]), argv[2:]
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    sys.stdout.write(proc.stdout)
    if proc.returncode:
        return proc.returncode
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        print(f"{shlex.join(command)} printed no JSON line", file=sys.stderr)
        return 2
    summary = {"command": shlex.join(command), "summary": relative_paths(json.loads(lines[-1]))}
    atomic_write(out, json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

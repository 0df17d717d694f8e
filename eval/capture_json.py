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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(
        json.dumps({"command": shlex.join(command), "summary": json.loads(lines[-1])}, indent=1) + "\n"
    )
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

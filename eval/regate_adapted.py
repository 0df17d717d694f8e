"""Refit the gate of an adapted corrector on its own dev split, as ``neko adapt`` fits it now.

For a model folder written by an older ``neko adapt`` (or one whose gate you want to refit after a change to
the calibration): reads ``MODEL/data/dev.jsonl`` and rewrites the gate in ``MODEL/neko_config.json`` with
``neko.train.adapt.calibrate_gate`` (the guard, kept only where the dev split vouches for it). Work on a copy:

    cp -r ~/.cache/neko/adapt/telephone8 /tmp/telephone8v && python3 eval/regate_adapted.py /tmp/telephone8v

Prints the dev figures as one JSON object per task.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    """Refit and print."""
    from neko.records import read_records
    from neko.train.adapt import calibrate_gate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a folder written by neko adapt (with data/dev.jsonl)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    model = Path(args.model)
    dev = list(read_records(model / "data" / "dev.jsonl"))
    print(json.dumps(calibrate_gate(model, dev, threads=args.threads)))


if __name__ == "__main__":
    main()

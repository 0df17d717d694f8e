"""Dev error against minutes of CPU training, one point per finished ``neko adapt`` run (its ``adapt.json``).

    python eval/plot_adapt.py ~/.cache/neko/adapt/atis15 ~/.cache/neko/adapt/atis30 --out docs/plots/adapt_atis.png

Each run adds two points at its training minutes: the model alone (``generated``) and what ``neko correct``
returns (``adapted``, gated); the gated line starts at minute 0 from the input (the first hypotheses). ``eval/adapt_curve.py`` draws the
finer curve of one run from its checkpoints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    """Read the reports, plot the task's dev metric against training minutes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="--out folders of finished adaptations")
    parser.add_argument("--task", default="asr")
    parser.add_argument("--out", required=True, help="PNG file")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reports = sorted(
        (json.loads((Path(r) / "adapt.json").read_text()) for r in args.runs),
        key=lambda r: r["train_minutes"],
    )
    dev = [r["dev"][args.task] for r in reports]
    minutes = [0.0] + [r["train_minutes"] for r in reports]
    scale = 100.0 if dev[0]["metric"] in ("wer", "cer") else 1.0
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(
        minutes, [scale * dev[0]["input"]] + [scale * d["generated"] for d in dev], "o-", label="model alone"
    )
    ax.plot(
        minutes,
        [scale * dev[0]["input"]] + [scale * d["adapted"] for d in dev],
        "s-",
        label="gated (neko correct)",
    )
    ax.axhline(scale * dev[0]["input"], color="grey", ls="--", label="input (first hypothesis)")
    ax.set_xlabel("minutes of CPU training (2 cores)")
    ax.set_ylabel(f"dev {dev[0]['metric'].upper()}" + (" (%)" if scale == 100.0 else ""))
    ax.set_title(f"neko adapt: {dev[0]['n']} dev records")
    ax.legend()
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()

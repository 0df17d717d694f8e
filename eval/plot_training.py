"""Plot a run's loss curve and print its dev figures before and after, from ``metrics.jsonl``.

python eval/plot_training.py ~/.cache/neko/runs/neko-tiny/metrics.jsonl docs/plots/neko-tiny-loss.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """METRICS.jsonl OUT.png: write the plot, print the first and last dev rows as a Markdown table."""
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in Path(argv[0]).read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "loss" in r]
    dev = [r for r in rows if "dev" in r]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in steps], [r["lm_loss"] for r in steps], label="LM loss (target tokens)")
    ax.plot([r["step"] for r in steps], [r["router_loss"] for r in steps], label="router loss")
    if dev:
        ax.plot([r["step"] for r in dev], [r["dev_loss"] for r in dev], "o--", label="dev LM loss")
    ax.set_xlabel("optimiser step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(argv[1]).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(argv[1], dpi=100, metadata={"Software": None})
    if len(dev) >= 2:
        first, last = dev[0], dev[-1]
        print(f"| figure | step {first['step']} | step {last['step']} |\n|---|---|---|")
        print(f"| dev LM loss | {first['dev_loss']:.3f} | {last['dev_loss']:.3f} |")
        for task in sorted(first["dev"]):
            for key, value in first["dev"][task].items():
                if isinstance(value, float):
                    scale = 100 if key in ("wer", "cer") else 1
                    after = last["dev"][task][key] * scale
                    print(
                        f"| {task} {key}{' %' if scale == 100 else ''} (n={first['dev'][task]['n']}) "
                        f"| {value * scale:.2f} | {after:.2f} |"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Dev error against minutes of CPU training, from the checkpoints of one ``neko adapt`` run.

Every checkpoint of ``OUT/run/checkpoints`` becomes a corrector (the run's adapter config and tokenizer, the
checkpoint's LoRA weights) that corrects the adaptation's dev split in ``generate`` mode (the model alone,
no gate); the minutes are the summed step times of ``OUT/run/metrics.jsonl`` up to that step. The final
model's gated figure (``adapt.json``) is the last point of its own line.

    python eval/adapt_curve.py OUT [--limit 100] [--every 1] [--plot docs/plots/adapt_atis.png]

Prints one JSON line per checkpoint: {"step", "minutes", "wer_generated", "wer_input"}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path


def step_minutes(run: Path) -> dict[int, float]:
    """Minutes of training (summed step times) after each logged step."""
    total, seen, minutes = 0.0, 0, {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "tokens_per_s" in row:
            total += (row["tokens"] - seen) / row["tokens_per_s"]
            seen = row["tokens"]
            minutes[row["step"]] = total / 60.0
    return minutes


def checkpoint_corrector(out: Path, checkpoint: Path, folder: Path) -> Path:
    """A loadable corrector folder with the LoRA weights of ``checkpoint``."""
    from safetensors.torch import load_file, save_file

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "neko_config.json", "tokenizer.json", "tokenizer_config.json"):
        if (out / name).is_file():
            shutil.copy(out / name, folder / name)
    weights = load_file(str(checkpoint / "trainable.safetensors"))
    # peft names a live adapter's weights ``...lora_A.default.weight``; its saved files leave out the name.
    save_file(
        {k.replace(".default.", "."): v for k, v in weights.items()},
        str(folder / "adapter_model.safetensors"),
    )
    return folder


def main() -> None:
    """Score every checkpoint on the dev split; optionally plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the --out folder of a finished `neko adapt`")
    parser.add_argument("--limit", type=int, default=100, help="dev records scored (seeded pick)")
    parser.add_argument(
        "--every", type=int, default=1, help="score every k-th checkpoint (and always the last)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()

    from neko.infer.calibrate import sample_records, task_score
    from neko.infer.corrector import Corrector
    from neko.records import read_records

    out = Path(args.out)
    dev = sample_records(list(read_records(out / "data" / "dev.jsonl")), args.limit)
    score = task_score("asr", dev)
    minutes = step_minutes(out / "run")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = sorted((out / "run" / "checkpoints").glob("step-*"))
        for checkpoint in checkpoints[args.every - 1 :: args.every] + checkpoints[-1:] * (
            len(checkpoints) % args.every != 0
        ):
            step = int(checkpoint.name.split("-")[1])
            folder = checkpoint_corrector(out, checkpoint, Path(tmp) / checkpoint.name)
            corrector = Corrector.from_pretrained(folder, mode="generate", threads=args.threads)
            texts = [c.text for c in corrector.correct_many(dev)]
            row = {
                "step": step,
                "minutes": round(minutes.get(step, float("nan")), 2),
                "wer_generated": round(100 * score(texts), 2),
                "wer_input": round(100 * score([r.hypotheses[0] for r in dev]), 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.plot:
        plot(rows, json.loads((out / "adapt.json").read_text()), Path(args.plot))


def plot(rows: list[dict], report: dict, path: Path) -> None:
    """Dev WER of the generated corrections against training minutes, the input's and the gated model's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(
        [r["minutes"] for r in rows],
        [r["wer_generated"] for r in rows],
        "o-",
        label="generated (model alone)",
    )
    ax.axhline(rows[0]["wer_input"], color="grey", ls="--", label="input (1-best)")
    asr = report["dev"]["asr"]
    ax.plot([report["train_minutes"]], [100 * asr["adapted"]], "r*", ms=12, label="adapted, gated (all dev)")
    ax.set_xlabel("minutes of CPU training (2 cores)")
    ax.set_ylabel("dev WER (%)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

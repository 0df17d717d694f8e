"""Shared builders of the training tests: a tiny base model folder, record files and a recipe YAML."""

from __future__ import annotations

from pathlib import Path

import yaml

from neko.records import Record, write_records

WORDS = "the quick brown fox jumps over lazy dog she sells sea shells by shore".split()


def tiny_base(folder: Path) -> Path:
    """A tiny random Llama and the tiny tokenizer saved as a transformers folder (a valid ``model.base``)."""
    from neko.model.tiny import tiny_dense_model, tiny_tokenizer

    if not (folder / "config.json").is_file():
        tiny_dense_model("llama").save_pretrained(folder)
        tiny_tokenizer().save_pretrained(folder)
    return folder


def _sentence(i: int, n: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n))


def write_task_data(folder: Path, per_task: int = 24) -> dict[str, Path]:
    """One JSONL file per task with records of varied lengths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for task in ("asr", "mt", "ocr", "gec"):
        records = []
        for i in range(per_task):
            ref = _sentence(i, 3 + i % 9)
            hyps = [ref.replace("the", "a"), ref] if task in ("asr", "mt") else [ref.replace("s", "5")]
            source = "quelle " + ref if task == "mt" else None
            records.append(Record(f"{task}-{i}", task, f"{task}_set", hyps, source=source, references=[ref]))
        paths[task] = folder / f"{task}_set.jsonl"
        write_records(paths[task], records)
    return paths


def write_recipe(path: Path, base: Path, data: dict[str, Path], out: Path, **train) -> Path:
    """A small recipe YAML for the tiny model; ``train`` overrides training fields."""
    recipe = {
        "model": {
            "base": str(base),
            "num_experts": 4,
            "top_k": 2,
            "routing": "neko",
            "lora": {"r": 4, "alpha": 8},
        },
        "train": {
            "data": [{"path": str(p), "name": t} for t, p in data.items()],
            "alpha": 1.0,
            "max_tokens": 256,
            "quadratic_length": 512,
            "max_len": 64,
            "num_buckets": 6,
            "bucket_sample": 40,
            "buffer_size": 60,
            "lr": 5e-3,
            "warmup_steps": 1,
            "max_steps": 4,
            "save_every": 2,
            "log_every": 1,
            "threads": 1,
            **train,
        },
        "output_dir": str(out),
    }
    path.write_text("# neko train (test recipe)\n" + yaml.safe_dump(recipe, sort_keys=False))
    return path

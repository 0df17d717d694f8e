"""What a training example spends its tokens on, per task: the measurement behind the prompt's shape.

For the first ``--limit`` records of each file it splits the tokens of ``prompt + target`` into: the
instruction line and the answer cue (fixed per task), the numbering of the candidate list, the first
hypothesis (or source line), the words that later hypotheses repeat from the first (their common prefix and
suffix with it: what an n-best list mostly is), the words where they differ, and the target. Each part is
tokenised on its own, so the parts add up to within a token or two per line of the real prompt, whose
length is printed beside them.

    python eval/prompt_tokens.py ~/.cache/neko/prepared/hyporadise_atis_train.jsonl \
        ~/.cache/neko/prepared/wmt22_de-en.jsonl ~/.cache/neko/prepared/icdar2017.jsonl

Prints one JSON line per file: mean tokens per record of each part, each part's share of the total, and the
same example's tokens with the ``compact`` prompt style (``neko.tasks.base``: no instruction sentence, no
numbers) as ``prompt_compact`` and ``compact_saving`` (the share of prompt + target tokens it removes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics


def shared_words(first: list[str], other: list[str]) -> int:
    """How many words of ``other`` lie in its common prefix or suffix with ``first``."""

    def common(a: list[str], b: list[str]) -> int:
        return sum(1 for _ in itertools.takewhile(lambda p: p[0] == p[1], zip(a, b, strict=False)))

    prefix = common(first, other)
    return prefix + common(first[prefix:][::-1], other[prefix:][::-1])


def parts(tokenizer, record) -> dict[str, int]:
    """Token counts of each part of one training example (see the module docstring)."""
    from neko.tasks import encode_prompt, get_task

    task = get_task(record.task)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    shown = task.shown(record)
    first = shown[0].split() if shown else []
    repeated = differing = numbering = 0
    for hyp in shown[1:]:
        words = hyp.split()
        share = shared_words(first, words)
        total = count(" ".join(words))
        repeated += round(total * share / max(1, len(words)))
        differing += total - round(total * share / max(1, len(words)))
    if "\n1. " in task.build_prompt(record):
        numbering = sum(count(f"{i}.") for i in range(1, len(shown) + 1))
    return {
        "prompt": len(encode_prompt(tokenizer, record)),
        "prompt_compact": len(encode_prompt(tokenizer, record, "compact")),
        "instruction_and_cue": count(task.instruction) + count(f"{task.cue}:"),
        "source": count(record.source or ""),
        "numbering": numbering,
        "first_hypothesis": count(" ".join(first)),
        "repeated_words": repeated,
        "differing_words": differing,
        "target": count(" " + task.target(record)) + 1,  # + EOS
    }


def main() -> None:
    """Print the mean parts of each file's first ``--limit`` records."""
    from transformers import AutoTokenizer

    from neko.model.base import resolve_base
    from neko.records import read_records

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--base", default="smollm2-135m")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(resolve_base(args.base))
    for path in args.files:
        rows = [parts(tokenizer, r) for r in itertools.islice(read_records(path), args.limit)]
        mean = {key: round(statistics.fmean(r[key] for r in rows), 1) for key in rows[0]}
        total = mean["prompt"] + mean["target"]
        share = {key: round(value / total, 3) for key, value in mean.items() if not key.startswith("prompt")}
        saving = round(1 - (mean["prompt_compact"] + mean["target"]) / total, 3)
        line = {"file": path, "records": len(rows), "tokens": mean, "share": share, "compact_saving": saving}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

"""``neko correct``: lossless, resumable correction of a file (or stdin) into JSONL.

Guarantees:

- one output record per input record, in input order: ``{id, text, fallback, mode, task, ...}``, or for a
  bad input under ``--on-error skip`` ``{id, text: null, error, line}``;
- bad input under the default ``--on-error stop``: the whole input is read and checked before the model
  loads; the first bad record ends the run with one line naming file and line and exit code 2, and nothing
  is written;
- the output grows in ``OUTPUT.partial`` (flushed and synced after each chunk) and is renamed to
  ``OUTPUT`` at the end, so ``OUTPUT`` is always complete; ``--resume`` continues a killed run from its
  partial file, whose ids must be a prefix of the input's (a half-written last line is dropped and redone).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from neko.errors import ConfigError, InputError, NekoError
from neko.infer.readers import Item, read_items


def output_record(item: Item, correction: Any = None) -> dict[str, Any]:
    """The output line of one input item: its correction, or its error."""
    if item.error is not None:
        return {"id": item.id, "text": None, "error": item.error.message, "line": item.where}
    return {"id": item.id, **correction.to_dict()}


def read_partial(partial: Path, items: list[Item]) -> int:
    """How many records ``partial`` already holds; checks that they are the input's first ones.

    A last line without its newline (the run died while writing it) is cut off, and redone.
    """
    data = partial.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(partial, "r+b") as handle:
            handle.truncate(len(complete))
    done = 0
    for lineno, raw in enumerate(complete.splitlines(), start=1):
        try:
            ident = json.loads(raw)["id"]
        except (ValueError, KeyError, TypeError):
            raise InputError(str(partial), lineno, "not an output record of `neko correct`") from None
        if done >= len(items) or ident != items[done].id:
            expected = items[done].id if done < len(items) else "(end of input)"
            raise InputError(
                str(partial),
                lineno,
                f"id {ident!r} where the input has {expected!r}: not a run on this input",
            )
        done += 1
    return done


def _load_corrector(args: argparse.Namespace):
    # Nothing is fetched at run time; and our own progress bar is the only one the user needs.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    from neko.infer.corrector import Corrector

    hf_logging.disable_progress_bar()

    return Corrector.from_pretrained(args.model, mode=args.mode, threads=args.threads)


def _write(items: list[Item], out: IO[str], args: argparse.Namespace) -> None:
    """Correct ``items`` chunk by chunk, writing each chunk's records in input order."""
    from tqdm import tqdm

    corrector = _load_corrector(args) if any(it.error is None for it in items) else None
    chunk = max(1, args.batch_size) * 4
    with tqdm(total=len(items), file=sys.stderr, disable=None, unit="rec", desc="correct") as bar:
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            good = [it for it in part if it.error is None]
            fixes = iter(
                corrector.correct_many([it.record for it in good], batch_size=args.batch_size) if good else []
            )
            for item in part:
                if item.error is not None:
                    print(f"neko correct: skipped {item.error}", file=sys.stderr)
                line = output_record(item, None if item.error is not None else next(fixes))
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
            out.flush()
            if out is not sys.stdout:
                os.fsync(out.fileno())
            bar.update(len(part))


def correct_file(args: argparse.Namespace) -> int:
    """Run ``neko correct`` with parsed arguments; returns the exit code (bad input raises InputError)."""
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    _, items = read_items(args.input, args.format, args.task)
    if args.on_error == "stop":
        for item in items:
            if item.error is not None:
                raise item.error
    if args.output == "-":
        if args.resume:
            raise ConfigError("--resume needs an output file (-o OUTPUT), not stdout")
        _write(items, sys.stdout, args)
        return 0
    final = Path(args.output)
    partial = final.with_name(final.name + ".partial")
    done = 0
    if partial.exists():
        if not args.resume:
            raise NekoError(f"{partial} holds an interrupted run: add --resume to continue it, or delete it")
        done = read_partial(partial, items)
    elif args.resume and final.exists():
        print(f"neko correct: {final} is complete; nothing to resume", file=sys.stderr)
        return 0
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "a" if done else "w", encoding="utf-8") as out:
        _write(items[done:], out, args)
    os.replace(partial, final)
    return 0

"""``neko correct``: lossless, resumable correction of a file (or stdin) into JSONL.

Guarantees:

- one output record per input record, in input order: ``{id, text, fallback, mode, task, ...}``, or for a
  bad input under ``--on-error skip`` ``{id, text: null, error, line}``;
- bad input under the default ``--on-error stop``: the whole input is read and checked before the model
  loads; the first bad record ends the run with one line naming file and line and exit code 2, and nothing
  is written; suspicious but valid input (no records, empty hypotheses, NaN scores) is one warning line;
- the output path is checked before the model loads: the input itself, a folder, or a place that cannot
  be written is one line and exit code 2;
- the output grows in ``OUTPUT.partial`` (flushed and synced after each batch) and is renamed to
  ``OUTPUT`` at the end, so ``OUTPUT`` is always complete; a run that fails before its first record
  leaves no partial file. ``--resume`` continues a killed run from its partial file, whose ids must be a
  prefix of the input's (a half-written last line is dropped and redone), and only with the settings it
  was started with (model, mode, task, format: kept in ``OUTPUT.partial.run.json`` while it runs);
- stderr says what happens: the model loading (and the one-time conversion of its base, with the cache
  folder), a progress bar per batch with records/s and ETA, and a summary line at the end.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal, get_args

from neko.errors import ConfigError, InputError, NekoError, unknown_choice
from neko.fileio import check_output, cut_torn_line, remove_quietly, write_error
from neko.readers import Item, read_items
from neko.readers.checks import input_warnings, warn_all

RUN_SUFFIX = ".run.json"
OnError = Literal["stop", "skip"]
ON_ERROR: tuple[str, ...] = get_args(OnError)


@dataclass
class CorrectOptions:
    """What ``correct_file`` does; ``neko correct`` builds it from its options, whose defaults these are.

    Attributes:
        input: input file, or ``-`` for stdin.
        output: output JSONL, or ``-`` for stdout; must not be the input.
        format: ``auto`` (by extension, else by content) or one of ``neko.readers.FORMATS``.
        task: task of inputs that do not name one (text format: asr).
        model: model folder or name (None: the bundled model).
        mode: one of ``neko.infer.config.MODES``.
        batch_size: records per model batch; the output is written after each.
        max_batch_tokens: token budget of a model batch (``InferConfig.max_batch_tokens``); 0: none.
        resume: continue a killed run of the same settings from ``OUTPUT.partial``.
        on_error: a bad input record stops the run before anything is written (``stop``), or becomes an
            error record (``skip``).
        threads: torch CPU threads (None: all cores).
    """

    input: str = "-"
    output: str = "-"
    format: str = "auto"
    task: str | None = None
    model: str | None = None
    mode: str = "auto"
    batch_size: int = 16
    max_batch_tokens: int = 4096
    resume: bool = False
    on_error: OnError = "stop"
    threads: int | None = None


def output_record(item: Item, correction: Any = None) -> dict[str, Any]:
    """The output line of one input item: its correction, or its error."""
    if item.error is not None:
        return {"id": item.id, "text": None, "error": item.error.message, "line": item.where}
    return {"id": item.id, **correction.to_dict()}


def read_partial(partial: Path, items: list[Item], mode: str | None = None) -> list[dict[str, Any]]:
    """The output records ``partial`` already holds; checks that they are the input's first ones (and,
    given ``mode``, that they were made in that mode).

    A last line without its newline (the run died while writing it) is cut off, and redone.
    """
    complete = cut_torn_line(partial)
    records: list[dict[str, Any]] = []
    for lineno, raw in enumerate(complete.splitlines(), start=1):
        done = len(records)
        try:
            record = json.loads(raw)
            ident = record["id"]
        except (ValueError, KeyError, TypeError):
            raise InputError(str(partial), lineno, "not an output record of `neko correct`") from None
        if done >= len(items) or ident != items[done].id:
            expected = items[done].id if done < len(items) else "(end of input)"
            raise InputError(
                str(partial),
                lineno,
                f"id {ident!r} where the input has {expected!r}: not a run on this input",
            )
        if mode is not None and record.get("mode", mode) != mode:
            raise InputError(
                str(partial), lineno, f"made with --mode {record['mode']}, this run asks for --mode {mode}"
            )
        records.append(record)
    return records


def run_settings(args: CorrectOptions, fmt: str) -> dict[str, str | None]:
    """The settings a resumed run must share with the run it continues."""
    return {
        "model": str(Path(args.model).resolve()) if args.model else "(bundled)",
        "mode": args.mode,
        "task": args.task,
        "format": fmt,
    }


def check_resumable(sidecar: Path, partial: Path, settings: dict[str, str | None]) -> None:
    """NekoError when the interrupted run of ``partial`` was started with other settings."""
    if not sidecar.is_file():
        return  # a partial file without settings (an older neko): the id and mode checks still apply
    try:
        saved = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise NekoError(f"{sidecar} is unreadable: delete it and {partial} to start over") from None
    changed = [
        f"--{key} {saved.get(key)} (this run: {value})"
        for key, value in settings.items()
        if saved.get(key) != value
    ]
    if changed:
        raise NekoError(
            f"{partial} was started with {', '.join(changed)}: resume with the same options, or delete it"
        )


@dataclass
class Summary:
    """What a run wrote, for the last line on stderr."""

    written: int = 0
    changed: int = 0
    unchanged: int = 0
    fallback: int = 0
    errors: int = 0
    warnings: int = 0

    def add(self, item: Item, text: str | None, fallback: bool = False) -> None:
        """Count one output record (``text`` None: an error record); "changed" compares ``text`` with the
        first hypothesis after the task's normaliser."""
        from neko.infer.guard import changes_first

        self.written += 1
        if text is None or item.record is None:
            self.errors += 1
            return
        if changes_first(text, item.record.hypotheses[:1], item.record.task):
            self.changed += 1
        else:
            self.unchanged += 1
        self.fallback += fallback

    def line(self, output: str, seconds: float) -> str:
        """The summary line (without the ``neko correct:`` prefix)."""
        return (
            f"wrote {self.written} records to {output} in {seconds:.1f} s: {self.changed} changed, "
            f"{self.unchanged} left as they were ({self.fallback} by a guard fallback), "
            f"{self.errors} errors, {self.warnings} warnings"
        )


def say(message: str) -> None:
    """One line of ``neko correct`` on stderr."""
    print(f"neko correct: {message}", file=sys.stderr, flush=True)


def _base_to_convert(model: str | None) -> Path | None:
    """The cache folder the model's packaged base will be converted into before it loads, if any."""
    from neko.infer.corrector import DEFAULT_MODEL_DIR
    from neko.model.base import pending_conversion

    folder = Path(model) if model else DEFAULT_MODEL_DIR
    try:
        if not (folder / "adapter_config.json").is_file():
            return None  # an export carries its weights; no base to build
        base = json.loads((folder / "neko_config.json").read_text())["model"]["base"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # the loader reports a broken folder itself
    return pending_conversion(base)


def load_corrector(args: CorrectOptions):
    """The corrector of ``--model``, saying on stderr what is loaded and what the first use converts.

    Nothing is fetched at run time, and transformers' own loading bar and deprecation notices stay quiet:
    our progress bar and summary are what the user reads.
    """
    import warnings

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    from neko.infer.corrector import DEFAULT_MODEL_DIR, Corrector

    started = time.monotonic()
    target = _base_to_convert(args.model)
    if target is not None:
        say(f"first use: converting the packaged base model into {target} (once, about 90 s)")
    say(f"loading model {args.model or DEFAULT_MODEL_DIR}")
    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning
            )
            corrector = Corrector.from_pretrained(args.model, mode=args.mode, threads=args.threads)
        corrector.config = replace(corrector.config, max_batch_tokens=args.max_batch_tokens or None)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    say(f"model loaded in {time.monotonic() - started:.1f} s")
    return corrector


class Writer:
    """Corrects items batch by batch and writes each batch's records in input order to ``out``."""

    def __init__(self, args: CorrectOptions, out: IO[str], summary: Summary, name: str) -> None:
        self.args = args
        self.out = out
        self.summary = summary
        self.name = name  # the file being written, for write errors

    def write(self, items: list[Item], total: int, done: int = 0) -> None:
        """Correct and write ``items`` (the last ``total - done`` of the input)."""
        import warnings

        from tqdm import tqdm

        corrector = load_corrector(self.args) if any(it.error is None for it in items) else None
        size = self.args.batch_size
        bar = tqdm(total=total, initial=done, file=sys.stderr, disable=None, unit="rec", desc="correct")
        with bar, warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning
            )
            for start in range(0, len(items), size):
                part = items[start : start + size]
                good = [it for it in part if it.error is None]
                fixes = iter(
                    corrector.correct_many([it.record for it in good], batch_size=size) if good else []
                )
                lines = []
                for item in part:
                    correction = None if item.error is not None else next(fixes)
                    if item.error is not None:
                        say(f"skipped {item.error}")
                    if correction is None:
                        self.summary.add(item, None)
                    else:
                        self.summary.add(item, correction.text, correction.fallback)
                    lines.append(json.dumps(output_record(item, correction), ensure_ascii=False) + "\n")
                if self.out is sys.stdout:
                    # On a terminal the bar (stderr) is cleared while records go to stdout: no shared lines.
                    with bar.external_write_mode(file=sys.stdout):
                        self._emit("".join(lines))
                else:
                    self._emit("".join(lines))
                bar.update(len(part))

    def _emit(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
            if self.out is not sys.stdout:
                os.fsync(self.out.fileno())
        except OSError as exc:
            raise write_error(self.name, exc) from None


def correct_file(args: CorrectOptions) -> int:
    """Correct the file of ``args`` (``neko correct``); returns the exit code (bad input raises InputError)."""
    started = time.monotonic()
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if args.max_batch_tokens < 0:
        raise ConfigError("--max-batch-tokens must be at least 0 (0: no token budget)")
    if args.on_error not in ON_ERROR:
        raise unknown_choice("on-error", args.on_error, ON_ERROR)
    fmt, items = read_items(args.input, args.format, args.task)
    if args.on_error == "stop":
        for item in items:
            if item.error is not None:
                raise item.error
    summary = Summary()
    name = "<stdin>" if args.input == "-" else args.input
    summary.warnings = warn_all(input_warnings(name, items, duplicate_ids=False))
    if args.output == "-":
        if args.resume:
            raise ConfigError("--resume needs an output file (-o OUTPUT), not stdout")
        if items:
            Writer(args, sys.stdout, summary, "<stdout>").write(items, len(items))
        say(summary.line("<stdout>", time.monotonic() - started))
        return 0
    final = check_output(args.output, [args.input])
    if not items:
        say(
            f"nothing to correct; {final} was not written"
            + (" (it is left as it was)" if final.exists() else "")
        )
        return 0
    return _correct_into(final, fmt, items, args, summary, started)


def _correct_into(
    final: Path, fmt: str, items: list[Item], args: CorrectOptions, summary: Summary, started: float
) -> int:
    """Correct ``items`` into ``final`` through its partial file (see the module docstring)."""
    partial = final.with_name(final.name + ".partial")
    sidecar = partial.with_name(partial.name + RUN_SUFFIX)
    settings = run_settings(args, fmt)
    done = 0
    if partial.exists() and partial.stat().st_size == 0:
        remove_quietly(partial, sidecar)  # a start that failed before its first record: nothing to resume
    if partial.exists():
        if not args.resume:
            raise NekoError(f"{partial} holds an interrupted run: add --resume to continue it, or delete it")
        check_resumable(sidecar, partial, settings)
        earlier = read_partial(partial, items, args.mode)
        done = len(earlier)
        for item, record in zip(items, earlier, strict=False):
            summary.add(item, record.get("text"), bool(record.get("fallback")))
    elif args.resume and final.exists():
        say(f"{final} is complete; nothing to resume")
        return 0
    created = done == 0
    try:
        out = open(partial, "a" if done else "w", encoding="utf-8")  # noqa: SIM115 - closed below
        sidecar.write_text(json.dumps(settings) + "\n", encoding="utf-8")
    except OSError as exc:
        if created:
            remove_quietly(partial, sidecar)
        raise write_error(final, exc) from None
    try:
        with out:
            Writer(args, out, summary, str(partial)).write(items[done:], len(items), done)
    except BaseException:
        # A run that wrote nothing (the model did not load, Ctrl-C while loading) leaves nothing behind.
        if created and partial.exists() and partial.stat().st_size == 0:
            remove_quietly(partial, sidecar)
        raise
    try:
        os.replace(partial, final)
    except OSError as exc:
        raise write_error(final, exc) from None
    remove_quietly(sidecar)
    say(summary.line(str(final), time.monotonic() - started))
    return 0

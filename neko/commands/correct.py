"""``neko correct INPUT [-o OUTPUT]``: correct a file of recogniser outputs, one output record per input."""

from __future__ import annotations

import argparse

from neko.commands import default
from neko.infer.config import MODES
from neko.infer.files import ON_ERROR, CorrectOptions
from neko.readers import FORMATS

HELP = "correct n-best lists / OCR lines / sentences from a file or stdin; writes JSONL {id, text, fallback}"

DESCRIPTION = f"""{HELP}.

input formats (--format auto picks by extension, else by the first character):
  jsonl       one record a line: {{"id", "hypotheses": [best first, ...], "task"?, "source"?, ...}}
  hyporadise  a HyPoradise JSON array ({{"input": [n-best], "output": reference, ...}}), task asr
  text        one input a line; the hypotheses of an n-best list separated by |||

modes:
  auto        generate a correction, then a guard keeps it only when it stays close to the hypotheses
              (and, when calibrated, when the model prefers it to the first hypothesis by a margin);
              otherwise the first hypothesis is returned with "fallback": true. The default.
  generate    the generated text as is (batched greedy/beam decoding): fastest free-form output
  select      score every hypothesis and return the best one: never writes a word that no
              hypothesis has
  constrained ASR: beam search over the paths of the n-best's confusion network, scored by the
              model: recombines words across hypotheses, never writes a word that no hypothesis
              has; OCR: the same over the line's spelling lattice (each word, or a dictionary word
              a few edits away); other tasks: select

stderr: warnings about suspicious input, model loading, a progress bar, and a summary line (records
written, changed, left as they were, fell back, errors, seconds, output path). Bad input stops before
anything is written, with one line naming file and line and exit code 2.

examples:
  neko correct examples/asr_nbest.jsonl
  neko correct ../shared/data/hyporadise/test_chime4.json -o chime4.out.jsonl --mode select
  cat lines.txt | neko correct --format text --task ocr
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """INPUT, -o, --format, --task, --model, --mode, --batch-size, --resume, --on-error, --threads."""
    parser.add_argument(
        "input",
        nargs="?",
        default=default(CorrectOptions, "input"),
        help="input file, or - for stdin (default)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=default(CorrectOptions, "output"),
        help="output JSONL (default: stdout); must not be the input",
    )
    parser.add_argument(
        "--format",
        default=default(CorrectOptions, "format"),
        choices=["auto", *FORMATS],
        help="input format (default auto: .jsonl, .json = hyporadise, .txt = text; else by content)",
    )
    parser.add_argument(
        "--task",
        default=default(CorrectOptions, "task"),
        help="task of inputs that do not name one (text format: asr)",
    )
    parser.add_argument(
        "--model",
        default=default(CorrectOptions, "model"),
        help="model folder or name (default: the bundled model)",
    )
    parser.add_argument(
        "--mode",
        default=default(CorrectOptions, "mode"),
        choices=MODES,
        help="auto (default): generate, guarded; generate: as generated; select: best hypothesis; "
        "constrained: best confusion-network (ASR) or spelling-lattice (OCR) path (see modes above)",
    )
    _add_run_options(parser)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """--batch-size, --max-batch-tokens, --resume, --on-error, --threads: how the run goes, not what it computes."""
    parser.add_argument(
        "--batch-size",
        type=int,
        default=default(CorrectOptions, "batch_size"),
        help="records per model batch; the output is written and the progress shown after each (default %(default)s)",
    )
    parser.add_argument(
        "--max-batch-tokens",
        type=int,
        default=default(CorrectOptions, "max_batch_tokens"),
        help="token budget of a model batch: rows x (prompt + new tokens of its longest row) stay within it, "
        "so long inputs (MT) run in smaller batches and memory stays bounded; 0: --batch-size alone "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed run of the same command (same input, model, mode and task) from OUTPUT.partial",
    )
    parser.add_argument(
        "--on-error",
        default=default(CorrectOptions, "on_error"),
        choices=ON_ERROR,
        help="bad input record: stop before writing anything (default), or skip it and write an error "
        "record {id, text: null, error, line} in its place",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=default(CorrectOptions, "threads"),
        help="torch CPU threads (default: all cores)",
    )


def run(args: argparse.Namespace) -> int:
    """Correct the file (``neko.infer.files.correct_file``)."""
    from dataclasses import fields

    from neko.infer.files import correct_file

    return correct_file(CorrectOptions(**{f.name: getattr(args, f.name) for f in fields(CorrectOptions)}))

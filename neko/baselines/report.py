"""``neko baselines``: the non-neural baselines and oracles of a record file, one row per dataset.

Rows hold fractions for WER/CER (0.083) and sacrebleu's 0-100 scale for BLEU/chrF/GLEU, plus ``normalizer``
and ``signature``. Per task:

- asr: ``wer_1best``, ``wer_oracle_nbest`` (o_nb), ``wer_oracle_compositional`` (o_cp), ``wer_rover``.
- mt: ``bleu_1best``/``chrf_1best`` (first candidate), ``bleu_mbr``/``chrf_mbr`` (chrF MBR),
  ``bleu_oracle_nbest``/``chrf_oracle_nbest`` (per segment the candidate of best sentence chrF against the
  references), ``bleu_best_system`` and ``best_system`` (the single candidate position, i.e. system, of best
  corpus BLEU, named from ``meta["systems"]`` when the records carry it).
- ocr: ``cer_raw``/``wer_raw`` (the OCR text as is), and ``cer_oracle_nbest`` when a record has several.
- gec: ``gleu_source`` (the uncorrected sentences as output).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

from neko.baselines import outputs
from neko.errors import InputError
from neko.metrics import ERROR_RATES, score_corpus
from neko.metrics.normalizers import get_normalizer
from neko.readers import read_checked
from neko.records import Record


def group_by_dataset(path: str | os.PathLike, *, unique_ids: bool = False) -> dict[str, list[Record]]:
    """Records of ``path`` grouped by dataset (file order); each dataset must have one task and references.

    ``path`` is any input of ``neko correct`` (JSONL records, HyPoradise JSON), read by the same reader
    (``neko.readers``), so the ids match the outputs of ``neko correct`` on that file. ``unique_ids``: a
    repeated id is an error (else a warning: each copy counts in the scores).
    """
    groups: dict[str, list[Record]] = {}
    for index, record in enumerate(read_checked(path, unique_ids=unique_ids, empty_ok=False), start=1):
        if not record.references:
            raise InputError(
                str(path), index, f"record {record.id!r} has no reference: it cannot be scored", unit="record"
            )
        group = groups.setdefault(record.dataset, [])
        if group and group[0].task != record.task:
            raise InputError(
                str(path),
                index,
                f"dataset {record.dataset!r} mixes tasks {group[0].task} and {record.task}",
                unit="record",
            )
        group.append(record)
    if not groups:
        raise InputError(str(path), None, "no records")
    return groups


@contextlib.contextmanager
def scoring(path: str | os.PathLike, dataset: str) -> Iterator[None]:
    """Turn a metric that is undefined on this data (e.g. every reference empty, so WER has no
    denominator) into a one-line InputError naming the file and the dataset."""
    try:
        yield
    except ValueError as exc:
        raise InputError(str(path), None, f"dataset {dataset!r} cannot be scored: {exc}") from None


def _normalized(records: Sequence[Record], normalize) -> list[Record]:
    return [
        Record(
            id=r.id,
            task=r.task,
            dataset=r.dataset,
            hypotheses=[normalize(h) for h in r.hypotheses],
            scores=r.scores,
            source=None if r.source is None else normalize(r.source),
            references=[normalize(t) for t in r.references],
            meta=r.meta,
        )
        for r in records
    ]


def _asr_row(records: list[Record]) -> dict[str, Any]:
    refs = [r.references[0] for r in records]
    row: dict[str, Any] = {}
    for name, choose in (
        ("1best", outputs.one_best),
        ("oracle_nbest", outputs.oracle_nbest),
        ("oracle_compositional", outputs.oracle_compositional),
        ("rover", outputs.rover),
    ):
        scored = score_corpus("asr", choose(records), refs, "none")
        row[f"wer_{name}"] = scored["wer"]
        row["signature"] = scored["signature"]
    row["ref_words"] = scored["wer_counts"]["reference"]
    return row


def _mt_row(records: list[Record]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, choose in (
        ("1best", outputs.one_best),
        ("mbr", outputs.mbr_chrf),
        ("oracle_nbest", outputs.oracle_chrf),
    ):
        scored = score_corpus("mt", choose(records), records, "none")
        row[f"bleu_{name}"], row[f"chrf_{name}"] = scored["bleu"], scored["chrf"]
        row["signature"] = scored["signature"]
    if len({len(r.hypotheses) for r in records}) == 1:
        _, name, bleu = outputs.best_system(records, "none")
        row["bleu_best_system"], row["best_system"] = bleu, name
    return row


def _ocr_row(records: list[Record]) -> dict[str, Any]:
    scored = score_corpus("ocr", outputs.one_best(records), records, "none")
    row: dict[str, Any] = {"cer_raw": scored["cer"], "wer_raw": scored["wer"]}
    if any(len(r.hypotheses) > 1 for r in records):
        row["cer_oracle_nbest"] = score_corpus("ocr", outputs.oracle_cer(records), records, "none")["cer"]
    row["signature"] = scored["signature"]
    return row


def _gec_row(records: list[Record]) -> dict[str, Any]:
    scored = score_corpus("gec", outputs.one_best(records), records, "none")
    return {"gleu_source": scored["gleu"], "signature": scored["signature"]}


_ROWS = {"asr": _asr_row, "mt": _mt_row, "ocr": _ocr_row, "gec": _gec_row}


def baseline_rows(path: str | os.PathLike, normalizer: str = "none") -> list[dict[str, Any]]:
    """One row of baselines per dataset of the record file ``path``, texts normalised by ``normalizer`` first."""
    normalize = get_normalizer(normalizer)
    rows = []
    for dataset, records in group_by_dataset(path).items():
        task = records[0].task
        row: dict[str, Any] = {"dataset": dataset, "task": task, "n": len(records)}
        with scoring(path, dataset):
            row.update(_ROWS[task](_normalized(records, normalize)))
        row["normalizer"] = normalizer
        row["signature"] = row.pop("signature")
        rows.append(row)
    return rows


def _cell(key: str, value: Any) -> str:
    if isinstance(value, float):
        # Error rates are stored as fractions and shown as percentages; BLEU-like scores are already 0-100.
        return f"{100 * value:.2f}%" if key.split("_")[0] in ERROR_RATES else f"{value:.2f}"
    return str(value)


def format_rows(rows: Sequence[dict[str, Any]], as_json: bool = False) -> str:
    """Rows as one JSON object per line, or as one aligned table per task (signatures listed under it)."""
    if as_json:
        return "\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
    blocks = []
    for task in dict.fromkeys(row["task"] for row in rows):
        group = [row for row in rows if row["task"] == task]
        keys = [k for k in dict.fromkeys(k for row in group for k in row) if k not in ("task", "signature")]
        table = [keys] + [[_cell(k, row.get(k, "")) for k in keys] for row in group]
        widths = [max(len(line[c]) for line in table) for c in range(len(keys))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table
        ]
        signatures = sorted({row["signature"] for row in group if row.get("signature")})
        blocks.append("\n".join([f"[{task}]", *lines, *(f"signature: {s}" for s in signatures)]))
    return "\n\n".join(blocks)

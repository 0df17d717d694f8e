"""Resumable generation: results are appended to a partial JSONL as they arrive, then written out in plan order.

A killed run leaves at most one torn line, which ``read_partial`` cuts off; the next run skips every id already
in the partial file. Items that produced nothing are kept as ``{"id": ..., "skipped": reason}`` lines so that
they are counted and reported rather than silently retried or dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from neko.fileio import cut_torn_line
from neko.records import Record, validate, write_records


def read_partial(path: Path) -> dict[str, dict]:
    """Lines already written (id -> object); a torn last line from a killed run is cut off the file (a complete
    line that is not JSON is no torn line but a damaged file: an error, not silently dropped)."""
    done: dict[str, dict] = {}
    if path.exists():
        for raw in cut_torn_line(path).splitlines():
            obj = json.loads(raw)
            done[obj["id"]] = obj
    return done


def append_results(
    paths: dict[str, Path], results: Iterable[list[dict]], key: Callable[[dict], str]
) -> Iterator[tuple[str, dict]]:
    """Append each result line to the partial file chosen by ``key(line)``, flushing per line; yields them."""
    handles = {}
    for name, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        handles[name] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in finally
    try:
        for lines in results:
            for line in lines:
                name = key(line)
                handles[name].write(json.dumps(line, ensure_ascii=False) + "\n")
                handles[name].flush()
                yield name, line
    finally:
        for handle in handles.values():
            handle.close()


def finalize_records(
    plan_ids: list[str], done: dict[str, dict], path: Path
) -> tuple[list[Record], list[str]]:
    """Write the finished planned ids in plan order to ``path``; returns the records and the skipped ids."""
    records, skipped = [], []
    for uid in plan_ids:
        line = done.get(uid)
        if line is None:
            continue
        if "skipped" in line:
            skipped.append(uid)
        else:
            records.append(validate(line))
    write_records(path, records)
    return records, skipped

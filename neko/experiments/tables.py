"""Render ``results/<table>/<row>.json`` into ``docs/RESULTS.md`` and one PNG plot per table.

Rendering is a pure function of the result files (no dates, no timings except in the efficiency table, whose
figures are measurements by nature), so a second ``make tables`` writes the same file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neko.metrics import ERROR_RATES, TASK_METRICS

# Error rates are stored as fractions and shown as percent; quoted figures are stored as printed.
PERCENT = ERROR_RATES
PREFIXES = ("hyporadise_", "wmt23_", "overproof_", "jfleg_")
# Prefixes whose datasets keep the collection's name in their label (``dataset3`` alone names nothing).
NAMED = {"overproof_": "Overproof"}


@dataclass(frozen=True)
class TableSpec:
    """How one table reads: its title, what it shows, and which metrics are its columns."""

    title: str
    about: str
    metrics: tuple[str, ...] | None = None  # None: each dataset's task's first metric


TABLES: dict[str, TableSpec] = {
    "hyporadise": TableSpec(
        "1. HyPoradise ASR correction: corpus WER (%)",
        "The default model trains on part of HyPoradise's ATIS *train* file (configs/neko-tiny.yaml; the bundled run: its GPU version, configs/gpu/neko-tiny-h200.yaml), so ATIS is "
        "in domain for it; no other HyPoradise data is used in training (zero-shot). Lower is better. o_nb and "
        "o_cp use the reference (oracles, upper bounds of selection and of recombination).",
        ("wer",),
    ),
    "wmt23": TableSpec(
        "2. WMT23 X->en fusion of system outputs: BLEU / chrF",
        "Candidates are the outputs of the WMT23 systems of each segment. 'Best single system' picks the system "
        "with the best corpus BLEU on the same segments (an oracle choice). Higher is better.",
        ("bleu", "chrf"),
    ),
    "ocr": TableSpec(
        "3. OCR post-correction: CER / WER (%)",
        "Raw OCR output against the corrected output. Lower is better.",
        ("cer", "wer"),
    ),
    "gec": TableSpec(
        "4. Grammar correction: JFLEG test GLEU", "GLEU against 4 references. Higher is better.", ("gleu",)
    ),
    "ablation": TableSpec(
        "5. Routing ablation (same data, same training budget)",
        "Each column shows its task's main metric (WER/CER %: lower is better; BLEU/GLEU: higher is better).",
    ),
}


def load_results(results_dir: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """Every result file, grouped by table, each table's rows in their configured order."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(results_dir).glob("*/*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        if "table" in result:
            tables.setdefault(result["table"], []).append(result)
    for rows in tables.values():
        rows.sort(key=lambda r: (r["config"].get("order", 0), r["row"]))
    return tables


def _label(dataset: str) -> str:
    """A dataset's column name: its benchmark prefix dropped, except where the rest would not say whose
    data it is (``overproof_dataset3`` -> ``Overproof dataset3``)."""
    for prefix in PREFIXES:
        if dataset.startswith(prefix):
            rest = dataset[len(prefix) :]
            return f"{NAMED[prefix]} {rest}" if prefix in NAMED else rest
    return dataset


def _columns(spec: TableSpec, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(dataset, metric) pairs in the order the rows first name them (rows not scored yet name none)."""
    columns: list[tuple[str, str]] = []
    for row in rows:
        for dataset, cell in row["datasets"].items():
            metrics = spec.metrics or ((TASK_METRICS[cell["task"]][0],) if "task" in cell else ())
            for metric in metrics:
                if (dataset, metric) not in columns:
                    columns.append((dataset, metric))
    if spec.metrics is None:
        # Quoted rows carry no task: their datasets share the measured rows' columns.
        columns = [c for c in columns if c[1]]
    return columns


def cell_value(row: dict[str, Any], dataset: str, metric: str) -> float | None:
    """The figure a table prints for one row and column (percent for error rates), or None."""
    cell = row["datasets"].get(dataset) or {}
    if "skipped" in cell:
        return None
    if row.get("quoted"):
        # A quoted figure keyed "dataset:metric" names its metric; a bare "dataset" is the table's first one.
        keyed = row["datasets"].get(f"{dataset}:{metric}")
        first = (TABLES[row["table"]].metrics or (metric,))[0] if row["table"] in TABLES else metric
        return keyed["value"] if keyed else (cell.get("value") if metric == first else None)
    value = cell.get(metric)
    if value is None or not isinstance(value, (int, float)):
        return None
    return 100 * value if metric in PERCENT else value


def render_table(name: str, rows: list[dict[str, Any]]) -> str:
    """One table as Markdown, with the row notes, the quoted sources and the subset size under it."""
    spec = TABLES.get(name, TableSpec(name, ""))
    columns = _columns(spec, [r for r in rows if not r.get("quoted")]) or _columns(spec, rows)
    multi = len({m for _, m in columns}) > 1
    header = ["row"] + [f"{_label(d)} {m.upper()}" if multi else _label(d) for d, m in columns]
    lines = [f"### {spec.title}", "", spec.about, "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    notes, sizes = [], set()
    limits = sorted({str(r.get("limit")) for r in rows if not r.get("quoted")})
    for row in rows:
        label = row["row"] + (" (quoted)" if row.get("quoted") else "")
        if len(limits) > 1 and not row.get("quoted"):  # rows scored on subsets of different sizes say which
            label += f" [LIMIT={row.get('limit')}]"
        cells = []
        for dataset, metric in columns:
            value = cell_value(row, dataset, metric)
            cells.append("-" if value is None else f"{value:.2f}")
            cell = row["datasets"].get(dataset, {})
            if "n" in cell:
                sizes.add((_label(dataset), cell["n"]))
        lines.append("| " + " | ".join([label, *cells]) + " |")
        config = row["config"]
        if row.get("quoted") and config.get("source"):
            notes.append(f"- {row['row']}: quoted from {config['source']}")
        if config.get("note"):
            notes.append(f"- {row['row']}: {config['note']}")
        skipped: dict[str, list[str]] = {}
        for dataset, cell in row["datasets"].items():
            if "skipped" in cell:
                skipped.setdefault(cell["skipped"], []).append(_label(dataset))
        for reason, names in skipped.items():
            notes.append(f"- {row['row']}: not scored on {', '.join(names)} ({reason})")
        for dataset, cell in row["datasets"].items():
            if cell.get("fallbacks"):
                notes.append(
                    f"- {row['row']}: {_label(dataset)}: guard fell back on {cell['fallbacks']} items"
                )
    lines.append("")
    if sizes:
        per = ", ".join(f"{d} {n}" for d, n in sorted(sizes))
        lines.append(f"Items scored per dataset: {per}.")
    if limits:
        mixed = " per row: each draws its own seeded subset" if len(limits) > 1 else ""
        lines.append(f"Subset: LIMIT={', '.join(limits)}{mixed} (seeded; None = every item).")
    signatures = sorted(
        {c.get("signature") for r in rows for c in r["datasets"].values() if c.get("signature")}
    )
    normalizers = sorted(
        {c.get("normalizer") for r in rows for c in r["datasets"].values() if c.get("normalizer")}
    )
    if normalizers:
        lines.append(f"Normaliser: {', '.join(normalizers)}. Signature: {' / '.join(signatures)}.")
    return "\n".join(lines + ([""] + notes if notes else []) + [""])


def _figure(value: Any) -> str:
    """A benchmark figure as shown: floats to 3 decimals, the rest as text."""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _benchmarks(results_dir: str | os.PathLike) -> list[tuple[str, dict[str, Any]]]:
    """``(benchmark name, its JSON)`` of each file in ``results/efficiency/``, by name."""
    return [
        (path.stem, json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(Path(results_dir, "efficiency").glob("*.json"))
    ]


def render_efficiency(benches: list[tuple[str, dict[str, Any]]]) -> str:
    """Table 6 from the benchmark scripts' JSON files (``_benchmarks``; measured, so it varies)."""
    if not benches:
        return ""
    lines = [
        "### 6. Efficiency",
        "",
        "Measured by the benchmark scripts named below (timings vary run to run).",
        "",
    ]
    lines += ["| benchmark | figure | value |", "|---|---|---|"]
    commands = []
    for name, bench in benches:
        for key, value in bench.get("summary", {}).items():
            if isinstance(value, dict):  # e.g. corrections_per_s: one row per way
                for sub, sub_value in value.items():
                    lines.append(f"| {name} | {key}: {sub} | {_figure(sub_value)} |")
            else:
                lines.append(f"| {name} | {key} | {_figure(value)} |")
        if bench.get("command"):
            commands.append(f"- {name}: `{bench['command']}`")
    return "\n".join(lines + [""] + commands + [""])


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: str | os.PathLike) -> Path:
    """Lay ``fig`` out tightly and write it as a PNG (no software stamp, so reruns give the same bytes), close
    it, return the path."""
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
    return out


def _ratios(benches: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, float]]:
    """``(benchmark: figure, value)`` of every ratio of the benchmark files (figures named ``*ratio*`` or
    ``*speedup*``): the comparisons against the naive way that the efficiency plot shows."""
    return [
        (f"{name}: {key}", float(value))
        for name, bench in benches
        for key, value in bench.get("summary", {}).items()
        if ("ratio" in key or "speedup" in key) and isinstance(value, (int, float))
    ]


def plot_efficiency(benches: list[tuple[str, dict[str, Any]]], out: str | os.PathLike) -> Path | None:
    """Horizontal bars of the benchmark ratios (``_ratios``) against 1 (= the naive way) saved as a PNG."""
    ratios = _ratios(benches)
    if not ratios:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(ratios) + 1.5))
    ax.barh([name for name, _ in ratios], [value for _, value in ratios])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("ratio against the naive way (1 = same)")
    ax.set_title("Efficiency: measured ratios of the benchmark scripts", fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    return _save(fig, out)


def plot_table(name: str, rows: list[dict[str, Any]], out: str | os.PathLike) -> Path | None:
    """Grouped bars (one group per column, one bar per row; quoted rows hatched) saved as a PNG."""
    plt = _pyplot()
    spec = TABLES.get(name, TableSpec(name, ""))
    columns = _columns(spec, [r for r in rows if not r.get("quoted")]) or _columns(spec, rows)
    if not columns:
        return None
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(columns) + 2), 4))
    for k, row in enumerate(rows):
        values = [cell_value(row, d, m) for d, m in columns]
        xs = [i + k * width for i, v in enumerate(values) if v is not None]
        ys = [v for v in values if v is not None]
        ax.bar(xs, ys, width, label=row["row"], hatch="//" if row.get("quoted") else None)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(columns))])
    multi = len({m for _, m in columns}) > 1
    ax.set_xticklabels([f"{_label(d)}\n{m}" if multi else _label(d) for d, m in columns], fontsize=8)
    ax.set_title(spec.title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, out)


def render_results(results_dir: str | os.PathLike, out: str | os.PathLike, command: str) -> Path:
    """Write docs/RESULTS.md (and docs/plots/<table>.png) from every result file."""
    out = Path(out)
    tables = load_results(results_dir)
    parts = [
        "# Results",
        "",
        f"Regenerate with `{command}` (each table is rebuilt from `results/<table>/<row>.json`, each result from "
        "`configs/experiments/<table>/<row>.yaml`; make reruns only what is stale).",
        "",
    ]
    machines = sorted({r["machine"] for rows in tables.values() for r in rows if r.get("machine")})
    if machines:
        parts += [f"Measured on: {'; '.join(machines)}.", ""]
    for name in [*TABLES, *sorted(set(tables) - set(TABLES))]:
        if name not in tables:
            continue
        parts.append(render_table(name, tables[name]))
        plot = plot_table(name, tables[name], out.parent / "plots" / f"{name}.png")
        if plot:
            parts += [f"![{name}](plots/{plot.name})", ""]
    benches = _benchmarks(results_dir)
    parts.append(render_efficiency(benches))
    plot = plot_efficiency(benches, out.parent / "plots" / "efficiency.png")
    if plot:
        parts += [f"![efficiency](plots/{plot.name})", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts).rstrip() + "\n", encoding="utf-8")
    return out

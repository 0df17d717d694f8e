"""Per-domain figures of the one-hypothesis fusion weights (``FusionWeights.single``) under three rules.

    python3 eval/fit_one_hypothesis.py ~/.cache/neko/generated/ocr_*.dev.jsonl --limit 400 --threads 2

Cuts the dev records to their first hypothesis, without scores, as ``neko calibrate`` does for
``FusionWeights.single``, builds their candidate sets once with the bundled model (generation and the
extra candidates; cached in ``--cache``, ~17 min for the 1,182 OCR dev lines at 2 threads) and prints, per
dev domain, the first hypotheses' figure and the picks of:

- ``pooled``: the weights ``neko calibrate`` fits (on the pool), with each domain's bootstrap share and
  whether they serve every domain (``_serves_every_domain``, the rule that keeps or refuses them);
- ``penalised``: a search whose objective adds a large penalty for each domain's excess over its first
  hypotheses (no domain made worse: ``neko.infer.calibrate._no_domain_worse``, which ``neko calibrate`` now
  tries where the pooled weights are refused), with the same shares and test;
- ``held_out``: the unseen-domain rule (``_fit_elsewhere``: no generated text, each domain held out in
  turn) and whether it keeps the weights;
- ``nonword`` / ``nonword_penalised``: the pooled / penalised fit on sets cut to the line and the spelling-lattice paths that replace only
  non-dictionary words (no generated text, no real word swapped: classic non-word correction), with the
  same shares and test (the cached sets hold the lattice's best paths, so this is a lower bound of what a
  lattice of non-words alone would offer).

For error-rate tasks (ASR WER, OCR CER). Prints one JSON object. Figures in docs/TRAINING.md ("Why it was refused, per severity").
"""

from __future__ import annotations

import argparse
import json
import pickle
from dataclasses import replace
from pathlib import Path

from neko.infer.fusion import CandidateSet


def main() -> None:
    """Build or load the candidate sets, fit under each rule, print the figures."""
    from neko.infer.calibrate import (
        _by_domain,
        _candidates,
        _fit_elsewhere,
        _fit_fusion,
        _no_domain_worse,
        _objective,
        _part_scorer,
        _picks,
        _serves_every_domain,
        _vouch_by_domain,
        read_dev,
    )
    from neko.infer.fusion import EXTRA_SOURCES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dev", nargs="+", help="dev files of one task (with references)")
    parser.add_argument("--limit", type=int, default=400, help="records per file (seeded pick)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--cache", type=Path, default=Path("~/.cache/neko/exp/one_hypothesis.pkl").expanduser()
    )
    args = parser.parse_args()

    sources = tuple(EXTRA_SOURCES)
    if args.cache.is_file():
        records, sets = pickle.loads(args.cache.read_bytes())
    else:
        from neko.infer.corrector import Corrector

        by_task, _ = read_dev(args.dev, limit=args.limit)
        (task_records,) = by_task.values()
        records = [replace(r, hypotheses=r.hypotheses[:1], scores=None) for r in task_records]
        corrector = Corrector.from_pretrained(threads=args.threads)
        _, _, sets = _candidates(corrector, records, 16, None, sources)
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        args.cache.write_bytes(pickle.dumps((records, sets)))
    task = records[0].task
    part = _part_scorer(task, records)
    domains = _by_domain(records)
    first = [s.texts[0] for s in sets]

    def figures(outputs: list[str]) -> dict[str, float]:
        return {d: round(100 * part(rows, [outputs[i] for i in rows]), 3) for d, rows in domains.items()}

    pooled, penalised = _objective(task, records), _no_domain_worse(task, records, first)
    report: dict[str, object] = {"task": task, "records": len(records), "first": figures(first)}
    for name, objective in (("pooled", pooled), ("penalised", penalised)):
        weights, chosen = _fit_fusion(sets, objective, sources)
        picks = _picks(weights, chosen)
        report[name] = {
            "figures": figures(picks),
            "bootstrap_shares": _vouch_by_domain(task, records, picks, first),
            "serves_every_domain": _serves_every_domain(task, records, picks, first, 0.95),
            "weights": weights.to_dict(),
        }
    kept, _, check = _fit_elsewhere(task, records, sets, 0.95, sources)
    report["held_out"] = {"kept": kept is not None, "check": check}
    if task == "ocr":
        cut = [nonword_only(s) for s in sets]
        for name, objective in (("nonword", pooled), ("nonword_penalised", penalised)):
            weights, chosen = _fit_fusion(cut, objective, sources)
            picks = _picks(weights, chosen)
            report[name] = {
                "figures": figures(picks),
                "lines_changed": sum(p != f for p, f in zip(picks, first, strict=True)),
                "bootstrap_shares": _vouch_by_domain(task, records, picks, first),
                "serves_every_domain": _serves_every_domain(task, records, picks, first, 0.95),
                "weights": weights.to_dict(),
            }
    print(json.dumps(report, indent=1))


def nonword_only(candidates: CandidateSet) -> CandidateSet:
    """``candidates`` without the generated text and without every extra candidate that changes a word the
    speller's dictionary knows (or changes the number of words)."""
    from neko.infer.spelling import _TOKEN, speller

    known = speller().words

    def is_word(token: str) -> bool:
        match = _TOKEN.match(token)
        return match is None or len(match.group(2)) < 2 or match.group(2).lower().replace("’", "'") in known

    line = candidates.texts[0].split()
    plain = candidates.without_generated()
    keep = [
        c
        for c, text in enumerate(plain.texts)
        if plain.hypothesis[c] is not None
        or (
            len(text.split()) == len(line)
            and all(a == b or not is_word(a) for a, b in zip(line, text.split(), strict=True))
        )
    ]
    return plain._keeping(keep, "generated", generated=None, margin=None)


if __name__ == "__main__":
    main()

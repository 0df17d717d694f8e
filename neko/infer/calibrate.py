"""Calibrating the ``auto`` decision of a model on dev records, one task at a time (``neko calibrate``).

The model generates a correction of every dev record; one ``select``-style pass then scores every candidate
(the shown hypotheses and the generated text) as the answer to the record's prompt, which gives both the
margin of the generated text over the first hypothesis and the features of evidence fusion
(``neko.infer.fusion``). Two decisions are fitted on the task's main metric: the guard (``calibrate_guard``:
edit and margin thresholds) and the fusion weights (``calibrate_fusion``). Both searches hold "return the
first hypothesis", so on the dev data neither is worse than the first hypothesis; fusion is used only when
its dev figure is strictly better than the guard's. ``write_task_guards`` stores the result in the model
folder's ``neko_config.json`` (keys ``task_guards`` and, where fusion won, ``task_fusion``), where
``Corrector.from_pretrained`` reads it back.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from neko.infer.fusion import EXTRA_SOURCES, CandidateSet, FusionWeights, calibrate_fusion
from neko.infer.guard import GuardConfig, calibrate_guard, guard_outputs, harmful_edit_rate
from neko.infer.prompt import shown_for
from neko.records import Record

# ``_no_domain_worse``: the weight of a domain's excess error over the pooled objective. Any excess must
# outweigh every pooled gain: objectives are error fractions (at most a few units) or BLEU/GLEU points (100).
DOMAIN_PENALTY = 1e3


def task_target(task: str) -> tuple[str, bool]:
    """(the task's headline metric, whether higher is better): what its calibration optimises."""
    from neko.metrics import ERROR_RATES
    from neko.tasks import get_task

    metric = get_task(task).metrics[0]
    return metric, metric not in ERROR_RATES


@dataclass
class TaskCalibration:
    """The outcome for one task.

    Attributes:
        task: the task.
        n: dev records used.
        metric: the metric optimised (``wer``, ``cer``, ``gleu`` or ``bleu``).
        first: its value for the first hypotheses (what "always fall back" gives).
        generated: its value for the unguarded generated outputs.
        guarded: its value with the chosen guard.
        guard: the chosen thresholds.
        fallback_rate: share of records where the chosen guard fell back.
        harmful_edit_rate: share of the records whose first hypothesis was right that the guarded
            output made wrong.
        rows: every candidate: ``{max_edit_rate, min_margin, wer (the error searched), fallback_rate}``.
        fused: the metric with the fitted fusion weights (None when fusion was not fitted).
        fusion: the fitted fusion weights (None where a required confidence was not reached).
        fusion_fallback_rate: share of records where fusion picked the first hypothesis.
        fusion_harmful_edit_rate: the harmful-edit rate of the fused picks.
        higher_is_better: the direction of ``metric``.
        confidence: with a required confidence, the share of bootstrap samples of the dev records on which
            the fitted guard beat the first hypotheses (``neko.infer.significance``), the lowest over the dev
            sources (``_vouch``); below the requirement the guard always falls back, and ``guarded`` is the
            first hypotheses' figure.
        fused_unscored: the metric of the fusion fitted on the same records with their recogniser scores
            removed (``FusionWeights.unscored``; None when no record had scores).
        fused_single: the metric of the fusion fitted on the same records cut to their first hypothesis,
            without scores (``FusionWeights.single``; None when every record had one distinct hypothesis).
        unseen_domains: where weights for unseen domains were tried (``FusionWeights.elsewhere``), per dev
            domain the metric of its first hypotheses, of those weights (``fitted``) and of the weights
            fitted with that domain held out (``held_out``); empty where they were not tried.
    """

    task: str
    n: int
    metric: str
    first: float
    generated: float
    guarded: float
    guard: GuardConfig
    fallback_rate: float
    harmful_edit_rate: float
    rows: list[dict[str, float]]
    fused: float | None = None
    fusion: FusionWeights | None = None
    fusion_fallback_rate: float | None = None
    fusion_harmful_edit_rate: float | None = None
    higher_is_better: bool = False
    confidence: float | None = None
    fused_unscored: float | None = None
    fused_single: float | None = None
    unseen_domains: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def uses_fusion(self) -> bool:
        """True when fusion's dev figure is strictly better than the guard's (ties keep the guard)."""
        if self.fused is None or self.fusion is None:
            return False
        return self.fused > self.guarded if self.higher_is_better else self.fused < self.guarded

    @property
    def decision(self) -> str:
        """``fusion`` or ``guard``: what ``auto`` mode will use for this task once written."""
        return "fusion" if self.uses_fusion else "guard"

    def summary(self) -> dict[str, Any]:
        """The figures and the decision as one JSON-ready object (``neko calibrate --json``)."""
        return {
            "task": self.task,
            "n": self.n,
            "metric": self.metric,
            "first": self.first,
            "generated": self.generated,
            "guarded": self.guarded,
            "fallback_rate": self.fallback_rate,
            "harmful_edit_rate": self.harmful_edit_rate,
            "guard": guard_dict(self.guard),
            "gate_confidence": self.confidence,
            "fused": self.fused,
            "fusion_fallback_rate": self.fusion_fallback_rate,
            "fusion_harmful_edit_rate": self.fusion_harmful_edit_rate,
            "fused_unscored": self.fused_unscored,
            "fused_single": self.fused_single,
            "fusion": self.fusion.to_dict() if self.fusion is not None else None,
            "unseen_domains": self.unseen_domains,
            "decision": self.decision,
        }


@dataclass
class Calibration:
    """The outcome of ``calibrate``: the model folder, one result per task (in the order the tasks first
    appear in the dev files), the dev files of each task, and the file written (None without ``write``)."""

    model_dir: Path
    results: list[TaskCalibration]
    sources: dict[str, list[str]]
    written: Path | None = None


def sample_records(records: Sequence[Record], limit: int | None, seed: int = 0) -> list[Record]:
    """A seeded pick of ``limit`` records in their file order (all of them when ``limit`` is None or larger)."""
    if limit is None or limit >= len(records):
        return list(records)
    keep = sorted(random.Random(seed).sample(range(len(records)), limit))
    return [records[i] for i in keep]


def task_score(task: str, records: Sequence[Record]) -> Callable[[Sequence[str]], float]:
    """``outputs -> value`` of the task's main metric on ``records`` (their references and sources)."""
    from neko.metrics import score_corpus

    metric, _ = task_target(task)
    return lambda outputs: float(score_corpus(task, list(outputs), list(records))[metric])


def _candidates(
    corrector: Any,
    records: Sequence[Record],
    batch_size: int,
    progress: Callable[[int], None] | None,
    sources: Sequence[str],
) -> tuple[list[str], list[list[str]], list[CandidateSet]]:
    """(generated outputs, shown hypotheses, scored candidate sets) of ``records``."""
    # Generate mode: the plain generated text, whatever guard or fusion the model holds now.
    corrections = corrector.correct_many(records, batch_size=batch_size, mode="generate", progress=progress)
    outputs = [c.text for c in corrections]
    return (outputs, *_scored_sets(corrector, records, outputs, batch_size, sources))


def _scored_sets(
    corrector: Any, records: Sequence[Record], outputs: list[str], batch_size: int, sources: Sequence[str]
) -> tuple[list[list[str]], list[CandidateSet]]:
    """(shown hypotheses, scored candidate sets) of ``records`` with the generated ``outputs``."""
    hypotheses = [[r.hypotheses[i] for i in shown_for(r, corrector.config)] for r in records]
    sets = [
        # A hypothesis candidate is returned whole, as ``auto`` does (the prompt may show it cut).
        replace(
            s, texts=[hyps[k] if k is not None else t for t, k in zip(s.texts, s.hypothesis, strict=True)]
        )
        for s, hyps in zip(
            corrector.score_candidates(records, outputs, batch_size=batch_size, sources=sources),
            hypotheses,
            strict=True,
        )
    ]
    return hypotheses, sets


def _fit_fusion(
    sets: list[CandidateSet], error: Callable[[Sequence[str]], float], sources: Sequence[str]
) -> tuple[FusionWeights, list[CandidateSet]]:
    """The fusion weights fitted without the extra candidates and, given ``sources``, with them (kept only
    when strictly better); and the candidate sets they pick from."""
    plain = [s.without_extras() for s in sets]
    fusion, plain_error = calibrate_fusion(plain, error)
    if sources:
        # The plain optimum with the extra candidates ruled out is a start: the search with them can
        # only do better.
        ruled_out = FusionWeights({**fusion.weights, "extra": -1e6})
        with_extras, extras_error = calibrate_fusion(sets, error, starts=[ruled_out])
        if with_extras.weights.get("extra", 0.0) <= ruled_out.weights["extra"]:
            # Still ruled out: a better plain optimum, found from that start.
            weights = {n: v for n, v in with_extras.weights.items() if n != "extra"}
            if extras_error < plain_error:
                fusion, plain_error = FusionWeights(weights), extras_error
        elif extras_error < plain_error:
            fusion = replace(with_extras, extras=tuple(sources))
    return fusion, sets if fusion.extras else plain


def calibrate_task(
    corrector: Any,
    task: str,
    records: Sequence[Record],
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
    sources: Sequence[str] = tuple(EXTRA_SOURCES),
    confidence: float = 0.0,
) -> TaskCalibration:
    """Generate on ``records`` (all of ``task``, with references), score every candidate, and fit the task's
    guard thresholds and fusion weights (``progress`` counts generated records).

    ``confidence`` > 0 asks the dev set to vouch for the guard and for fusion: unless the guarded outputs
    beat the first hypotheses on at least that share of bootstrap samples of the records of every dev source
    (``Record.dataset``), the guard always falls back, and fusion is dropped on the same test (a gate fitted
    on a few dozen records otherwise picks thresholds or weights that won by chance, or that won on the pool
    of sources by one source's gain).

    Fusion is fitted without extra candidates and, when ``sources`` names any (``fusion.EXTRA_SOURCES``:
    by default all, i.e. the confusion-network paths of ``constrained`` for ASR), with them; the extras
    are kept only when they give a strictly better dev figure (they cost a search at inference)."""
    from neko.tasks import TASKS

    if task not in TASKS:
        raise ValueError(f"no calibration metric for task {task!r}")
    metric, higher_is_better = task_target(task)
    outputs, hypotheses, sets = _candidates(corrector, records, batch_size, progress, sources)
    margins = [s.margin for s in sets]
    references = [r.references[0] for r in records]
    first = [h[0] for h in hypotheses]
    score = task_score(task, records)
    config, rows, share = _fit_guard(
        task, records, outputs, hypotheses, margins, corrector.config.guard_for(task), confidence
    )
    guarded = guard_outputs(outputs, hypotheses, margins, config, task)
    every_set = sets
    fusion, sets = _fit_fusion(sets, _objective(task, records), sources)
    fused_outputs = _picks(fusion, sets)
    unseen: dict[str, dict[str, float]] = {}
    bare = _bare_sets(corrector, records, outputs, batch_size, sources)
    # Fusion must pass the same test as the guard before auto may use it: on every dev domain, or else
    # only for the domains that vouch for it; the others get the unseen-domain weights where their records
    # vouch for them (``_fit_elsewhere``), else the guard.
    if confidence:
        fusion, fused_outputs = _serve_vouched_domains(
            task, records, sets, fusion, fused_outputs, [g[0] for g in guarded], confidence, sources
        )
        fusion, fused_outputs, unseen = _serve_elsewhere(
            task,
            records,
            every_set,
            bare,
            fusion,
            fused_outputs,
            [g[0] for g in guarded],
            confidence,
            sources,
        )
    fused_unscored = fused_single = None
    if bare is not None:
        unscored, fused_unscored = _fit_reduced(task, records, bare, sources, confidence)
        if fusion is not None and fusion.generate:
            fusion = replace(fusion, unscored=unscored)
    if not all(r.single for r in records):
        lone = [replace(r, hypotheses=r.hypotheses[:1], scores=None) for r in records]
        single, fused_single = _fit_reduced(
            task,
            lone,
            _reduced_sets(corrector, records, lone, outputs, batch_size, sources),
            sources,
            confidence,
        )
        if fusion is not None:
            fusion = replace(fusion, single=single)
    return TaskCalibration(
        task=task,
        n=len(records),
        metric=metric,
        first=score(first),
        generated=score(outputs),
        guarded=score([g[0] for g in guarded]),
        guard=config,
        fallback_rate=sum(g[1] for g in guarded) / len(guarded),
        harmful_edit_rate=harmful_edit_rate([g[0] for g in guarded], hypotheses, references, task),
        rows=rows,
        fused=score(fused_outputs),
        fusion=fusion,
        fusion_fallback_rate=sum(out == f for out, f in zip(fused_outputs, first, strict=True)) / len(first),
        fusion_harmful_edit_rate=harmful_edit_rate(fused_outputs, hypotheses, references, task),
        higher_is_better=higher_is_better,
        confidence=share,
        fused_unscored=fused_unscored,
        fused_single=fused_single,
        unseen_domains=unseen,
    )


def _serve_vouched_domains(
    task: str,
    records: Sequence[Record],
    sets: list[CandidateSet],
    fusion: FusionWeights,
    fused: list[str],
    guarded: list[str],
    confidence: float,
    sources: Sequence[str],
) -> tuple[FusionWeights | None, list[str]]:
    """The fusion ``auto`` may use and its dev outputs, given ``fusion`` fitted on every dev record.

    Every dev domain vouching for it (``_serves_every_domain``): it serves every record, unseen domains
    included. Otherwise fusion serves the domains whose
    records vouch for weights fitted on their own, with one set of weights fitted on the records of those
    domains together (a domain that no longer vouches for the joint weights is dropped and they are refitted);
    the guard decides every other record. No such domain: no fusion (None)."""
    first = [s.texts[0] for s in sets]
    if _serves_every_domain(task, records, fused, first, confidence):
        return fusion, fused
    by_domain = _by_domain(records)
    fits: dict[tuple[str, ...], tuple[FusionWeights, list[int], list[str], dict[str, float]]] = {}

    def fit(domains: tuple[str, ...]) -> tuple[FusionWeights, list[int], list[str], dict[str, float]]:
        """Weights fitted on the records of ``domains``, those records, their picks and each domain's share."""
        if domains not in fits:
            rows = sorted(i for d in domains for i in by_domain[d])
            part = [records[i] for i in rows]
            weights, chosen = _fit_fusion([sets[i] for i in rows], _objective(task, part), sources)
            outputs = _picks(weights, chosen)
            fits[domains] = (
                weights,
                rows,
                outputs,
                _vouch_by_domain(task, part, outputs, [first[i] for i in rows]),
            )
        return fits[domains]

    domains = tuple(sorted(d for d in by_domain if fit((d,))[3][d] >= confidence))
    while domains:
        weights, rows, outputs, shares = fit(domains)
        kept = tuple(d for d in domains if shares[d] >= confidence)
        if kept == domains:
            served = list(guarded)
            for i, out in zip(rows, outputs, strict=True):
                served[i] = out
            return replace(weights, domains=domains), served
        domains = kept
    return None, fused


def _bare_sets(
    corrector: Any, records: Sequence[Record], outputs: list[str], batch_size: int, sources: Sequence[str]
) -> list[CandidateSet] | None:
    """The candidate sets of ``records`` with their recogniser scores removed (None when none has scores):
    what the records of a source without scores give (``FusionWeights.unscored``)."""
    if not any(r.scores is not None for r in records):
        return None
    bare = [replace(r, scores=None) for r in records]
    return _reduced_sets(corrector, records, bare, outputs, batch_size, sources)


def _reduced_sets(
    corrector: Any,
    records: Sequence[Record],
    reduced: Sequence[Record],
    outputs: list[str],
    batch_size: int,
    sources: Sequence[str],
) -> list[CandidateSet]:
    """The candidate sets of ``reduced``, ``records`` with less evidence (scores removed, hypotheses cut),
    whose generated ``outputs`` are redone where the prompt changes (fewer hypotheses shown; MT also ranks
    its candidates by consensus without scores)."""
    outputs = list(outputs)
    again = [
        i
        for i, r in enumerate(records)
        if shown_for(r, corrector.config) != shown_for(reduced[i], corrector.config)
    ]
    if again:
        redone = corrector.correct_many([reduced[i] for i in again], batch_size=batch_size, mode="generate")
        for i, correction in zip(again, redone, strict=True):
            outputs[i] = correction.text
    return _scored_sets(corrector, reduced, outputs, batch_size, sources)[1]


def _fit_reduced(
    task: str,
    records: Sequence[Record],
    reduced: list[CandidateSet],
    sources: Sequence[str],
    confidence: float,
) -> tuple[FusionWeights, float]:
    """The fusion weights for records with less evidence than the dev records (``FusionWeights.unscored``:
    no recogniser scores; ``FusionWeights.single``: one hypothesis), fitted on the candidate sets of the dev
    records reduced that way (``reduced``, in the order of ``records``), and their dev figure; "first
    hypothesis" (without generation) unless they are strictly better than it there (and, with
    ``confidence``, vouched for in every domain: ``_serves_every_domain``).

    With ``confidence``, weights the dev data refuse are fitted again under ``_no_domain_worse``: the pooled
    optimum can buy one domain's gain with another's loss, which the per-domain test then refuses although
    weights that leave that domain alone may exist. The figure returned is that of the weights kept, or of
    the pooled fit where both are refused. Weights kept whose picks on the dev records do not change without
    the generated text do without it (``generate`` False): generating would cost time and decide nothing."""
    _, higher_is_better = task_target(task)
    sign = -1.0 if higher_is_better else 1.0
    score = task_score(task, records)
    first = [s.texts[0] for s in reduced]
    unchanged = sign * score(first)
    objectives = [_objective(task, records)]
    if confidence:
        objectives.append(_no_domain_worse(task, records, first))
    figures = []
    for objective in objectives:
        fusion, sets = _fit_fusion(reduced, objective, sources)
        picked = _picks(fusion, sets)
        figures.append(score(picked))
        if sign * figures[-1] < unchanged and (
            not confidence or _serves_every_domain(task, records, picked, first, confidence)
        ):
            if picked == _picks(fusion, [s.without_generated() for s in sets]):
                fusion = replace(fusion, generate=False)
            return fusion, figures[-1]
    # Refused: such records keep their first hypothesis, and nothing is generated for them.
    return replace(FusionWeights.first(), generate=False), figures[0]


def _no_domain_worse(
    task: str, records: Sequence[Record], first: Sequence[str]
) -> Callable[[Sequence[str]], float]:
    """``_objective`` plus ``DOMAIN_PENALTY`` times the amount by which each dev domain's figure is worse
    than that of its ``first`` outputs: a search under it prefers any weights that make no domain worse to
    a better pool (what ``_serves_every_domain`` asks of the weights it keeps)."""
    _, higher_is_better = task_target(task)
    sign = -1.0 if higher_is_better else 1.0
    pooled, part = _objective(task, records), _part_scorer(task, records)
    domains = list(_by_domain(records).values())
    floors = [part(rows, [first[i] for i in rows]) for rows in domains]

    def objective(outputs: Sequence[str]) -> float:
        excess = sum(
            max(0.0, sign * (part(rows, [outputs[i] for i in rows]) - floor))
            for rows, floor in zip(domains, floors, strict=True)
        )
        return pooled(outputs) + DOMAIN_PENALTY * excess

    return objective


def _serve_elsewhere(
    task: str,
    records: Sequence[Record],
    sets: list[CandidateSet],
    bare: list[CandidateSet] | None,
    fusion: FusionWeights | None,
    fused: list[str],
    guarded: list[str],
    confidence: float,
    sources: Sequence[str],
) -> tuple[FusionWeights | None, list[str], dict[str, dict[str, float]]]:
    """``fusion`` (None: none vouched) and its dev outputs, with unseen-domain weights (``elsewhere``) for the
    records of every other domain, where the dev records vouch for them (``_fit_elsewhere``: each dev domain
    stands in for an unseen one; ``bare``: the same candidate sets without recogniser scores, for the weights
    of records without any), and the held-out check of ``_fit_elsewhere`` (empty where it did not run).
    Without main weights, the unseen-domain weights serve every record."""
    if fusion is not None and not fusion.domains:
        return fusion, fused, {}
    elsewhere, picks, check = _fit_elsewhere(task, records, sets, confidence, sources)
    if elsewhere is None:
        return fusion, fused, check
    if bare is not None:
        unscored, _, _ = _fit_elsewhere(task, records, bare, confidence, sources)
        elsewhere = replace(elsewhere, unscored=unscored or replace(FusionWeights.first(), generate=False))
    served = set(fusion.domains) if fusion is not None else set()
    outputs = list(fused if fusion is not None else guarded)
    for i, record in enumerate(records):
        if record.domain not in served:
            outputs[i] = picks[i]
    if fusion is None:
        return elsewhere, outputs, check
    return replace(fusion, elsewhere=elsewhere), outputs, check


def _fit_elsewhere(
    task: str,
    records: Sequence[Record],
    sets: list[CandidateSet],
    confidence: float,
    sources: Sequence[str],
) -> tuple[FusionWeights | None, list[str], dict[str, dict[str, float]]]:
    """Weights for records of domains no dev source stands for, and their picks on ``records``; None when
    the dev records do not vouch for them.

    The candidates are the hypotheses and the extra paths, not the generated text (its trust is what the
    model's training domains flatter: ``generate`` mode is worse than the first hypothesis on every zero-shot
    HyPoradise set). Each dev domain stands in for an unseen one in turn: the weights fitted on the other
    domains must be no worse than the first hypotheses on it; the weights fitted on all of them must be no
    worse on any domain, and better on their pool on ``confidence`` of the bootstrap samples. One domain
    cannot be held out against another: None.

    Every fit minimises the worst domain's error relative to its first hypotheses (the pooled error breaks
    ties): weights for an unseen domain must not buy one domain's gain with another's loss. Also returned:
    per dev domain, the figure of its first hypotheses, of the weights fitted on every domain and of those
    fitted without it (``held_out``)."""
    by_domain = _by_domain(records)
    if len(by_domain) < 2:
        return None, [], {}
    sets = [s.without_generated() for s in sets]
    first = [s.texts[0] for s in sets]
    _, higher_is_better = task_target(task)
    sign = -1.0 if higher_is_better else 1.0
    value = _part_scorer(task, records)

    def fit(rows: Sequence[int]) -> FusionWeights:
        """Weights fitted on ``rows`` for their worst domain: the highest ratio of a domain's fused error
        to its first hypotheses' (the pooled error breaks ties)."""
        rows = list(rows)
        domains = [[rows[j] for j in part] for part in _by_domain([records[i] for i in rows]).values()]
        places = {i: j for j, i in enumerate(rows)}
        bases = [value(part, [first[i] for i in part]) for part in domains]

        def ratio(fused: float, base: float) -> float:
            """Above 1 where ``fused`` is worse than ``base``."""
            return base / max(fused, 1e-9) if higher_is_better else fused / max(base, 1e-9)

        def worst(outs: Sequence[str]) -> float:
            ratios = [
                ratio(value(part, [outs[places[i]] for i in part]), base)
                for part, base in zip(domains, bases, strict=True)
            ]
            return max(ratios) + 1e-6 * sign * value(rows, outs)

        weights, _ = _fit_fusion([sets[i] for i in rows], worst, sources)
        return weights

    def picks(weights: FusionWeights) -> list[str]:
        chosen = sets if weights.extras else [s.without_extras() for s in sets]
        return _picks(weights, chosen)

    weights = fit(range(len(records)))
    outputs = picks(weights)
    check = {}
    for domain, rows in by_domain.items():
        held = set(rows)
        held_out = picks(fit([i for i in range(len(records)) if i not in held]))
        check[domain] = {
            name: round(value(rows, [outs[i] for i in rows]), 6)
            for name, outs in (("first", first), ("fitted", outputs), ("held_out", held_out))
        }
    every = range(len(records))
    pooled = [replace(r, dataset="pool") for r in records]
    vouched = (
        sign * value(every, outputs) < sign * value(every, first)
        and all(
            sign * c[name] <= sign * c["first"] for c in check.values() for name in ("fitted", "held_out")
        )
        and (not confidence or _vouch(task, pooled, outputs, first) >= confidence)
    )
    return (replace(weights, generate=False) if vouched else None), outputs, check


def _picks(weights: FusionWeights, sets: Sequence[CandidateSet]) -> list[str]:
    """The text ``weights`` pick from each candidate set."""
    return [s.texts[weights.pick(s.features)[0]] for s in sets]


def _objective(task: str, records: Sequence[Record]) -> Callable[[Sequence[str]], float]:
    """``outputs -> what a weight search minimises`` on ``records``: the task's metric, negated where higher is
    better, scored by `_part_scorer` (each (record, text) once)."""
    _, higher_is_better = task_target(task)
    sign = -1.0 if higher_is_better else 1.0
    part, rows = _part_scorer(task, records), range(len(records))
    return lambda outputs: sign * part(rows, outputs)


def _part_scorer(task: str, records: Sequence[Record]) -> Callable[[Sequence[int], Sequence[str]], float]:
    """``(record indices, their outputs) -> the task's metric on those records``. An error rate is summed
    from each record's edits and reference units (what jiwer's corpus figure is), each (record, text) scored
    once: a weight search scores the same texts thousands of times. Other metrics (or a record without
    reference units) are scored whole."""
    from neko.metrics import ERROR_RATES, score_corpus

    metric, _ = task_target(task)
    counts: dict[tuple[int, str], tuple[int, int]] = {}

    def count(i: int, text: str) -> tuple[int, int]:
        if (i, text) not in counts:
            found = score_corpus(task, [text], [records[i]])[f"{metric}_counts"]
            edits = found["substitutions"] + found["deletions"] + found["insertions"]
            counts[i, text] = (edits, found["reference"])
        return counts[i, text]

    summed = metric in ERROR_RATES
    if summed:
        try:
            for i, record in enumerate(records):
                count(i, record.hypotheses[0])
        except ValueError:  # a reference without words or characters: no per-record rate
            summed = False

    def score(rows: Sequence[int], outputs: Sequence[str]) -> float:
        if not summed:
            return task_score(task, [records[i] for i in rows])(outputs)
        edits, units = map(sum, zip(*(count(i, t) for i, t in zip(rows, outputs, strict=True)), strict=True))
        return edits / units

    return score


def _fit_guard(
    task: str,
    records: Sequence[Record],
    outputs: list[str],
    hypotheses: list[list[str]],
    margins: list[float | None],
    base: GuardConfig,
    confidence: float,
) -> tuple[GuardConfig, list[dict[str, float]], float | None]:
    """The guard with the best dev figure (``calibrate_guard``), its search rows in the metric's own
    direction, and, when ``confidence`` is asked for, the share of bootstrap samples it won (below
    ``confidence`` the guard returned always falls back)."""
    _, higher_is_better = task_target(task)
    score = task_score(task, records)
    sign = -1.0 if higher_is_better else 1.0
    references = [r.references[0] for r in records]
    config, rows = calibrate_guard(
        outputs,
        hypotheses,
        references,
        margins=margins,
        base=base,
        wer=lambda outs, _refs: sign * score(outs),
        task=task,
    )
    for row in rows:
        row["wer"] = sign * row["wer"]
    if not confidence:
        return config, rows, None
    guarded = [g[0] for g in guard_outputs(outputs, hypotheses, margins, config, task)]
    share = _vouch(task, records, guarded, [h[0] for h in hypotheses])
    if share < confidence:
        config = replace(config, min_margin=float("inf"))
    return config, rows, share


def _vouch(task: str, records: Sequence[Record], gated: list[str], first: list[str]) -> float:
    """How surely the dev records say that ``gated`` beats ``first``: the share of bootstrap samples on which
    it does (``gate_confidence``), taken within each dev domain (records of one ``Record.domain``) and the
    lowest of them returned. A decision must help on every source, not only on their pool: the guarantee a
    user needs is per dataset (a zero-shot set must not get worse), and a pooled gain can be one source's
    large gain over another's loss."""
    return min(_vouch_by_domain(task, records, gated, first).values())


def _by_domain(records: Sequence[Record]) -> dict[str, list[int]]:
    """The indices of ``records`` grouped by ``Record.domain``, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(record.domain, []).append(i)
    return groups


def _serves_every_domain(
    task: str, records: Sequence[Record], outputs: list[str], first: list[str], confidence: float
) -> bool:
    """True when the dev records vouch for ``outputs`` over ``first`` in every domain they change: each such
    domain's bootstrap share is at least ``confidence``, or, for a domain unable to vouch for anything, the
    outputs are no worse there (and some domain vouches). A domain is unable to vouch when even its
    references, as outputs, would not beat its first hypotheses on ``confidence`` of the bootstrap samples:
    its first hypotheses are all but perfect (generated OCR at severity 1: 0.02% CER), so no decision can win
    there significantly, yet the domain can still show that the decision does it no harm. A domain whose
    every output is its first hypothesis neither vouches nor objects: nothing was decided there (clean OCR
    lines that weights fixing noisy ones leave as they were)."""
    shares = _vouch_by_domain(task, records, outputs, first)
    if not any(share >= confidence for share in shares.values()):
        return False
    # Only the changed domains that do not vouch need the references' test (a bootstrap pass: slow for GLEU).
    by_domain = _by_domain(records)
    changed = {d for d, rows in by_domain.items() if any(outputs[i] != first[i] for i in rows)}
    rows = sorted(
        i for d, share in shares.items() if share < confidence and d in changed for i in by_domain[d]
    )
    if not rows:
        return True
    part = [records[i] for i in rows]
    perfect = _vouch_by_domain(task, part, [r.references[0] for r in part], [first[i] for i in rows])
    return all(
        share < confidence and _no_worse(task, records, by_domain[d], outputs, first)
        for d, share in perfect.items()
    )


def _no_worse(
    task: str, records: Sequence[Record], rows: Sequence[int], outputs: list[str], first: list[str]
) -> bool:
    """True when ``outputs`` score at least as well as ``first`` on the records ``rows`` (the task's metric)."""
    _, higher_is_better = task_target(task)
    score = task_score(task, [records[i] for i in rows])
    ours, theirs = score([outputs[i] for i in rows]), score([first[i] for i in rows])
    return ours >= theirs if higher_is_better else ours <= theirs


def _vouch_by_domain(
    task: str, records: Sequence[Record], gated: list[str], first: list[str]
) -> dict[str, float]:
    """The bootstrap share of ``_vouch`` for each dev domain."""
    from neko.infer.significance import gate_confidence
    from neko.metrics import score_corpus

    metric, higher_is_better = task_target(task)
    shares = {}
    for domain, rows in _by_domain(records).items():
        part = [records[i] for i in rows]

        def score(sample: Sequence[int], outputs: Sequence[str], part: list[Record] = part) -> float:
            return float(score_corpus(task, list(outputs), [part[i] for i in sample])[metric])

        shares[domain] = gate_confidence(
            task,
            score,
            [gated[i] for i in rows],
            [first[i] for i in rows],
            [r.references[0] for r in part],
            higher_is_better,
        )
    return shares


def read_dev(
    patterns: Sequence[str],
    limit: int | None = None,
    seed: int = 0,
    exclude: Mapping[str, str] | None = None,
) -> tuple[dict[str, list[Record]], dict[str, list[str]]]:
    """The dev records with references of ``patterns`` (files or globs; those whose meta matches
    ``exclude``, ``{meta key: glob}``, left out; then a seeded pick of at most ``limit`` per file), by task,
    and the files each task's records came from. A file without any such record, or a task without a
    metric, is a NekoError."""
    from neko.errors import NekoError
    from neko.records import read_records
    from neko.tasks import TASKS
    from neko.train.mixture import excluded, expand_paths

    by_task: dict[str, list[Record]] = {}
    sources: dict[str, list[str]] = {}
    for path in [path for pattern in patterns for path in expand_paths(pattern)]:
        records = [r for r in read_records(path) if r.references and not excluded(r.meta, exclude or {})]
        if not records:
            raise NekoError(f"{path}: no record with a reference to calibrate on")
        for record in sample_records(records, limit, seed):
            by_task.setdefault(record.task, []).append(record)
            if str(path) not in sources.setdefault(record.task, []):
                sources[record.task].append(str(path))
    unknown = sorted(set(by_task) - set(TASKS))
    if unknown:
        raise NekoError(f"no calibration metric for task(s) {', '.join(unknown)}")
    return by_task, sources


def calibrate_tasks(
    corrector: Any,
    by_task: Mapping[str, Sequence[Record]],
    *,
    batch_size: int = 16,
    sources: Sequence[str] = tuple(EXTRA_SOURCES),
    report: Callable[[TaskCalibration], None] | None = None,
    confidence: float = 0.0,
) -> list[TaskCalibration]:
    """``calibrate_task`` of each task's records in turn, with a progress bar on stderr; ``report`` is
    called with each result as soon as it is fitted."""
    import sys

    from tqdm import tqdm

    results = []
    for task, records in by_task.items():
        with tqdm(total=len(records), desc=f"calibrate {task}", file=sys.stderr) as bar:
            result = calibrate_task(
                corrector,
                task,
                records,
                batch_size,
                progress=bar.update,
                sources=sources,
                confidence=confidence,
            )
        results.append(result)
        if report is not None:
            report(result)
    return results


def calibrate(
    dev: Sequence[str],
    *,
    model: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    threads: int | None = None,
    extras: bool = True,
    write: bool = False,
    report: Callable[[TaskCalibration], None] | None = None,
    confidence: float = 0.0,
    exclude: Mapping[str, str] | None = None,
) -> Calibration:
    """Calibrate the ``auto`` decision of ``model`` (default: the bundled one) on the dev files ``dev``.

    Args:
        dev: dev record files (JSONL with references; globs allowed).
        model: the model folder.
        limit: a seeded pick (``seed``) of at most this many records per file.
        batch_size: records per model batch.
        threads: torch CPU threads (default: all cores).
        extras: also fit fusion with the confusion-network paths (``fusion.EXTRA_SOURCES``).
        write: save the result in the model's ``neko_config.json`` (``write_task_guards``).
        report: called with each task's result as soon as it is fitted.
        confidence: the share of bootstrap samples of the dev records on which a task's guard must beat the
            first hypotheses, or it always falls back (``calibrate_task``); 0 = no such check.
        exclude: ``{meta key: glob}`` of dev records to leave out (as a training recipe's ``exclude``).
    """
    from neko.infer.corrector import Corrector, default_model_dir

    by_task, sources = read_dev(dev, limit, seed, exclude)
    model_dir = model or default_model_dir()
    corrector = Corrector.from_pretrained(model_dir, threads=threads)
    results = calibrate_tasks(
        corrector,
        by_task,
        batch_size=batch_size,
        sources=tuple(EXTRA_SOURCES) if extras else (),
        report=report,
        confidence=confidence,
    )
    written = write_task_guards(model_dir, results, sources) if write else None
    return Calibration(Path(model_dir), results, sources, written)


def _json_number(value: float) -> float | str:
    """JSON has no infinities: they are written as the strings ``inf`` / ``-inf`` that ``float`` reads back."""
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def guard_dict(config: GuardConfig) -> dict[str, float | str]:
    """The thresholds of ``config`` as JSON-ready values."""
    return {key: _json_number(value) for key, value in asdict(config).items()}


def write_task_guards(
    model_dir: str | Path, results: Sequence[TaskCalibration], sources: Mapping[str, Sequence[str]]
) -> Path:
    """Store the chosen thresholds (``task_guards``), the fusion weights of the tasks where fusion won
    (``task_fusion``; a task where the guard won loses any older weights) and how they were found
    (``calibration``) in the folder's ``neko_config.json``; the other tasks' entries are kept."""
    file = Path(model_dir) / "neko_config.json"
    data = json.loads(file.read_text()) if file.is_file() else {}
    guards = data.setdefault("task_guards", {})
    fusion = data.setdefault("task_fusion", {})
    notes = data.setdefault("calibration", {})
    for result in results:
        guards[result.task] = guard_dict(result.guard)
        if result.uses_fusion and result.fusion is not None:
            fusion[result.task] = result.fusion.to_dict()
        else:
            fusion.pop(result.task, None)
        notes[result.task] = {
            "data": [Path(source).name for source in sources.get(result.task, [])],
            "n": result.n,
            "metric": result.metric,
            "first": round(result.first, 6),
            "generated": round(result.generated, 6),
            "guarded": round(result.guarded, 6),
            "fallback_rate": round(result.fallback_rate, 6),
            "harmful_edit_rate": round(result.harmful_edit_rate, 6),
            "decision": result.decision,
        }
        if result.confidence is not None:
            notes[result.task]["gate_confidence"] = round(result.confidence, 6)
        if result.fused is not None:
            notes[result.task]["fused"] = round(result.fused, 6)
            notes[result.task]["fusion_fallback_rate"] = round(result.fusion_fallback_rate or 0.0, 6)
        if result.fused_unscored is not None:
            notes[result.task]["fused_unscored"] = round(result.fused_unscored, 6)
        if result.fused_single is not None:
            notes[result.task]["fused_single"] = round(result.fused_single, 6)
    if not fusion:
        del data["task_fusion"]
    file.write_text(json.dumps(data, indent=2) + "\n")
    return file

"""Evidence-fused decisions of ``auto`` mode: every candidate output competes under one log-linear score.

The candidates of a record are its distinct shown hypotheses (best first), the generated text and any extra
texts a caller proposes (e.g. confusion-network paths), merged when the task's normaliser makes them equal
(``guard.words``: ASR ignores casing and punctuation). Each candidate gets the features of ``FEATURES``:

- ``lm``, ``lm_mean``: the corrector's log-probability of the text + EOS given the prompt (sum, and per
  token), from one ``select``-style pass;
- ``recog``: the recogniser's log-softmax score of the hypothesis when the record has ``scores`` (0 without;
  a candidate that is not a hypothesis gets the list's lowest); ``rank``: ``-log(1 + rank)`` (a candidate
  that is not a hypothesis ranks after all of them);
- ``generated``, ``extra``, ``new``: 1 when the model generated it, when an extra source proposed it, when it
  is none of the shown hypotheses;
- ``edit``: word edit distance to the closest shown hypothesis over that hypothesis's length;
- ``cn``: its mean word posterior in the confusion network of the n-best (ROVER's vote shares; softmax of
  the recogniser scores as vote weights when there are any); ``mbr``: minus its expected word edit rate
  against the n-best under the same weights (minimum Bayes risk);
- ``length``: ``log((words + 1) / (first hypothesis words + 1))``.

Extra candidates come from the sources of ``EXTRA_SOURCES`` that a task's weights name (``extras``): today
``constrained``, the best paths of the record's lattice (ASR: the n-best's confusion network, OCR: the line's
spelling lattice) under the model (``neko.infer.constrained``). ``calibrate_task`` fits the weights with
and without them and keeps them only when they give a strictly better dev figure.

The fused score is ``weights . features``; the pick is its argmax, ties to the earlier candidate, so to the
first hypothesis. ``calibrate_fusion`` fits the weights per task on dev data by coordinate ascent over a
grid (MERT-style: the features are computed once, every point of the search is a matrix product, an argmax
and the corpus metric of the picks), starting from "return the first hypothesis", which it leaves only for
a strictly better dev figure: calibrated weights are never worse than the first hypothesis on their dev data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from rapidfuzz.distance import Levenshtein

from neko.baselines.confusion_network import (
    EPS,
    PASS,
    WORD,
    align_to_slots,
    build_confusion_network,
    softmax_weights,
)
from neko.errors import ConfigError
from neko.infer.guard import words
from neko.records import domain_of

FEATURES = ("lm", "lm_mean", "recog", "rank", "generated", "extra", "new", "edit", "cn", "mbr", "length")

# Coordinate values tried for each (standardised) feature weight; 0 switches a feature off.
GRID = (-3.0, -1.0, -0.3, -0.1, 0.0, 0.1, 0.3, 1.0, 3.0)
# Starting points of the search besides "first hypothesis": each a single-feature decision
# (``lm`` = select mode over all candidates, ``generated`` = generate mode, ``cn`` ~ ROVER, ``mbr`` = MBR).
STARTS = ("lm", "lm_mean", "generated", "cn", "mbr")
# And the best extra candidate by the model's score: ``constrained`` mode when the extras are its paths (the
# extra flag outweighs any score difference; the ascent then trades it against the other features).
EXTRA_START = {"extra": 100.0, "lm": 1.0}
# Fused scores this close to the best count as a tie (sums of floats: rounding must not decide).
_TIE = 1e-9


# Confusion-network paths proposed per record by the ``constrained`` source.
CONSTRAINED_PATHS = 4


def constrained_texts(model: Any, tokenizer: Any, prepared: Sequence[Any], config: Any) -> list[list[str]]:
    """The ``CONSTRAINED_PATHS`` best lattice paths (ASR: confusion network, OCR: spelling lattice) of each
    prepared record (``neko.infer.prompt`` ``Prepared``) under the model (``neko.infer.constrained``); an
    empty list for a task without a lattice."""
    from neko.infer.constrained import LATTICE_TASKS, prepared_paths

    texts: list[list[str]] = [[] for _ in prepared]
    wanted = [j for j, p in enumerate(prepared) if p.record.task in LATTICE_TASKS]
    if wanted:
        found = prepared_paths(model, tokenizer, [prepared[j] for j in wanted], config, CONSTRAINED_PATHS)
        for j, paths in zip(wanted, found, strict=True):
            texts[j] = [path.text for path in paths]
    return texts


# Sources of extra candidates: name -> (model, tokenizer, prepared records, InferConfig) -> texts per record.
EXTRA_SOURCES: dict[str, Callable[..., list[list[str]]]] = {"constrained": constrained_texts}


@dataclass
class FusionWeights:
    """One task's log-linear weights over ``FEATURES`` (raw feature units; a missing feature weighs 0), the
    sources of extra candidates (``EXTRA_SOURCES``) its decisions include, the weights for records
    without recogniser scores (``unscored``; None: these weights serve them too) and the domains they decide
    (``domains``, by ``neko.records.domain_of`` of a record's dataset; empty: every record of the task).

    A record without ``scores`` has no ``recog`` evidence (0 for every candidate, so a new text loses the
    penalty of the list's lowest score) and uniform confusion-network votes: weights fitted on scored dev
    records would over-trust new text there. ``neko calibrate`` therefore fits ``unscored`` on the same dev
    records with their scores removed whenever they carry scores.

    ``domains`` is set where the dev data vouched for fusion on some of its sources but not on all: the
    weights then decide the records of those domains (e.g. ``atis`` for the dev part of HyPoradise's ATIS
    train file, which also matches its test file), and every other record gets ``elsewhere`` when it is set,
    else the task's guard.

    ``elsewhere`` (unseen domains) are weights over the hypotheses and the extra candidates only
    (``generate`` False: the record is not generated at all): the model's own text is what its training
    domains flatter, so the dev records of domains that did not vouch for the main weights fit them, each of
    those domains held out in turn (``neko.infer.calibrate``).

    ``single`` are the weights for a record with one distinct hypothesis (a lone OCR line, a single ASR
    transcript): its confusion network and n-best agreement only measure distance from that one text, which
    weights fitted on n-best lists read as the n-best voting against any change. ``neko calibrate`` fits them
    on the dev records cut to their first hypothesis, without scores, whenever some dev record has more than
    one."""

    weights: dict[str, float]
    extras: tuple[str, ...] = ()
    unscored: FusionWeights | None = None
    domains: tuple[str, ...] = ()
    generate: bool = True
    elsewhere: FusionWeights | None = None
    single: FusionWeights | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(FEATURES))
        if unknown:
            raise ConfigError(f"unknown fusion feature(s) {unknown}; valid: {', '.join(FEATURES)}")
        bad = sorted(set(self.extras) - set(EXTRA_SOURCES))
        if bad:
            raise ConfigError(f"unknown extra candidate source(s) {bad}; valid: {', '.join(EXTRA_SOURCES)}")

    @classmethod
    def first(cls) -> FusionWeights:
        """The weights that always return the first hypothesis (the best rank wins)."""
        return cls({"rank": 1.0})

    @property
    def serves_unseen(self) -> bool:
        """True when fusion decides the records of domains the dev data did not hold: without ``domains``, or
        with ``elsewhere``."""
        return not self.domains or self.elsewhere is not None

    def serves(self, dataset: str) -> bool:
        """True when fusion decides the records of ``dataset``: every record without ``domains``, else those
        of ``domains`` and, with ``elsewhere``, the others too."""
        return self.serves_unseen or domain_of(dataset) in self.domains

    def for_record(self, dataset: str, scored: bool, single: bool = False) -> FusionWeights:
        """The weights that decide a record of ``dataset`` with (``scored``) or without recogniser scores and
        with one distinct hypothesis (``single``) or more."""
        if self.domains and domain_of(dataset) not in self.domains and self.elsewhere is not None:
            return self.elsewhere.for_record(dataset, scored, single)
        if single and self.single is not None:
            return self.single
        return self if scored or self.unscored is None else self.unscored

    @classmethod
    def from_dict(cls, data: object, where: str = "task_fusion") -> FusionWeights:
        """Weights from a dict ``feature -> number``, plus an optional ``extras`` list of source names, an
        optional ``unscored`` dict of the same form, an optional ``domains`` list, an optional ``generate``
        flag and optional ``elsewhere`` and ``single`` dicts of the same form (e.g. one task of
        ``neko_config.json``'s ``task_fusion``)."""
        data = dict(data) if isinstance(data, dict) else None
        extras = data.pop("extras", []) if data is not None else []
        unscored = data.pop("unscored", None) if data is not None else None
        domains = data.pop("domains", []) if data is not None else []
        generate = data.pop("generate", True) if data is not None else True
        elsewhere = data.pop("elsewhere", None) if data is not None else None
        single = data.pop("single", None) if data is not None else None
        if (
            data is None
            or not isinstance(generate, bool)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values())
            or not all(
                isinstance(names, list) and all(isinstance(n, str) for n in names)
                for names in (extras, domains)
            )
        ):
            raise ConfigError(
                f"{where}: fusion weights must map feature names to numbers "
                "(and 'extras' and 'domains' to lists of names, 'generate' to true or false)"
            )
        try:
            return cls(
                {str(k): float(v) for k, v in data.items()},
                tuple(extras),
                cls.from_dict(unscored, f"{where}.unscored") if unscored is not None else None,
                tuple(domains),
                generate,
                cls.from_dict(elsewhere, f"{where}.elsewhere") if elsewhere is not None else None,
                cls.from_dict(single, f"{where}.single") if single is not None else None,
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The non-zero weights, in ``FEATURES`` order, ``extras`` when there are any, ``unscored`` and
        ``domains`` when set, ``generate`` when False, ``elsewhere`` and ``single`` when set (JSON-ready)."""
        out: dict[str, Any] = {n: self.weights[n] for n in FEATURES if self.weights.get(n, 0.0) != 0.0}
        if self.extras:
            out["extras"] = list(self.extras)
        if self.unscored is not None:
            out["unscored"] = self.unscored.to_dict()
        if self.domains:
            out["domains"] = list(self.domains)
        if not self.generate:
            out["generate"] = False
        if self.elsewhere is not None:
            out["elsewhere"] = self.elsewhere.to_dict()
        if self.single is not None:
            out["single"] = self.single.to_dict()
        return out

    def vector(self) -> np.ndarray:
        """The weights as a vector aligned with ``FEATURES``."""
        return np.array([self.weights.get(name, 0.0) for name in FEATURES], dtype=np.float64)

    def pick(self, features: np.ndarray) -> tuple[int, np.ndarray]:
        """(index of the best candidate, fused score of each) for one record's ``[candidates, features]``."""
        fused = features @ self.vector()
        return first_best(fused), fused


@dataclass
class CandidateSet:
    """The candidates of one record and their features.

    Attributes:
        texts: each distinct candidate (its first surface form); ``texts[0]`` is the first shown hypothesis.
        hypothesis: per candidate, its index among the shown hypotheses, or None when it is none of them.
        features: ``[candidates, len(FEATURES)]``.
        generated: index of the candidate the model generated (None when no text was generated).
        margin: log-probability of the generated text minus that of the first hypothesis, when their words
            differ (what the margin guard compares with ``min_margin``); None otherwise.
    """

    texts: list[str]
    hypothesis: list[int | None]
    features: np.ndarray
    generated: int | None = None
    margin: float | None = None

    def feature_dict(self, index: int) -> dict[str, float]:
        """The features of candidate ``index`` by name."""
        return {name: float(value) for name, value in zip(FEATURES, self.features[index], strict=True)}

    def without_extras(self) -> CandidateSet:
        """The set that the same record gives without extra candidates: the candidates only an extra
        source proposed are dropped and the others lose their ``extra`` flag (no other feature of a
        candidate depends on the other candidates)."""
        keep = [c for c, k in enumerate(self.hypothesis) if k is not None or c == self.generated]
        generated = keep.index(self.generated) if self.generated is not None else None
        return self._keeping(keep, "extra", generated=generated)

    def without_generated(self) -> CandidateSet:
        """The set without the generated text: the candidate only the model generated is dropped and the
        others lose their ``generated`` flag (what a record that is not generated offers)."""
        if self.generated is None:
            return self
        extra = FEATURES.index("extra")
        keep = [
            c
            for c, k in enumerate(self.hypothesis)
            if k is not None or c != self.generated or self.features[c, extra]
        ]
        return self._keeping(keep, "generated", generated=None, margin=None)

    def _keeping(self, keep: list[int], cleared: str, **changes: Any) -> CandidateSet:
        """The set of the candidates ``keep`` with the feature ``cleared`` set to 0 for all of them, and the
        other fields ``changes``."""
        features = self.features[keep].copy()
        features[:, FEATURES.index(cleared)] = 0.0
        return replace(
            self,
            texts=[self.texts[c] for c in keep],
            hypothesis=[self.hypothesis[c] for c in keep],
            features=features,
            **changes,
        )


def first_best(scores: np.ndarray) -> int:
    """Index of the highest score; ties (within rounding) go to the earliest."""
    top = float(np.max(scores))
    return int(np.argmax(scores >= top - _TIE * max(1.0, abs(top))))


def cn_posteriors(
    hypotheses: Sequence[Sequence[str]], weights: Sequence[float]
) -> Callable[[Sequence[str]], float]:
    """``candidate words -> mean word posterior`` in the confusion network of ``hypotheses`` (word lists).

    A hypothesis reads along its own path; another text is aligned to the slots (``align_to_slots``): a word
    in a slot scores the share of the votes for that word there, passing a slot the share for EPS, a word
    between slots (which every hypothesis leaves out) 0.
    """
    network = build_confusion_network([" ".join(h) for h in hypotheses], weights)
    total = sum(network.weights)
    known = {tuple(h): k for k, h in enumerate(hypotheses)}

    def posterior(cand: Sequence[str]) -> float:
        k = known.get(tuple(cand))
        if k is not None:
            shares = [slot[word] / total for slot, word in zip(network.slots, network.paths[k], strict=True)]
        else:
            shares, i, j = [], 0, 0
            for move in align_to_slots(list(cand), network.slots)[0]:
                if move == WORD:
                    shares.append(network.slots[i].get(cand[j], 0.0) / total)
                    i, j = i + 1, j + 1
                elif move == PASS:
                    shares.append(network.slots[i].get(EPS, 0.0) / total)
                    i += 1
                else:
                    shares.append(0.0)
                    j += 1
        return sum(shares) / len(shares) if shares else 1.0

    return posterior


def _distinct(
    hypotheses: Sequence[str], generated: str | None, extras: Sequence[str], task: str
) -> tuple[dict[tuple[str, ...], int], list[str], list[int | None], list[set[str]]]:
    """The distinct candidates (by the task's normalised words), first spelling kept: (index of each word
    tuple, texts, the hypothesis index of each text or None, the kinds of source that gave each text)."""
    sources = [(text, k, "hypothesis") for k, text in enumerate(hypotheses)]
    if generated is not None:
        sources.append((generated, None, "generated"))
    sources += [(text, None, "extra") for text in extras]
    keys: dict[tuple[str, ...], int] = {}
    texts: list[str] = []
    hyp_of: list[int | None] = []
    flags: list[set[str]] = []
    for text, k, kind in sources:
        key = tuple(words(text, task))
        at = keys.setdefault(key, len(texts))
        if at == len(texts):
            texts.append(text)
            hyp_of.append(k)
            flags.append(set())
        flags[at].add(kind)
    return keys, texts, hyp_of, flags


def candidate_set(
    hypotheses: Sequence[str],
    lm: Mapping[str, tuple[float, int]],
    *,
    scores: Sequence[float] | None = None,
    generated: str | None = None,
    extras: Sequence[str] = (),
    task: str = "asr",
) -> CandidateSet:
    """The candidates of one record and their features (``FEATURES``).

    Args:
        hypotheses: the shown hypotheses, best first (distinct).
        lm: per surface text (each hypothesis, ``generated``, each extra): (log-probability of text + EOS
            given the prompt, number of tokens scored).
        scores: the recogniser's scores of ``hypotheses`` (higher is better), if the record has them.
        generated: the model's generated text, if any.
        extras: further candidate texts (e.g. confusion-network paths).
        task: whose normaliser decides which texts are the same candidate.
    """
    if not hypotheses:
        raise ValueError("a candidate set needs at least one hypothesis")
    keys, texts, hyp_of, flags = _distinct(hypotheses, generated, extras, task)
    hyp_words = [words(h, task) for h in hypotheses]
    votes = softmax_weights(scores, len(hypotheses))
    log_recog = [math.log(v) for v in votes] if scores is not None else [0.0] * len(hypotheses)
    posterior = cn_posteriors(hyp_words, votes)
    share = [v / sum(votes) for v in votes]
    expected_len = sum(s * max(len(h), 1) for s, h in zip(share, hyp_words, strict=True))
    rows = []
    for text, k, kinds in zip(texts, hyp_of, flags, strict=True):
        cand = words(text, task)
        logp, count = lm[text]
        dists = [Levenshtein.distance(cand, h) for h in hyp_words]
        rows.append(
            [
                logp,
                logp / max(count, 1),
                log_recog[k] if k is not None else min(log_recog),
                -math.log1p(k if k is not None else len(hypotheses)),
                float("generated" in kinds),
                float("extra" in kinds),
                float(k is None),
                min(d / max(len(h), 1) for d, h in zip(dists, hyp_words, strict=True)),
                posterior(cand),
                -sum(s * d for s, d in zip(share, dists, strict=True)) / expected_len,
                math.log((len(cand) + 1) / (len(hyp_words[0]) + 1)),
            ]
        )
    gen = keys[tuple(words(generated, task))] if generated is not None else None
    margin = None
    if generated is not None and gen != 0:
        margin = lm[generated][0] - lm[hypotheses[0]][0]
    return CandidateSet(texts, hyp_of, np.array(rows, dtype=np.float64), gen, margin)


def _standardised(sets: Sequence[CandidateSet]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features padded to records x candidates x features and divided by their spread within records,
    the mask of real candidates, the per-feature scale used)."""
    width = max(len(s.texts) for s in sets)
    feats = np.zeros((len(sets), width, len(FEATURES)))
    valid = np.zeros((len(sets), width), dtype=bool)
    for r, s in enumerate(sets):
        feats[r, : len(s.texts)] = s.features
        valid[r, : len(s.texts)] = True
    counts = valid.sum(1, keepdims=True)
    centred = feats - (feats * valid[..., None]).sum(1, keepdims=True) / counts[..., None]
    spread = np.sqrt((centred**2 * valid[..., None]).sum((0, 1)) / valid.sum())
    scale = np.where(spread > 1e-12, 1.0 / np.maximum(spread, 1e-12), 0.0)
    return feats * scale, valid, scale


def _ascend(
    w: np.ndarray, evaluate: Callable[[np.ndarray], float], grid: Sequence[float], rounds: int
) -> tuple[np.ndarray, float]:
    """Coordinate ascent from ``w``: each weight in turn takes the ``grid`` value with the lowest error
    (strictly lower only), for at most ``rounds`` rounds; returns the weights and their error."""
    err = evaluate(w)
    for _ in range(rounds):
        improved = False
        for d in range(len(FEATURES)):
            for value in grid:
                trial = w.copy()
                trial[d] = value
                if not trial.any():
                    continue
                trial_err = evaluate(trial)
                if trial_err < err:
                    w, err, improved = trial, trial_err, True
        if not improved:
            break
    return w, err


def calibrate_fusion(
    sets: Sequence[CandidateSet],
    error: Callable[[Sequence[str]], float],
    *,
    grid: Sequence[float] = GRID,
    rounds: int = 4,
    starts: Sequence[FusionWeights] = (),
) -> tuple[FusionWeights, float]:
    """Fit the fusion weights that minimise ``error`` (corpus error of the picked texts; lower is better).

    Coordinate ascent over ``grid`` on standardised features (each feature divided by its spread within
    records), from "first hypothesis", from each single-feature decision of ``STARTS`` and from the best
    extra candidate (``EXTRA_START``), and from any given ``starts`` (raw feature units); a point replaces
    the best so far only when strictly better, so ties keep the first hypothesis. Every distinct pick vector
    is scored once.

    Returns:
        (weights in raw feature units, their dev error).
    """
    if not sets:
        raise ValueError("calibrate_fusion needs at least one record")
    std, valid, scale = _standardised(sets)
    memo: dict[bytes, float] = {}

    def evaluate(w: np.ndarray) -> float:
        fused = np.where(valid, std @ w, -np.inf)
        top = fused.max(1, keepdims=True)
        picks = np.argmax(fused >= top - _TIE * np.maximum(1.0, np.abs(top)), axis=1)
        key = picks.tobytes()
        if key not in memo:
            memo[key] = float(error([sets[r].texts[p] for r, p in enumerate(picks)]))
        return memo[key]

    def unit(name: str) -> np.ndarray:
        w = np.zeros(len(FEATURES))
        w[FEATURES.index(name)] = 1.0
        return w

    extra_start = sum(value * unit(name) for name, value in EXTRA_START.items())
    best_w = unit("rank")
    best = evaluate(best_w)
    given = [
        np.array([w.weights.get(n, 0.0) for n in FEATURES]) / np.where(scale, scale, 1.0) for w in starts
    ]
    for start in [unit(name) for name in ("rank", *STARTS)] + [extra_start] + given:
        w, err = _ascend(start, evaluate, grid, rounds)
        if err < best:
            best_w, best = w, err
    raw = best_w * scale
    if not raw.any():  # no feature varies within a record: every record has one candidate
        return FusionWeights.first(), best
    return FusionWeights({n: float(v) for n, v in zip(FEATURES, raw, strict=True) if v != 0.0}), best

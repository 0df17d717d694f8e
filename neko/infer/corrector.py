"""``Corrector``: the Python API of correction (``from neko import Corrector``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from neko.errors import ConfigError, NekoError
from neko.infer.config import InferConfig, check_mode
from neko.infer.correction import Correction
from neko.infer.fusion import EXTRA_SOURCES, CandidateSet, FusionWeights, candidate_set
from neko.infer.generate import generate_all, length_batches
from neko.infer.guard import GuardConfig, changes_first, guard_output, judge
from neko.infer.prompt import Prepared, answer_ids, new_token_budget, prepare
from neko.infer.select import select_best
from neko.records import Record, as_record, validate

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "default_model"


def default_model_dir() -> Path:
    """The bundled model folder; a NekoError when no bundled model is installed."""
    if not DEFAULT_MODEL_DIR.is_dir() or not any(DEFAULT_MODEL_DIR.glob("*.json")):
        raise NekoError(
            f"no bundled model is installed (expected one in {DEFAULT_MODEL_DIR}); pass a model folder "
            "written by `neko train` or `neko export` (--model PATH, or Corrector.from_pretrained(PATH))"
        )
    return DEFAULT_MODEL_DIR


def pick_device(device: str | None) -> str:
    """``device`` as given, else the first CUDA GPU when there is one, else the CPU."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Corrector:
    """Corrects ASR n-best lists, MT candidates, OCR lines and ungrammatical sentences.

    Build one with ``Corrector.from_pretrained(path)`` (or ``Corrector(model, tokenizer)`` for a model in
    memory), then call ``correct`` for one input or ``correct_many`` for a batch of records.
    """

    def __init__(
        self, model: Any, tokenizer: Any, config: InferConfig | None = None, model_config: Any = None
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = config or InferConfig()
        self.model_config = model_config
        # The prompt style the model was trained on (a model config without one: the original full prompt).
        self.prompt_style = getattr(model_config, "prompt", "full")

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path | None = None,
        mode: str = "auto",
        device: str | None = None,
        threads: int | None = None,
        config: InferConfig | None = None,
    ) -> Corrector:
        """Load a corrector.

        Args:
            name_or_path: None for the bundled default model (``neko/default_model/``), or a checkpoint
                folder written by ``neko train`` or ``neko export``.
            mode: default mode of ``correct``: ``auto``, ``generate``, ``select`` or ``constrained``.
            device: torch device; default the first GPU when there is one, else the CPU.
            threads: torch CPU threads (default: torch's choice, all cores).
            config: other decoding settings (``mode`` overrides its mode). Without one, the guard
                thresholds are the folder's (``neko_config.json`` keys ``guard`` and ``task_guards``) when
                it has them, else the defaults, and the fusion weights its ``task_fusion``; a given config
                is used as is.
        """
        import torch

        check_mode(mode)
        if threads:
            torch.set_num_threads(threads)
        from neko.infer.loading import load_folder, read_fusion, read_guard

        path = Path(name_or_path) if name_or_path is not None else default_model_dir()
        if config is None:
            # Before the slow load: a bad guard entry fails fast.
            general, per_task = read_guard(path)
            config = InferConfig(
                guard=general or GuardConfig(), task_guards=per_task, task_fusion=read_fusion(path)
            )
        model, tokenizer, model_config = load_folder(path)
        model.to(pick_device(device))
        return cls(model, tokenizer, replace(config, mode=mode), model_config)

    def correct(
        self,
        hypotheses: str | Sequence[str],
        task: str = "asr",
        source: str | None = None,
        mode: str | None = None,
    ) -> Correction:
        """Correct one input: an n-best list (best first) or a single text (OCR line, sentence)."""
        hyps = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
        record = validate({"id": "0", "task": task, "dataset": "input", "hypotheses": hyps, "source": source})
        return self.correct_many([record], mode=mode)[0]

    def correct_many(
        self,
        records: Iterable[Record | dict[str, Any]],
        batch_size: int = 16,
        mode: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[Correction]:
        """Correct records in batches; results come back in input order.

        ``progress`` is called with the number of records finished after each batch.
        """
        mode = check_mode(mode or self.config.mode)
        if batch_size < 1:
            raise ConfigError("batch size must be at least 1")
        recs = [as_record(r) for r in records]
        results: list[Correction | None] = [None] * len(recs)
        for task, indices in self._groups(recs).items():
            prepared = [prepare(self.tokenizer, recs[i], self.config, self.prompt_style) for i in indices]
            with self._routing(task):
                if mode == "select":
                    outs = self._select(recs, indices, prepared, batch_size, progress)
                elif mode == "constrained":
                    outs = self._constrained(recs, indices, prepared, batch_size, progress)
                else:
                    outs = self._generate(recs, indices, prepared, batch_size, mode, progress)
            for i, out in zip(indices, outs, strict=True):
                results[i] = out
        return [r for r in results if r is not None]

    def _select(self, recs, indices, prepared: list[Prepared], batch_size, progress) -> list[Correction]:
        outs: list[Correction | None] = [None] * len(prepared)
        # The prompt pass dominates (each prompt runs once): batch by prompt length to keep padding small.
        for batch in self._batches(prepared, batch_size):
            picks = select_best(
                self.model,
                self.tokenizer,
                [prepared[j].prompt_ids for j in batch],
                [prepared[j].hypothesis_ids for j in batch],
                reduce=self.config.select_score,
            )
            for j, (best, scores) in zip(batch, picks, strict=True):
                rec = recs[indices[j]]
                index = prepared[j].shown[best]
                outs[j] = Correction(
                    text=rec.hypotheses[index],
                    mode="select",
                    task=rec.task,
                    index=index,
                    scores=scores,
                    truncated=prepared[j].truncated,
                )
            if progress:
                progress(len(batch))
        return outs  # type: ignore[return-value]

    def _constrained(self, recs, indices, prepared: list[Prepared], batch_size, progress) -> list[Correction]:
        """``constrained`` for the tasks with a lattice (ASR, OCR), ``select`` for the others."""
        from neko.infer.constrained import LATTICE_TASKS, prepared_paths

        outs: list[Correction | None] = [None] * len(prepared)
        cn = [j for j, p in enumerate(prepared) if p.record.task in LATTICE_TASKS]
        other = [j for j, p in enumerate(prepared) if p.record.task not in LATTICE_TASKS]
        if other:
            picked = self._select(
                recs, [indices[j] for j in other], [prepared[j] for j in other], batch_size, progress
            )
            for j, out in zip(other, picked, strict=True):
                outs[j] = out
        for batch in self._batches([prepared[j] for j in cn], batch_size):
            chosen = [cn[b] for b in batch]
            paths = prepared_paths(self.model, self.tokenizer, [prepared[j] for j in chosen], self.config)
            for j, (best,) in zip(chosen, paths, strict=True):
                rec = recs[indices[j]]
                same = [k for k in prepared[j].shown if " ".join(rec.hypotheses[k].split()) == best.text]
                outs[j] = Correction(
                    # A path that is a shown hypothesis returns it as given (its own spacing).
                    text=rec.hypotheses[same[0]] if same else best.text,
                    mode="constrained",
                    task=rec.task,
                    index=same[0] if same else None,
                    truncated=prepared[j].truncated,
                )
            if progress:
                progress(len(batch))
        return outs  # type: ignore[return-value]

    def _generate(
        self, recs, indices, prepared: list[Prepared], batch_size, mode, progress
    ) -> list[Correction]:
        outs: list[Correction | None] = [None] * len(prepared)
        todo, unwritten = [], []
        for j, p in enumerate(prepared):
            rec = recs[indices[j]]
            if mode == "auto" and self._keeps_first(rec):
                outs[j] = self._kept(rec, p)
            elif mode == "auto" and self._fused(rec) and not self._fusion_of(rec).generate:
                unwritten.append(j)
            else:
                todo.append(j)
        if progress and len(todo) + len(unwritten) < len(prepared):
            progress(len(prepared) - len(todo) - len(unwritten))
        if unwritten:
            part = [prepared[j] for j in unwritten]
            found = self._fused_sets(
                recs, [indices[j] for j in unwritten], part, [None] * len(part), mode, batch_size
            )
            for j, candidates in zip(unwritten, found, strict=True):
                outs[j] = self._fused_correction(recs[indices[j]], prepared[j], None, candidates)
            if progress:
                progress(len(unwritten))
        generated = self._generate_some(
            recs, [indices[j] for j in todo], [prepared[j] for j in todo], batch_size, mode, progress
        )
        for j, out in zip(todo, generated, strict=True):
            outs[j] = out
        return outs  # type: ignore[return-value]

    def _keeps_first(self, rec: Record) -> bool:
        """True when ``auto`` returns the first shown hypothesis of ``rec`` whatever the model writes.

        That is the case under a guard that accepts no change (``min_margin`` inf) and no fusion for the
        record's domain: the calibrated decision of a task or domain where dev data never vouched for an
        edit. Such a record is not generated at all (same output, a fraction of the time).
        """
        if self._fused(rec) or self.config.score_margins:
            return False
        return self.config.guard_for(rec.task).min_margin == float("inf")

    def _kept(self, rec: Record, p: Prepared) -> Correction:
        """The ``auto`` result of a record the guard keeps as it was (``_keeps_first``), without generating."""
        return Correction(
            text=rec.hypotheses[p.shown[0]],
            fallback=True,
            mode="auto",
            task=rec.task,
            index=p.shown[0],
            truncated=p.truncated,
        )

    def _generate_some(
        self, recs, indices, prepared: list[Prepared], batch_size, mode, progress
    ) -> list[Correction]:
        outs: list[Correction] = []
        # Chunks of a few batches give the progress callback something to report on long inputs.
        chunk = batch_size * 4
        for start in range(0, len(prepared), chunk):
            part = prepared[start : start + chunk]
            texts = generate_all(
                self.model,
                self.tokenizer,
                [p.prompt_ids for p in part],
                [new_token_budget(p, self.config) for p in part],
                batch_size=batch_size,
                num_beams=self.config.num_beams,
                max_batch_tokens=self.config.max_batch_tokens,
            )
            margins = self._margins(recs, indices[start : start + len(part)], part, texts, mode, batch_size)
            sets = self._fused_sets(recs, indices[start : start + len(part)], part, texts, mode, batch_size)
            for j, (p, text) in enumerate(zip(part, texts, strict=True)):
                rec = recs[indices[start + j]]
                if sets[j] is not None:
                    outs.append(self._fused_correction(rec, p, text, sets[j]))
                elif mode == "auto":
                    shown = [rec.hypotheses[k] for k in p.shown]
                    guard = self.config.guard_for(rec.task)
                    final, fell_back = guard_output(text, shown, guard, rec.task, margins[j])
                    outs.append(
                        Correction(
                            text=final,
                            fallback=fell_back,
                            mode="auto",
                            task=rec.task,
                            index=0 if fell_back else None,
                            generated=text,
                            truncated=p.truncated,
                            margin=margins[j],
                        )
                    )
                else:
                    outs.append(Correction(text=text, mode="generate", task=rec.task, truncated=p.truncated))
            if progress:
                progress(len(part))
        return outs

    def _margins(
        self, recs, indices, part: list[Prepared], texts: list[str], mode: str, batch_size: int
    ) -> list[float | None]:
        """score(generated) - score(first shown hypothesis) where the guard needs it, else None.

        Needed for an ``auto`` output that changes the first hypothesis and passes the edit checks of a
        guard with a margin check (or any changing output when ``score_margins`` is on). Both texts are
        scored as answers to the same prompt, in one ``select`` pass per batch.
        """
        margins: list[float | None] = [None] * len(part)
        if mode != "auto":
            return margins
        need = []
        for j, (p, text) in enumerate(zip(part, texts, strict=True)):
            rec = recs[indices[j]]
            shown = [rec.hypotheses[k] for k in p.shown]
            guard = self.config.guard_for(rec.task)
            if self._fused(rec) or not changes_first(text, shown, rec.task):
                continue  # fusion scores its candidates (and the margin) itself
            if self.config.score_margins or (
                guard.needs_scores and judge(text, shown, guard, rec.task).accepted
            ):
                need.append(j)
        for start in range(0, len(need), batch_size):
            batch = need[start : start + batch_size]
            picks = select_best(
                self.model,
                self.tokenizer,
                [part[j].prompt_ids for j in batch],
                [[answer_ids(self.tokenizer, texts[j]), part[j].hypothesis_ids[0]] for j in batch],
                reduce=self.config.select_score,
            )
            for j, (_, scores) in zip(batch, picks, strict=True):
                # Identical token ids are scored once: no margin between a text and itself.
                margins[j] = scores[0] - scores[1] if len(scores) > 1 else 0.0
        return margins

    def score_candidates(
        self,
        records: Sequence[Record | dict[str, Any]],
        generated: Sequence[str | None],
        extras: Sequence[Sequence[str]] | None = None,
        batch_size: int = 16,
        sources: Sequence[str] = (),
    ) -> list[CandidateSet]:
        """The fusion candidates of each record and their features (``neko.infer.fusion``).

        Candidates are the shown hypotheses, ``generated[i]`` (None: no generated text), ``extras[i]``
        (any further texts) and the texts of each extra source named in ``sources``
        (``fusion.EXTRA_SOURCES``, e.g. ``constrained``); every one is scored as the answer to the record's
        prompt, in one ``select``-style pass per batch. ``neko calibrate`` fits the fusion weights on these
        features; ``auto`` mode computes them for the tasks that have weights.
        """
        recs = [as_record(r) for r in records]
        if len(generated) != len(recs) or (extras is not None and len(extras) != len(recs)):
            raise ValueError("score_candidates needs one generated text (or None) and extra list per record")
        sets: list[CandidateSet | None] = [None] * len(recs)
        for task, indices in self._groups(recs).items():
            prepared = [prepare(self.tokenizer, recs[i], self.config, self.prompt_style) for i in indices]
            with self._routing(task):
                more = self._source_texts(prepared, [tuple(sources)] * len(prepared))
                given = [list(extras[i]) if extras is not None else [] for i in indices]
                found = self._candidate_sets(
                    prepared,
                    [generated[i] for i in indices],
                    [g + m for g, m in zip(given, more, strict=True)],
                    batch_size,
                )
            for i, candidates in zip(indices, found, strict=True):
                sets[i] = candidates
        return [s for s in sets if s is not None]

    def _source_texts(self, prepared: list[Prepared], wanted: list[tuple[str, ...]]) -> list[list[str]]:
        """The extra candidate texts of each record from the sources it wants (``fusion.EXTRA_SOURCES``)."""
        texts: list[list[str]] = [[] for _ in prepared]
        for name in dict.fromkeys(n for names in wanted for n in names):
            rows = [j for j, names in enumerate(wanted) if name in names]
            found = EXTRA_SOURCES[name](self.model, self.tokenizer, [prepared[j] for j in rows], self.config)
            for j, more in zip(rows, found, strict=True):
                texts[j] += more
        return texts

    def _candidate_sets(
        self,
        prepared: list[Prepared],
        generated: Sequence[str | None],
        extras: Sequence[Sequence[str]],
        batch_size: int,
    ) -> list[CandidateSet]:
        """Score every candidate text of each prepared record, then build its features."""
        surfaces = [
            [*p.record.hypotheses, *([g] if g is not None else []), *more]
            for p, g, more in zip(prepared, generated, extras, strict=True)
        ]
        ids = [
            [*p.hypothesis_ids, *(answer_ids(self.tokenizer, t) for t in texts[len(p.shown) :])]
            for p, texts in zip(prepared, surfaces, strict=True)
        ]
        logps: list[list[float]] = [[] for _ in prepared]
        for batch in self._batches(prepared, batch_size, ids):
            picks = select_best(
                self.model,
                self.tokenizer,
                [prepared[j].prompt_ids for j in batch],
                [ids[j] for j in batch],
                reduce="sum",
            )
            for j, (_, scores) in zip(batch, picks, strict=True):
                logps[j] = scores
        sets = []
        for j, p in enumerate(prepared):
            # +1: the closing EOS is scored too.
            lm = {t: (lp, len(i) + 1) for t, lp, i in zip(surfaces[j], logps[j], ids[j], strict=True)}
            sets.append(
                candidate_set(
                    p.record.hypotheses,
                    lm,
                    scores=p.record.scores,
                    generated=generated[j],
                    extras=extras[j],
                    task=p.record.task,
                )
            )
        return sets

    def _fused_sets(
        self, recs, indices, part: list[Prepared], texts: list[str | None], mode: str, batch_size: int
    ) -> list[CandidateSet | None]:
        """The candidate sets of the ``auto`` records whose task has fusion weights (None for the others;
        ``texts``: the generated text of each, None where none was generated)."""
        sets: list[CandidateSet | None] = [None] * len(part)
        if mode != "auto" or not self.config.task_fusion:
            return sets
        need = [j for j in range(len(part)) if self._fused(recs[indices[j]])]
        wanted = [self._fusion_of(recs[indices[j]]).extras for j in need]
        more = self._source_texts([part[j] for j in need], wanted)
        found = self._candidate_sets([part[j] for j in need], [texts[j] for j in need], more, batch_size)
        for j, candidates in zip(need, found, strict=True):
            sets[j] = candidates
        return sets

    def _fused(self, rec: Record) -> bool:
        """True when ``auto`` decides ``rec`` by fusion: its task has weights and they serve its domain."""
        fusion = self.config.task_fusion.get(rec.task)
        return fusion is not None and fusion.serves(rec.dataset)

    def _fusion_of(self, rec: Record) -> FusionWeights:
        """The fusion weights that decide ``rec``: its task's, for a record with or without scores, with one
        distinct hypothesis or more."""
        return self.config.task_fusion[rec.task].for_record(rec.dataset, rec.scores is not None, rec.single)

    def _fused_correction(
        self, rec: Record, p: Prepared, text: str | None, candidates: CandidateSet
    ) -> Correction:
        """The ``auto`` result of one record under its task's fusion weights: the fused argmax (``text``: the
        generated text, None where the weights do not use one)."""
        best, fused = self._fusion_of(rec).pick(candidates.features)
        shown = candidates.hypothesis[best]
        return Correction(
            # A hypothesis comes back whole (the prompt may show it cut to the token budget).
            text=rec.hypotheses[p.shown[shown]] if shown is not None else candidates.texts[best],
            fallback=shown == 0,
            mode="auto",
            task=rec.task,
            index=p.shown[shown] if shown is not None else None,
            generated=text,
            truncated=p.truncated,
            margin=candidates.margin,
            fused=float(fused[best]),
            features=candidates.feature_dict(best),
        )

    def _batches(
        self, prepared: list[Prepared], batch_size: int, answers: list[list[list[int]]] | None = None
    ) -> list[list[int]]:
        """Scoring batches of ``prepared`` (indices), by prompt length: ``batch_size`` rows at most, and rows x
        (prompt + every scored answer's tokens) within ``max_batch_tokens`` (``answers``: default the shown
        hypotheses)."""
        answers = answers or [p.hypothesis_ids for p in prepared]
        return length_batches(
            [len(p.prompt_ids) for p in prepared],
            batch_size,
            self.config.max_batch_tokens,
            [
                len(p.prompt_ids) + sum(len(a) + 1 for a in ans)
                for p, ans in zip(prepared, answers, strict=True)
            ],
        )

    def _groups(self, recs: list[Record]) -> dict[str | None, list[int]]:
        """Record indices that run together: by task when ``route_task`` forces each task's expert, else all."""
        groups: dict[str | None, list[int]] = {}
        for i, rec in enumerate(recs):
            groups.setdefault(rec.task if self.config.route_task else None, []).append(i)
        return groups

    @contextlib.contextmanager
    def _routing(self, task: str | None) -> Iterator[None]:
        """Force the task's expert while decoding when ``route_task`` is on; else leave the router alone."""
        if task is None:
            yield
            return
        if self.model_config is None or not hasattr(self.model_config, "expert_for"):
            raise ConfigError(
                "route_task needs the model's ModelConfig (load it with Corrector.from_pretrained)"
            )
        from neko.model.routing import task_routing

        # One id for the whole group: the routing hook repeats it over every sequence of each batch.
        expert = self.model_config.expert_for(task)
        with task_routing(self.model, [expert], "neko", record=False):
            yield

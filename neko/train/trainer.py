"""The training loop: accelerate (single process, DDP or DeepSpeed), LoRA + router, exact resume.

One optimiser step = ``grad_accum`` micro-batches from the token-budget sampler. The loss of a micro-batch
is the LM loss on target tokens plus the weighted router loss: ``router_loss_weight`` times the
cross-entropy of the routers against the task expert (neko routing), or ``aux_loss_coef`` times the
load-balancing loss (learned routing), plus ``rank_loss_weight`` times the n-best ranking loss
(``neko.train.ranking``) when it is on. ``Accelerator(cpu=True)`` is never used: it silently disables
DeepSpeed; on a machine without a GPU accelerate picks the CPU by itself.

Resume: the checkpoint holds everything that influences the next step (weights that train, optimiser,
scheduler, sampler buffer and mixture positions, RNG states), so a run stopped at step k and resumed logs
the same losses as an uninterrupted one. SIGINT / SIGTERM finish the current step, save, and stop.
"""

from __future__ import annotations

import json
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from neko.allocator import release_freed_memory
from neko.errors import ConfigError
from neko.train.batching import build_sampler, collate, rank_batches
from neko.train.checkpoint import latest_checkpoint, load_checkpoint, recipe_changes, save_checkpoint
from neko.train.config import RunConfig, config_to_dict, save_config
from neko.train.loss import target_lm_loss


class _StopFlag:
    """Set by SIGINT / SIGTERM; the loop checks it between optimiser steps."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no signal handling, stop only at max_steps
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _Budget:
    """The wall-time budget of a run (``train.budget_minutes``), summed over resumed runs.

    Once ``PROBE`` steps are timed, and again every ``REFIT`` steps while less than half of the budget is
    spent (often: a fit taken while the machine's load settles can end a run early otherwise), it fits the step count to the budget from the median of the recent step times (the very first
    step, which pays for warm-up allocations, left out), so that the learning-rate schedule ends when the
    time does even when the machine's load changes early on; ``spent`` stops the run should it slow down later.
    """

    PROBE, REFIT, WINDOW = 4, 4, 20

    def __init__(self, minutes: float | None, elapsed: float = 0.0, fitted: bool = False) -> None:
        self.seconds = None if minutes is None else 60.0 * minutes
        self.elapsed = elapsed
        self.fitted = fitted
        self._times: list[float] = []

    def add(self, seconds: float) -> None:
        """Count one optimiser step's time."""
        self.elapsed += seconds
        self._times.append(seconds)

    def fit(self, step: int, max_steps: int) -> int | None:
        """The step count that fills the budget (at most ``max_steps``) when a fit is due, else None."""
        count = len(self._times)
        if self.seconds is None or count < self.PROBE or self.elapsed > 0.5 * self.seconds:
            return None
        if count != self.PROBE and count % self.REFIT:
            return None
        self.fitted = True
        per_step = statistics.median(self._times[1:][-self.WINDOW :])
        return min(max_steps, step + max(1, int((self.seconds - self.elapsed) / per_step)))

    @property
    def spent(self) -> bool:
        """True when the budget is used up."""
        return self.seconds is not None and self.elapsed >= self.seconds


def _append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop rows logged after the checkpoint being resumed (they will be logged again)."""
    if path.is_file():
        rows = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        kept = [line for line in rows if json.loads(line).get("step", 0) <= step]
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _fix_deepspeed_ranks(accelerator: Any) -> None:
    """Give accelerate the real rank and world size when DeepSpeed runs on CPU.

    accelerate 1.15 starts DeepSpeed's process group on CPU, but finding no GPU backend it records one
    process of index 0 on every rank: each rank would then read the whole batch stream, log, and write
    the checkpoint files. The process group itself is right, so its numbers are copied over.
    """
    import torch.distributed as dist
    from accelerate import PartialState

    if accelerator.distributed_type.value != "DEEPSPEED" or not dist.is_initialized():
        return
    for state in (PartialState(), accelerator.state):  # two shared-state objects, each read by accelerate
        state.num_processes, state.process_index = dist.get_world_size(), dist.get_rank()


@contextmanager
def _without_zero3_init(accelerator: Any) -> Iterator[None]:
    """Build the model whole when ZeRO-3 runs with ``zero3_init_flag: false``.

    accelerate still registers the ZeRO-3 config with transformers, which then initialises every model it
    builds as partitioned, including the MoE that upcycling builds on the meta device (and fails). Without
    the init flag the model is meant to be built whole and partitioned by ``accelerator.prepare``.
    """
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None or plugin.zero3_init_flag or not plugin.hf_ds_config.is_zero3():
        yield
        return
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        plugin.set_deepspeed_weakref()


def _gathered_trainable(accelerator: Any, model: Any) -> AbstractContextManager:
    """Under ZeRO-3, every rank gathers the full trainable weights (LoRA, routers) for ``final/``."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None or plugin.zero_stage != 3:
        return nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters([p for p in model.parameters() if p.requires_grad])


class _Run:
    """One training run: what its steps share (accelerator, model, optimiser, scheduler, sampler, counters).

    ``train`` is the recipe: ``_Run(config, resume)`` sets up, ``start`` or ``resume`` picks the first step,
    ``loop`` runs the optimiser steps (``step`` each), ``checkpoint`` and ``save_final`` write.
    """

    def __init__(self, config: RunConfig, resume: bool) -> None:
        import torch
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        self.config, self.tc = config, config.train
        torch.set_num_threads(self.tc.threads)
        self.out = Path(config.output_dir)
        self.metrics_path = self.out / "metrics.jsonl"
        self.accelerator = Accelerator(
            gradient_accumulation_steps=self.tc.grad_accum, mixed_precision=config.mixed_precision
        )
        _fix_deepspeed_ranks(self.accelerator)
        set_seed(self.tc.seed)
        self._setup_model(resume)
        self.scheduler = self._schedule(self.tc.max_steps)
        self.sampler = build_sampler(self.tc, self.tokenizer, config.model.prompt)
        if self.accelerator.is_main_process:
            mixture = self.sampler.source.mixture
            shares = ", ".join(
                f"{s.name} {len(s.records)} ({p:.0%})"
                for s, p in zip(mixture.sources, mixture.probs, strict=True)
            )
            print(f"training mixture (records, share of draws): {shares}", file=sys.stderr, flush=True)
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.inner = self.accelerator.unwrap_model(self.model)
        model = config.model
        self.router_weight = model.aux_loss_coef if model.routing == "learned" else model.router_loss_weight
        self.step, self.tokens_seen = 0, 0
        self.budget = _Budget(self.tc.budget_minutes)
        self.ceiling = (
            self.tc.max_steps
        )  # a fit may lengthen the run again up to the recipe's count, never past it

    def _setup_model(self, resume: bool) -> None:
        """The model (from ``init_from`` unless resuming), in training mode, and its AdamW optimiser."""
        import torch

        from neko.model.io import build_model

        with _without_zero3_init(self.accelerator):
            self.model, self.tokenizer = build_model(self.config.model)
        if self.config.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        if self.config.compile_experts:
            from neko.model.shared_training import compile_trainable_experts

            compile_trainable_experts(self.model)
        self.model.train()
        if self.config.init_from and not resume:
            from neko.model.io import load_trained_weights

            load_trained_weights(self.model, self.config.init_from)
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=self.tc.lr,
            weight_decay=self.tc.weight_decay,
        )

    def _schedule(self, total: int) -> Any:
        """A learning-rate schedule of ``total`` optimiser steps.

        It is stepped by hand once per optimiser step (accelerate's wrapper would step it once per process),
        so the schedule is in optimiser steps whatever the world size.
        """
        from transformers import get_scheduler

        tc = self.tc
        return get_scheduler(
            tc.schedule, self.optimizer, num_warmup_steps=tc.warmup_steps, num_training_steps=total
        )

    def start(self) -> None:
        """A fresh run: an empty metrics log."""
        if self.accelerator.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            self.metrics_path.unlink(missing_ok=True)

    def resume(self, found: Path) -> None:
        """Continue from checkpoint ``found``: state, counters, a fitted schedule, the metrics log cut back."""
        state = load_checkpoint(
            found, self.accelerator, self.model, self.optimizer, self.scheduler, self.sampler
        )
        self.step, self.tokens_seen = state["step"], state.get("tokens", 0)
        fitted = state.get("fitted_steps")
        self.budget = _Budget(self.tc.budget_minutes, state.get("elapsed", 0.0), bool(fitted))
        if fitted:  # the schedule was fitted to the time budget: keep its length
            self.tc.max_steps = fitted
            self.scheduler = self._schedule(self.tc.max_steps)
            self.scheduler.load_state_dict(state["scheduler"])
        if self.accelerator.is_main_process:
            _truncate_metrics(self.metrics_path, self.step)
            print(f"resumed from {found} at step {self.step}")

    def setup_data(self) -> None:
        """Save the resolved recipe; load the dev sets; open this rank's batch stream and the progress bar."""
        from tqdm import tqdm

        from neko.train.dev import load_dev

        if self.accelerator.is_main_process:
            save_config(self.config, self.out / "config.yaml")
        self.dev_loss_set, self.dev_decode_set = load_dev(self.tc) if self.tc.dev else ([], [])
        accelerator = self.accelerator
        self.batches = rank_batches(iter(self.sampler), accelerator.process_index, accelerator.num_processes)
        self.bar = tqdm(
            total=self.tc.max_steps, initial=self.step, disable=not accelerator.is_main_process, desc="train"
        )

    def checkpoint(self) -> Path:
        """Save everything the next step depends on; returns the checkpoint folder."""
        tc = self.tc
        return save_checkpoint(
            self.accelerator,
            self.model,
            self.optimizer,
            self.scheduler,
            self.sampler,
            self.config,
            self.step,
            {
                "tokens": self.tokens_seen,
                "elapsed": self.budget.elapsed,
                "fitted_steps": tc.max_steps if tc.budget_minutes and self.budget.fitted else None,
            },
        )

    def evaluate(self) -> None:
        """Log the dev loss and dev metrics of the current weights (when the recipe has dev data)."""
        from neko.train.dev import dev_loss, dev_metrics

        if not (self.dev_loss_set or self.dev_decode_set):
            return
        inner, tc, model = self.inner, self.tc, self.config.model
        inner.eval()
        row = {"step": self.step, "dev_loss": dev_loss(inner, self.tokenizer, self.dev_loss_set, tc, model)}
        row["dev"] = dev_metrics(inner, self.tokenizer, self.dev_decode_set, tc, model)
        inner.train()
        if self.accelerator.is_main_process:
            _append_jsonl(self.metrics_path, row)

    def loop(self, invoked: float, stop_after: int | None, max_minutes: float | None) -> Path | None:
        """Optimiser steps up to ``max_steps``; the checkpoint folder when the run stops early (planned)."""
        if self.step == 0:
            self.evaluate()  # the "before" figures of the run
        tc = self.tc
        with _StopFlag() as stop:
            while self.step < tc.max_steps:
                sums, lr, elapsed = self.optimiser_step()
                # Batches of ever-different shapes leave glibc's heap full of freed blocks it keeps: measured
                # here, a neko-tiny run's RSS grew 9.3 -> 12.8 GB in 20 steps without this (untimed).
                release_freed_memory()
                self._fit_budget(elapsed)
                self._log(sums, lr, elapsed)
                self.bar.update(1)
                if self.step == tc.max_steps or (tc.eval_every and self.step % tc.eval_every == 0):
                    self.evaluate()
                out_of_time = max_minutes is not None and time.perf_counter() - invoked >= 60.0 * max_minutes
                stopping = stop.raised or (stop_after is not None and self.step >= stop_after)
                if self._agree(stopping or (out_of_time and self.step < tc.max_steps)):
                    return self._stop(interrupted=stop.raised)
                if tc.save_every and self.step % tc.save_every == 0 and self.step < tc.max_steps:
                    self.checkpoint()
        return None

    def optimiser_step(self) -> tuple[Any, float, float]:
        """One optimiser step of ``grad_accum`` micro-batches; returns the sums over them (all ranks: lm
        loss, router loss, tokens, padded, micro-batches, rank loss), the learning rate used and the time."""
        import torch

        started = time.perf_counter()
        sums = torch.zeros(6, dtype=torch.float64)
        for _ in range(self.tc.grad_accum):
            self._micro_batch(sums)
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        self.step += 1
        accelerator = self.accelerator
        if accelerator.num_processes > 1:
            sums = accelerator.reduce(sums.to(accelerator.device), reduction="sum").cpu()
        self.tokens_seen += int(sums[2])
        elapsed = time.perf_counter() - started
        if accelerator.num_processes > 1:  # every rank takes the same budget decisions
            elapsed = float(accelerator.reduce(torch.tensor([elapsed], device=accelerator.device), "mean"))
        return sums, lr, elapsed

    def _micro_batch(self, sums: Any) -> None:
        """Forward and backward of one micro-batch (the optimiser steps when accumulation is complete)."""
        import torch

        from neko.model.routing import task_routing
        from neko.train.ranking import rank_loss

        tc, config, accelerator, model = self.tc, self.config, self.accelerator, self.model
        records = next(self.batches)
        batch = collate(records, self.tokenizer, tc.max_len, config.model, accelerator.device)
        with accelerator.accumulate(model):
            with task_routing(self.inner, batch.expert_ids, config.model.routing) as routing:
                lm_loss = target_lm_loss(model, batch.input_ids, batch.attention_mask, batch.labels)
                router_loss = routing.router_loss(batch.attention_mask).to(lm_loss.device)
            loss = lm_loss + self.router_weight * router_loss
            if tc.rank_loss_weight:
                with accelerator.autocast():
                    rank = rank_loss(
                        self.inner,
                        self.tokenizer,
                        records,
                        tc.max_len,
                        tc.rank_temperature,
                        batch.expert_ids,
                        config.model.routing,
                        config.model.prompt,
                    )
                loss = loss + tc.rank_loss_weight * rank
                sums[5] += float(rank.detach())
            accelerator.backward(loss)
            if accelerator.sync_gradients and tc.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad()
        sums[:5] += torch.tensor(
            [float(lm_loss.detach()), float(router_loss.detach()), batch.tokens, batch.padded, 1],
            dtype=torch.float64,
        )

    def _fit_budget(self, elapsed: float) -> None:
        """Count the step's time; refit the step count and schedule to the budget, or end a spent run."""
        tc, budget = self.tc, self.budget
        budget.add(elapsed)
        fitted = budget.fit(self.step, self.ceiling)
        if fitted is not None and fitted != tc.max_steps:
            tc.max_steps, self.bar.total = fitted, fitted
            self.scheduler = self._schedule(fitted)
            for _ in range(self.step):
                self.scheduler.step()
            if self.accelerator.is_main_process:
                save_config(self.config, self.out / "config.yaml")
                self.bar.write(f"time budget {tc.budget_minutes:g} min: {fitted} optimiser steps in all")
        elif budget.spent and self.step < tc.max_steps:
            self.bar.write(f"time budget spent after step {self.step} of {tc.max_steps}")
            tc.max_steps = self.step

    def _log(self, sums: Any, lr: float, elapsed: float) -> None:
        """Append the step's row to ``metrics.jsonl`` every ``log_every`` steps (main process)."""
        tc = self.tc
        if not (self.accelerator.is_main_process and tc.log_every and self.step % tc.log_every == 0):
            return
        lm, rl = float(sums[0] / sums[4]), float(sums[1] / sums[4])
        row = {
            "step": self.step,
            "loss": lm + self.router_weight * rl,
            "lm_loss": lm,
            "router_loss": rl,
            "lr": lr,
            "tokens": self.tokens_seen,
            "padding": 1.0 - float(sums[2] / sums[3]),
            "tokens_per_s": float(sums[2]) / elapsed,
        }
        if tc.rank_loss_weight:
            row["rank_loss"] = float(sums[5] / sums[4])
            row["loss"] += tc.rank_loss_weight * row["rank_loss"]
        _append_jsonl(self.metrics_path, row)
        self.bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")

    def _agree(self, stopping: bool) -> bool:
        """True when any rank stops (every rank then stops at the same step)."""
        import torch

        accelerator = self.accelerator
        if accelerator.num_processes > 1:
            flag = accelerator.reduce(torch.tensor([int(stopping)], device=accelerator.device), "sum")
            stopping = bool(flag.item())
        return stopping

    def _stop(self, interrupted: bool) -> Path:
        """Save and stop early: the checkpoint folder after a planned stop, KeyboardInterrupt after a signal."""
        path = self.checkpoint()
        self.bar.close()
        message = f"stopped at step {self.step}"
        if interrupted:
            raise KeyboardInterrupt(f"{message}; checkpoint {path}; continue with --resume")
        if self.accelerator.is_main_process:  # stop_after or max_minutes: a planned stop
            print(f"{message} of {self.tc.max_steps}; checkpoint {path}; continue with --resume")
        return path

    def save_final(self) -> Path:
        """The last checkpoint, then the trained corrector and its recipe in ``<output_dir>/final``."""
        from neko.model import io

        self.bar.close()
        self.checkpoint()
        final = self.out / "final"
        accelerator = self.accelerator
        with _gathered_trainable(accelerator, self.inner):
            if accelerator.is_main_process:
                training = {
                    "steps": self.step,
                    "tokens": self.tokens_seen,
                    "elapsed": self.budget.elapsed,
                    "recipe": config_to_dict(self.config),
                }
                io.save_pretrained_corrector(
                    self.inner, self.tokenizer, self.config.model, final, training=training
                )
                save_config(self.config, final / "train_config.yaml")
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return final


def _checkpoint_to_resume(config: RunConfig, resume: bool) -> Path | None:
    """The checkpoint the run continues from (with ``resume``, the latest in ``output_dir``), None for a fresh
    run. Raises ConfigError where the folder's checkpoints belong to another recipe, or to an earlier run
    that a fresh one would mix with."""
    out = Path(config.output_dir)
    found = latest_checkpoint(out)
    if found is None:
        return None
    if not resume:
        raise ConfigError(
            f"{out} holds the checkpoints of an earlier run (latest {found.name}): add --resume to continue "
            f"it, or delete {out / 'checkpoints'} (or set another output_dir) to start over"
        )
    changes = recipe_changes(found, config)
    if changes:
        raise ConfigError(
            f"--resume: {found} was written by another recipe ({'; '.join(changes)}): resume it with that "
            f"recipe, or start a new run in another output_dir (init_from: {out / 'final'} starts from its "
            "trained weights)"
        )
    return found


def train(
    config: RunConfig,
    resume: bool = False,
    stop_after: int | None = None,
    max_minutes: float | None = None,
) -> Path:
    """Train per ``config``; returns the folder of the final corrector (``<output_dir>/final``).

    ``resume`` continues from the latest checkpoint in ``output_dir`` (a fresh run when there is none, so
    that every run of a series may say it; an error when the recipe differs from the checkpoint's in what
    the model learns). Without it, a folder that holds checkpoints is an error: a fresh run there would
    leave an earlier run's later checkpoints for the next ``resume`` to pick up. ``stop_after`` behaves
    like a SIGINT after that many optimiser steps (save, then return the checkpoint folder): how the tests
    kill a run. ``max_minutes`` bounds this call's wall time: once it has run that long it saves and
    returns the checkpoint folder, and a later ``resume`` continues (a long CPU run as a series of resumed
    runs; the schedule is the recipe's, unlike ``train.budget_minutes``, which fits the schedule to a total
    budget).
    """
    invoked = time.perf_counter()
    found = _checkpoint_to_resume(config, resume)
    run = _Run(config, found is not None)
    if found is not None:
        run.resume(found)
    else:
        if resume and run.accelerator.is_main_process:
            print(
                f"--resume: no checkpoint under {run.out / 'checkpoints'}: starting at step 0",
                file=sys.stderr,
            )
        run.start()
    run.setup_data()
    stopped = run.loop(invoked, stop_after, max_minutes)
    return stopped if stopped is not None else run.save_final()

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
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from neko.train.batching import build_sampler, collate, rank_batches
from neko.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
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


def train(
    config: RunConfig,
    resume: bool = False,
    stop_after: int | None = None,
    max_minutes: float | None = None,
) -> Path:
    """Train per ``config``; returns the folder of the final corrector (``<output_dir>/final``).

    ``resume`` continues from the latest checkpoint in ``output_dir``. ``stop_after`` behaves like a
    SIGINT after that many optimiser steps (save, then return the checkpoint folder): how the tests kill a run.
    ``max_minutes`` bounds this call's wall time: once it has run that long it saves and returns the
    checkpoint folder, and a later ``resume`` continues (a long CPU run as a series of resumed runs; the
    schedule is the recipe's, unlike ``train.budget_minutes``, which fits the schedule to a total budget).
    """
    invoked = time.perf_counter()
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm import tqdm
    from transformers import get_scheduler

    from neko.model.io import build_model, save_pretrained_corrector
    from neko.train.dev import dev_loss, dev_metrics, load_dev
    from neko.train.ranking import rank_loss

    tc = config.train
    torch.set_num_threads(tc.threads)
    out = Path(config.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=tc.grad_accum, mixed_precision=config.mixed_precision
    )
    _fix_deepspeed_ranks(accelerator)
    set_seed(tc.seed)
    with _without_zero3_init(accelerator):
        model, tokenizer = build_model(config.model)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    if config.init_from and not resume:
        from neko.model.io import load_trained_weights

        load_trained_weights(model, config.init_from)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=tc.lr, weight_decay=tc.weight_decay
    )

    # The scheduler is stepped by hand once per optimiser step (accelerate's wrapper would step it once per
    # process), so the schedule is in optimiser steps whatever the world size.
    def schedule(total: int) -> Any:
        return get_scheduler(
            tc.schedule, optimizer, num_warmup_steps=tc.warmup_steps, num_training_steps=total
        )

    scheduler = schedule(tc.max_steps)
    sampler = build_sampler(tc, tokenizer)
    model, optimizer = accelerator.prepare(model, optimizer)
    inner = accelerator.unwrap_model(model)
    router_weight = (
        config.model.aux_loss_coef if config.model.routing == "learned" else config.model.router_loss_weight
    )

    step, tokens_seen = 0, 0
    budget = _Budget(tc.budget_minutes)
    ceiling = tc.max_steps  # a fit may lengthen the run again up to the recipe's count, never past it
    metrics_path = out / "metrics.jsonl"
    if resume:
        found = latest_checkpoint(out)
        if found is None:
            from neko.errors import ConfigError

            raise ConfigError(f"--resume: no checkpoint under {out / 'checkpoints'}")
        state = load_checkpoint(found, accelerator, model, optimizer, scheduler, sampler)
        step, tokens_seen = state["step"], state.get("tokens", 0)
        budget = _Budget(tc.budget_minutes, state.get("elapsed", 0.0), bool(state.get("fitted_steps")))
        if state.get("fitted_steps"):  # the schedule was fitted to the time budget: keep its length
            tc.max_steps = state["fitted_steps"]
            scheduler = schedule(tc.max_steps)
            scheduler.load_state_dict(state["scheduler"])
        if accelerator.is_main_process:
            _truncate_metrics(metrics_path, step)
            print(f"resumed from {found} at step {step}")
    elif accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        metrics_path.unlink(missing_ok=True)
    if accelerator.is_main_process:
        save_config(config, out / "config.yaml")
    dev_loss_set, dev_decode_set = load_dev(tc) if tc.dev else ([], [])

    from neko.model.routing import task_routing

    batches = rank_batches(iter(sampler), accelerator.process_index, accelerator.num_processes)
    bar = tqdm(total=tc.max_steps, initial=step, disable=not accelerator.is_main_process, desc="train")

    def checkpoint() -> Path:
        return save_checkpoint(
            accelerator,
            model,
            optimizer,
            scheduler,
            sampler,
            config,
            step,
            {
                "tokens": tokens_seen,
                "elapsed": budget.elapsed,
                "fitted_steps": tc.max_steps if tc.budget_minutes and budget.fitted else None,
            },
        )

    def evaluate() -> None:
        if not (dev_loss_set or dev_decode_set):
            return
        inner.eval()
        row = {"step": step, "dev_loss": dev_loss(inner, tokenizer, dev_loss_set, tc, config.model)}
        row["dev"] = dev_metrics(inner, tokenizer, dev_decode_set, tc, config.model)
        inner.train()
        if accelerator.is_main_process:
            _append_jsonl(metrics_path, row)

    if step == 0:
        evaluate()  # the "before" figures of the run
    with _StopFlag() as stop:
        while step < tc.max_steps:
            started = time.perf_counter()
            # lm loss, router loss, tokens, padded, micro-batches, rank loss
            sums = torch.zeros(6, dtype=torch.float64)
            for _ in range(tc.grad_accum):
                records = next(batches)
                batch = collate(records, tokenizer, tc.max_len, config.model, accelerator.device)
                with accelerator.accumulate(model):
                    with task_routing(inner, batch.expert_ids, config.model.routing) as routing:
                        lm_loss = target_lm_loss(model, batch.input_ids, batch.attention_mask, batch.labels)
                        router_loss = routing.router_loss(batch.attention_mask).to(lm_loss.device)
                    loss = lm_loss + router_weight * router_loss
                    if tc.rank_loss_weight:
                        with accelerator.autocast():
                            rank = rank_loss(
                                inner,
                                tokenizer,
                                records,
                                tc.max_len,
                                tc.rank_temperature,
                                batch.expert_ids,
                                config.model.routing,
                            )
                        loss = loss + tc.rank_loss_weight * rank
                        sums[5] += float(rank.detach())
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and tc.max_grad_norm:
                        accelerator.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad()
                sums[:5] += torch.tensor(
                    [float(lm_loss.detach()), float(router_loss.detach()), batch.tokens, batch.padded, 1],
                    dtype=torch.float64,
                )
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step += 1
            if accelerator.num_processes > 1:
                sums = accelerator.reduce(sums.to(accelerator.device), reduction="sum").cpu()
            tokens_seen += int(sums[2])
            elapsed = time.perf_counter() - started
            if accelerator.num_processes > 1:  # every rank takes the same budget decisions
                elapsed = float(
                    accelerator.reduce(torch.tensor([elapsed], device=accelerator.device), "mean")
                )
            budget.add(elapsed)
            fitted = budget.fit(step, ceiling)
            if fitted is not None and fitted != tc.max_steps:
                tc.max_steps, bar.total = fitted, fitted
                scheduler = schedule(fitted)
                for _ in range(step):
                    scheduler.step()
                if accelerator.is_main_process:
                    save_config(config, out / "config.yaml")
                    bar.write(f"time budget {tc.budget_minutes:g} min: {fitted} optimiser steps in all")
            elif budget.spent and step < tc.max_steps:
                bar.write(f"time budget spent after step {step} of {tc.max_steps}")
                tc.max_steps = step
            if accelerator.is_main_process and tc.log_every and step % tc.log_every == 0:
                lm, rl = float(sums[0] / sums[4]), float(sums[1] / sums[4])
                row = {
                    "step": step,
                    "loss": lm + router_weight * rl,
                    "lm_loss": lm,
                    "router_loss": rl,
                    "lr": lr,
                    "tokens": tokens_seen,
                    "padding": 1.0 - float(sums[2] / sums[3]),
                    "tokens_per_s": float(sums[2]) / elapsed,
                }
                if tc.rank_loss_weight:
                    row["rank_loss"] = float(sums[5] / sums[4])
                    row["loss"] += tc.rank_loss_weight * row["rank_loss"]
                _append_jsonl(metrics_path, row)
                bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")
            bar.update(1)
            if step == tc.max_steps or (tc.eval_every and step % tc.eval_every == 0):
                evaluate()
            out_of_time = max_minutes is not None and time.perf_counter() - invoked >= 60.0 * max_minutes
            stopping = stop.raised or (stop_after is not None and step >= stop_after)
            stopping = stopping or (out_of_time and step < tc.max_steps)
            if accelerator.num_processes > 1:
                flag = accelerator.reduce(torch.tensor([int(stopping)], device=accelerator.device), "sum")
                stopping = bool(flag.item())
            if stopping:
                path = checkpoint()
                bar.close()
                if not stop.raised:  # stop_after or max_minutes: a planned stop
                    if accelerator.is_main_process:
                        print(
                            f"stopped at step {step} of {tc.max_steps}; checkpoint {path}; continue with --resume"
                        )
                    return path
                raise KeyboardInterrupt(f"stopped at step {step}; checkpoint {path}; continue with --resume")
            if tc.save_every and step % tc.save_every == 0 and step < tc.max_steps:
                checkpoint()
    bar.close()
    checkpoint()
    final = out / "final"
    with _gathered_trainable(accelerator, inner):
        if accelerator.is_main_process:
            training = {
                "steps": step,
                "tokens": tokens_seen,
                "elapsed": budget.elapsed,
                "recipe": config_to_dict(config),
            }
            save_pretrained_corrector(inner, tokenizer, config.model, final, training=training)
            save_config(config, final / "train_config.yaml")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final

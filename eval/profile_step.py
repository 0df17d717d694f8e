"""Where a training step's time goes: the dense LoRA model against the NeKo MoE, or two expert forwards.

    python3 eval/profile_step.py profile              # torch profiler, one step each, per-op difference
    python3 eval/profile_step.py ab --rev 1602299     # MoE steps alternated: this tree's expert forward vs REV's
    python3 eval/profile_step.py compiled             # dense, MoE eager, MoE compiled steps alternated
    python3 eval/profile_step.py select               # the bundled model's select mode: ops, products' GFLOP/s
    python3 eval/profile_step.py select-ab --rev REV  # select mode alternated: this tree's code vs REV's
    python3 eval/profile_step.py select-threads       # select at 1 and 2 threads alternated: per-op scaling

The step is ``make bench-model``'s (SmolLM2, 4 experts, top-2, batch 4x128, neko routing, LM + router loss,
backward, AdamW), one thread. ``profile`` runs two untimed steps, then one under torch's profiler, for each
variant, and prints the operators whose self CPU time differs most, and the matrix products by shape.
``ab`` builds the MoE once and alternates steps whose experts run ``shared_forward`` of this tree and of
``neko/model/shared_experts.py`` at git revision ``--rev`` (e.g. a variant that was reverted), heap trimmed
after each step as training does; it prints the median of the per-pair CPU-time ratios REV / this tree.
``compiled`` alternates three steps in one process: the dense model, the MoE with its shared experts eager,
and the same MoE with them compiled (``compile_experts``, what ``neko train`` runs); it prints each MoE
form's median per-triple CPU-time ratio to the dense step. ``select`` is not a training step: it profiles
the bundled model's ``select`` mode (one thread) on ``--records`` records of ``--data`` after one untimed
batch, and prints the operators by self CPU time and each matrix-product shape's achieved GFLOP/s.
``select-ab`` alternates ``select`` passes over the same ``--records`` records (``--threads``) with this tree's
``neko/infer/select.py`` and shared experts' forward against REV's, and prints the median per-pair ratio of
CPU seconds REV / this tree (and whether both chose the same hypotheses). ``select-threads`` profiles ``select``
on the same records at one and at two threads, alternated ``--pairs`` times, and prints each run's wall and CPU
seconds and, per operator, its time at one thread over its time at two (2.0 = perfect use of the second core;
below that the second core's CPU time buys less than the first's).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


def build(routing: str) -> Callable[[], None]:
    """The model of ``routing`` (``dense`` or ``neko``) and a function running one training step."""
    import torch

    from neko.model.config import ModelConfig
    from neko.model.io import build_model
    from neko.model.routing import task_routing

    cfg = ModelConfig(base="smollm2-135m", num_experts=4, top_k=2, routing=routing)
    model, tok = build_model(cfg)
    ids = torch.randint(0, len(tok), (4, 128), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    experts = torch.arange(4) % 4
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        model.train()
        with task_routing(model, experts, cfg.routing) as rec:
            loss = model(input_ids=ids, attention_mask=mask, labels=ids).loss
            loss = loss + cfg.router_loss_weight * rec.router_loss(mask)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def profile(rows: int) -> None:
    """Per-op self CPU time of one step of each variant, and the matrix products by shape."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    ops: dict[str, dict[str, float]] = {}
    for routing in ("dense", "neko"):
        step = build(routing)
        step()
        step()
        with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            step()
        ops[routing] = {e.key: e.self_cpu_time_total / 1e3 for e in prof.key_averages()}
        print(f"{routing}: {sum(ops[routing].values()):.0f} ms self CPU time")
        products = [e for e in prof.key_averages(group_by_input_shape=True) if e.key == "aten::mm"]
        for e in sorted(products, key=lambda e: -e.self_cpu_time_total)[:rows]:
            print(f"  {routing} aten::mm {e.input_shapes}: {e.self_cpu_time_total / 1e3:.1f} ms ({e.count})")
    names = sorted(
        set(ops["dense"]) | set(ops["neko"]), key=lambda k: ops["dense"].get(k, 0) - ops["neko"].get(k, 0)
    )
    for name in names[:rows]:
        dense, moe = ops["dense"].get(name, 0.0), ops["neko"].get(name, 0.0)
        print(f"{name[:60]:60s} dense {dense:8.1f} ms  MoE {moe:8.1f} ms  difference {moe - dense:8.1f}")


def _alternate(forms: dict[str, tuple[Callable[[], None], Callable]], rounds: int) -> dict[str, list[float]]:
    """Run ``rounds`` + 1 rounds (the first warms up) of one step of each form, ``name -> (step, expert
    forward)``, the forward swapped in as the shared experts' `shared_forward` (restored after), heap trimmed
    after each step as training does; the CPU seconds of every step, per form."""
    import neko.model.shared_training as training
    from neko.allocator import release_freed_memory

    original = training.shared_forward
    times: dict[str, list[float]] = {name: [] for name in forms}
    try:
        for round_ in range(rounds + 1):
            for name, (step, forward) in forms.items():
                training.shared_forward = forward
                start = time.process_time()
                step()
                times[name].append(time.process_time() - start)
                release_freed_memory()
            print(f"round {round_}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()), flush=True)
    finally:
        training.shared_forward = original
    return times


def _module_at(rev: str, path: str) -> ModuleType:
    """The module of ``path`` (a file of this repository) as it was at git revision ``rev``."""
    repo = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True, cwd=repo
    ).stdout
    module = ModuleType(f"{path.removesuffix('.py').replace('/', '_')}_at_{rev}")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)  # noqa: S102 (our own file)
    return module


def ab(rev: str, pairs: int) -> None:
    """Alternate MoE steps with this tree's and ``rev``'s ``shared_forward``; print the median ratio."""
    import neko.model.shared_training as training

    other = _module_at(rev, "neko/model/shared_experts.py")
    step = build("neko")
    times = _alternate({"tree": (step, training.shared_forward), rev: (step, other.shared_forward)}, pairs)
    ratios = [r / t for r, t in zip(times[rev][1:], times["tree"][1:], strict=True)]
    print(f"median CPU-time ratio {rev} / this tree: {statistics.median(ratios):.3f}")


def compiled(pairs: int) -> None:
    """Alternate dense, eager-MoE and compiled-MoE steps; print each MoE form's median ratio to dense."""
    import torch

    import neko.model.shared_training as training

    eager = training.shared_forward
    dense, moe = build("dense"), build("neko")
    forms = {
        "dense": (dense, eager),
        "eager": (moe, eager),
        "compiled": (moe, torch.compile(eager, dynamic=True)),
    }
    times = _alternate(forms, pairs)  # the first round also compiles
    for name in ("eager", "compiled"):
        ratios = [m / d for m, d in zip(times[name][1:], times["dense"][1:], strict=True)]
        print(f"median CPU-time ratio MoE {name} / dense: {statistics.median(ratios):.3f}")


def _warm_select(data: str, records: int, threads: int) -> tuple[Any, list]:
    """The bundled model's `Corrector` at ``threads``, warmed by ``select`` on the first ``records`` records of
    ``data``, and the next ``records`` records (what is measured)."""
    import torch

    from neko.infer.corrector import Corrector
    from neko.records import read_records

    found = list(read_records(Path(data).expanduser()))[: 2 * records]
    corrector = Corrector.from_pretrained(threads=threads)
    torch.set_num_threads(threads)
    corrector.correct_many(found[:records], batch_size=16, mode="select")  # untimed: warm caches
    return corrector, found[records:]


def profile_select(data: str, records: int, rows: int) -> None:
    """Self CPU time per operator of ``select`` on ``records`` records, and each product shape's GFLOP/s."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    corrector, measured = _warm_select(data, records, threads=1)
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        corrector.correct_many(measured, batch_size=16, mode="select")
    ops = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in ops)
    print(f"select on {len(measured)} records: {total / 1e6:.2f} s self CPU time")
    for e in sorted(ops, key=lambda e: -e.self_cpu_time_total)[:rows]:
        print(
            f"  {e.key[:50]:50s} {e.self_cpu_time_total / 1e3:9.1f} ms  {100 * e.self_cpu_time_total / total:5.1f}%"
        )
    for e in sorted(
        (e for e in prof.key_averages(group_by_input_shape=True) if e.key in ("aten::mm", "aten::bmm")),
        key=lambda e: -e.self_cpu_time_total,
    )[:rows]:
        *batch, m, k = e.input_shapes[0]
        n = e.input_shapes[1][-1]
        flops = 2 * m * k * n * (batch[0] if batch else 1) * e.count
        print(
            f"  {e.key} {e.input_shapes} x{e.count}: {e.self_cpu_time_total / 1e3:.1f} ms, "
            f"{flops / e.self_cpu_time_total / 1e3:.1f} GFLOP/s"
        )


def select_ab(rev: str, data: str, records: int, pairs: int, threads: int) -> None:
    """Alternate ``select`` passes with this tree's and ``rev``'s select and expert forward; print the ratio."""
    import neko.infer.corrector as corrector_module
    import neko.model.shared_experts as shared

    old_select = _module_at(rev, "neko/infer/select.py")
    old_shared = _module_at(rev, "neko/model/shared_experts.py")
    forms = {
        "tree": (corrector_module.select_best, shared.shared_forward),
        rev: (old_select.select_best, old_shared.shared_forward),
    }
    corrector, measured = _warm_select(data, records, threads)
    times: dict[str, list[float]] = {name: [] for name in forms}
    outputs: dict[str, list[str]] = {}
    try:
        for pair in range(pairs):
            for name, (select_best, forward) in forms.items():
                corrector_module.select_best, shared.shared_forward = select_best, forward
                start = time.process_time()
                done = corrector.correct_many(measured, batch_size=16, mode="select")
                times[name].append(time.process_time() - start)
                outputs[name] = [c.text for c in done]
            print(f"pair {pair}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()), flush=True)
    finally:
        corrector_module.select_best, shared.shared_forward = forms["tree"]
    ratios = [r / t for r, t in zip(times[rev], times["tree"], strict=True)]
    print(f"same choices: {outputs['tree'] == outputs[rev]}")
    print(f"median CPU-time ratio {rev} / this tree ({threads} threads): {statistics.median(ratios):.3f}")


def select_threads(data: str, records: int, rows: int, pairs: int) -> None:
    """``select`` on the same records at 1 and 2 threads, alternated: CPU seconds and per-operator scaling."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    corrector, measured = _warm_select(data, records, threads=1)
    op_seconds: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    cpu_seconds: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(pairs):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            corrector.correct_many(measured[:16], batch_size=16, mode="select")  # this thread count's warm-up
            start, cpu = time.perf_counter(), time.process_time()
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                corrector.correct_many(measured, batch_size=16, mode="select")
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            print(f"{threads} thread(s): {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
            cpu_seconds[threads].append(cpu)
            op_seconds[threads].append({e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()})
    ratios = [b / a for a, b in zip(cpu_seconds[1], cpu_seconds[2], strict=True)]
    print(f"median per-pair CPU-time ratio 2 threads / 1 thread: {statistics.median(ratios):.3f}")
    one = {k: statistics.median(run.get(k, 0.0) for run in op_seconds[1]) for k in op_seconds[1][0]}
    two = {k: statistics.median(run.get(k, 0.0) for run in op_seconds[2]) for k in one}
    for key in sorted(one, key=lambda k: -one[k])[:rows]:
        scaling = one[key] / two[key] if two[key] > 0 else float("nan")
        print(
            f"  {key[:50]:50s} 1 thread {one[key]:7.2f} s  2 threads {two[key]:7.2f} s  scaling {scaling:.2f}"
        )


def main() -> None:
    """Parse the command line and run it."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", choices=["profile", "ab", "compiled", "select", "select-ab", "select-threads"]
    )
    parser.add_argument("--rev", default="1602299", help="git revision of the other expert forward (ab)")
    parser.add_argument(
        "--pairs",
        type=int,
        default=6,
        help="timed pairs (triples) after one warm-up (ab, compiled, select-threads)",
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=12,
        help="operators and products printed (profile, select, select-threads)",
    )
    parser.add_argument(
        "--data",
        default="~/.cache/neko/prepared/hyporadise_chime4.jsonl",
        help="records for select (a zero-shot HyPoradise set by default)",
    )
    parser.add_argument(
        "--records", type=int, default=16, help="records profiled (select, select-ab, select-threads)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (select-ab)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.what == "profile":
        profile(args.rows)
    elif args.what == "ab":
        ab(args.rev, args.pairs)
    elif args.what == "select":
        profile_select(args.data, args.records, args.rows)
    elif args.what == "select-ab":
        select_ab(args.rev, args.data, args.records, args.pairs, args.threads)
    elif args.what == "select-threads":
        select_threads(args.data, args.records, args.rows, args.pairs)
    else:
        compiled(args.pairs)


if __name__ == "__main__":
    main()

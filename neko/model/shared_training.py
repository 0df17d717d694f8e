"""Training through shared experts: peft's LoRA on the fused experts, run as one MLP plus low-rank terms.

peft adapts the fused expert weights (``target_parameters``) by re-parametrising them on every forward:
``W_e + scaling * B_e @ A_e`` is materialised for all E experts of a layer and kept for the backward pass,
and the experts then run one by one. After upcycling every ``W_e`` is the same frozen MLP, so
`neko.model.shared_experts.shared_forward` computes the same outputs and gradients from ``W`` once plus
the factors. `share_trainable_experts` makes the outer peft wrapper of each experts module a
`SharedParamWrapper`, a ``ParamWrapper`` whose forward reads the live ``lora_A`` / ``lora_B`` weights
into that form (torch's own parametrisations swap a module's class the same way). Nothing else changes:
parameter names, the adapter that ``save_pretrained`` writes, merging and unloading are peft's own, so
checkpoints are byte-for-byte the format they were. Any state the shared form does not cover (adapters
disabled or merged, several active adapters, a non-3-D layout, ZeRO-3 partitioned weights) runs peft's own
forward.

`compile_trainable_experts` runs that form through ``torch.compile`` (a recipe's ``compile_experts``): the
k slots' elementwise work (adds, activation, products, their backward) becomes a few fused kernels instead
of a dozen passes over ``[k, N, I]`` tensors. Only steps with gradients run compiled (dev decoding under
``no_grad`` stays eager). Where compilation fails (no C++ compiler, an unsupported backend) it warns once and
the eager form runs.
"""

from __future__ import annotations

import functools
import warnings

import torch
from peft.tuners.lora.layer import ParamWrapper
from torch import nn
from torch.utils.checkpoint import _StopRecomputationError

from neko.model.shared_experts import (
    EXPERT_CLASSES,
    PROJECTIONS,
    SharedWeights,
    expert_chain,
    experts_equal,
    materialise,
    shared_forward,
)


class SharedParamWrapper(ParamWrapper):
    """The outermost peft ``ParamWrapper`` of a fused experts module whose experts share one base MLP."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """``experts(hidden_states, top_k_index, top_k_weights)`` as peft computes it, via `shared_forward`."""
        weights = _shared_weights(self)
        if weights is None or kwargs or len(args) != 2:
            return super().forward(x, *args, **kwargs)
        # Only training steps compile: dev decoding under no_grad would compile a graph per decoding shape
        # for a few passes (eager there, as at inference).
        if getattr(self, "compiled", False) and torch.is_grad_enabled():
            return _compiled_forward(x, args[0], args[1], weights)
        return shared_forward(x, args[0], args[1], weights)

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """peft's merge, after giving stride-0 (shared-storage) base weights their own E copies."""
        materialise(self.get_base_layer())
        super().merge(safe_merge=safe_merge, adapter_names=adapter_names)


def share_trainable_experts(model: nn.Module) -> int:
    """Make every peft-wrapped fused experts module of ``model`` whose experts share one base MLP run as
    shared experts (in place); returns how many. Outputs and gradients are those of peft's forward."""
    replaced = 0
    for module in list(model.modules()):
        experts = module._modules.get("experts")
        if type(experts) is not ParamWrapper:
            continue
        base = experts.get_base_layer()
        if type(base).__name__ not in EXPERT_CLASSES:
            continue
        if not all(experts_equal(getattr(base, proj)) for proj in PROJECTIONS):
            continue
        experts.__class__ = SharedParamWrapper
        replaced += 1
    return replaced


def compile_trainable_experts(model: nn.Module) -> int:
    """Make every shared experts module of ``model`` run the compiled `shared_forward` (``torch.compile``) in
    steps with gradients; returns how many. Same outputs and gradients, up to float rounding
    (tests/test_shared_training.py)."""
    changed = 0
    for module in model.modules():
        if type(module) is SharedParamWrapper:
            module.compiled = True
            changed += 1
    return changed


_COMPILE_FAILED: list[str] = []


def _compiled_forward(
    x: torch.Tensor, index: torch.Tensor, weights_k: torch.Tensor, weights: SharedWeights
) -> torch.Tensor:
    """`shared_forward` compiled (dynamic shapes: one graph for every batch shape), or eager once compiling
    has failed in this process."""
    if not _COMPILE_FAILED:
        try:
            return _compiled()(x, index, weights_k, weights)
        except _StopRecomputationError:
            # Gradient checkpointing's early stop, raised through the compiled call once a recomputed layer
            # has given back what backward needs: control flow of that recomputation, not a compile failure.
            raise
        except Exception as exc:  # compilation errors surface at the first call, under many types
            _COMPILE_FAILED.append(f"{type(exc).__name__}: {exc}")
            warnings.warn(
                "torch.compile of the shared experts failed, running them eagerly (same results, slower): "
                + _COMPILE_FAILED[0].splitlines()[0],
                stacklevel=2,
            )
    return shared_forward(x, index, weights_k, weights)


@functools.cache
def _compiled():
    return torch.compile(shared_forward, dynamic=True)


def unshare_trainable_experts(model: nn.Module) -> int:
    """Undo `share_trainable_experts` (in place): peft's own fused forward, every expert's base weights in
    their own storage, as before sharing existed. For comparisons (tests, ``eval/bench_model.py``)."""
    restored = 0
    for module in list(model.modules()):
        if type(module) is SharedParamWrapper:
            module.__class__ = ParamWrapper
            materialise(module.get_base_layer())
            restored += 1
    return restored


def _shared_weights(outer: ParamWrapper) -> SharedWeights | None:
    """The base MLP and the live (differentiable) LoRA factors of a wrapper chain, or None when the chain's
    state is not plain single-adapter LoRA on the 3-D expert weights."""
    chain = expert_chain(outer, _live_factors)
    if chain is None:
        return None
    layer, factors = chain
    if hasattr(layer.gate_up_proj, "ds_id"):
        # DeepSpeed ZeRO-3 partitions parameters and gathers them only around their own module's forward,
        # which the shared form never calls: peft's forward runs the experts there.
        return None
    return SharedWeights(
        layer.num_experts,
        layer.gate_up_proj[0],
        layer.down_proj[0],
        layer.act_fn,
        factors.get("gate_up_proj"),
        factors.get("down_proj"),
    )


def _live_factors(wrapper: ParamWrapper):
    """``(a [E*R, in], b [E*R, out])`` of the one active adapter (scaling in ``b``), None without an active
    adapter (or with adapters disabled), False when merged or the layout is not the one `shared_forward`
    expects."""
    if wrapper.merged:
        return False
    if wrapper.disable_adapters:
        return None
    names = [name for name in wrapper.active_adapters if name in wrapper.lora_A]
    if not names:
        return None
    if len(names) > 1 or not wrapper._did_swap_in_out_features or wrapper.num_experts < 2:
        return False
    name = names[0]
    a = wrapper.lora_A[name].weight  # [E*R, in], expert-major rows (peft reshapes it to [E, R, in])
    lora_b = wrapper.lora_B[name].weight  # [out, R*E], rank-major columns (peft: [out, R, E])
    experts = wrapper.num_experts
    rank = a.shape[0] // experts
    b = lora_b.reshape(lora_b.shape[0], rank, experts).permute(2, 1, 0).reshape(experts * rank, -1)
    return a, b * wrapper.scaling[name]

"""Shared experts: the upcycled MLP held once, plus each expert's LoRA factors.

Upcycling copies the dense MLP into every expert and training never changes those copies: each expert is
``W + scaling * B_e @ A_e`` with one frozen ``W`` and a rank-r LoRA update. `shared_forward` computes what
fused `MixtralExperts` / `Qwen2MoeExperts` holding those E weights compute, from ``W`` once:

    gate_up_j = x @ W_gu^T + (x @ A_gu,e_j^T) @ (scaling * B_gu,e_j)^T    (x @ W_gu^T once per token)
    out       = (sum_j w_j h_j) @ W_d^T + sum_j w_j (h_j @ A_d,e_j^T) @ (scaling * B_d,e_j)^T
                with h_j = act(gate_j) * up_j for the token's j-th chosen expert e_j, weight w_j

(the down projection is linear, so ``W_d`` also runs once per token). Training uses it through peft's
wrappers (`neko.model.shared_training`); inference through `SharedLoraExperts`, which stores the factors
instead of merging them: merged, SmolLM2 at 4 experts would spend about 1.2 GB on E near-equal MLPs.

Only equal base copies may be shared: `share_experts` checks them and leaves any other module as it is (it
is then merged as before). ``neko export`` and ``merge=False`` never see `SharedLoraExperts`: a model
holding it is for inference and does not save as a plain transformers checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

# transformers' fused experts with the layout gate_up_proj [E, 2I, H], down_proj [E, H, I], act(gate) * up.
EXPERT_CLASSES = ("MixtralExperts", "Qwen2MoeExperts")
PROJECTIONS = ("gate_up_proj", "down_proj")


class SharedLoraExperts(nn.Module):
    """Fused MoE experts as one shared MLP plus per-expert low-rank corrections (inference only).

    ``gate_up`` [2I, H] and ``down`` [H, I] are the shared weights; ``factors`` maps a projection name
    (``gate_up_proj`` / ``down_proj``) to ``(lhs [E, out, R], rhs [E, R, in])`` with the LoRA scaling
    already in ``lhs``: expert e's weight is ``base + lhs[e] @ rhs[e]``. A projection without factors is the
    shared weight for every expert. Stored stacked over experts, ``{proj}_lora_a`` [E*R, in] and
    ``{proj}_lora_b`` [E*R, out] (scaled B transposed), so that all experts' corrections are two matrix
    products: on CPU, E skinny rank-R products cost several times one product of rank E*R.
    """

    def __init__(self, experts: nn.Module, gate_up: torch.Tensor, down: torch.Tensor, factors: dict) -> None:
        super().__init__()
        self.num_experts = experts.num_experts
        self.hidden_dim = experts.hidden_dim
        self.intermediate_dim = experts.intermediate_dim
        self.act_fn = experts.act_fn
        self.gate_up_proj = nn.Parameter(gate_up, requires_grad=False)
        self.down_proj = nn.Parameter(down, requires_grad=False)
        self.rank = 0
        for proj in PROJECTIONS:
            lhs, rhs = factors.get(proj, (None, None))
            a = b = None
            if lhs is not None:
                self.rank = max(self.rank, rhs.shape[1])
                a = nn.Parameter(rhs.reshape(-1, rhs.shape[-1]).contiguous(), requires_grad=False)
                b = nn.Parameter(
                    lhs.transpose(1, 2).reshape(-1, lhs.shape[1]).contiguous(), requires_grad=False
                )
            self.register_parameter(f"{proj}_lora_a", a)
            self.register_parameter(f"{proj}_lora_b", b)

    def forward(
        self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        """Same signature and result as transformers' ``MixtralExperts.forward`` (see `shared_forward`)."""
        return shared_forward(
            hidden_states,
            top_k_index,
            top_k_weights,
            SharedWeights(
                self.num_experts,
                self.gate_up_proj,
                self.down_proj,
                self.act_fn,
                _pair(self.gate_up_proj_lora_a, self.gate_up_proj_lora_b),
                _pair(self.down_proj_lora_a, self.down_proj_lora_b),
            ),
        )

    def extra_repr(self) -> str:
        return (
            f"num_experts={self.num_experts}, hidden={self.hidden_dim}, "
            f"intermediate={self.intermediate_dim}, rank={self.rank}"
        )


def _pair(a: torch.Tensor | None, b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    return None if a is None else (a, b)


class SharedWeights(NamedTuple):
    """What `shared_forward` needs of one experts module: the shared MLP and the stacked LoRA factors.

    ``gate_up`` [2I, H], ``down`` [H, I] (for E experts); ``gate_up_lora`` / ``down_lora`` are ``(a [E*R, in], b [E*R, out])``
    with rows in expert-major order (expert e owns rows ``e*R .. e*R+R-1``) and the LoRA scaling in ``b``,
    so expert e's weight is ``base + b[eR:(e+1)R]^T @ a[eR:(e+1)R]``; None: no adapter on that projection.
    """

    num_experts: int
    gate_up: torch.Tensor
    down: torch.Tensor
    act_fn: Callable[[torch.Tensor], torch.Tensor]
    gate_up_lora: tuple[torch.Tensor, torch.Tensor] | None
    down_lora: tuple[torch.Tensor, torch.Tensor] | None


def shared_forward(
    hidden_states: torch.Tensor,
    top_k_index: torch.Tensor,
    top_k_weights: torch.Tensor,
    weights: SharedWeights,
) -> torch.Tensor:
    """What fused experts ``base + LoRA_e`` compute for ``hidden_states`` [N, H] and their top-k choices.

    Computed slot by slot of the top-k (every token's j-th expert at once) rather than expert by expert: the
    shared weights apply to whole [N, .] blocks with no sorting, gathering or index_add, and a token's own
    expert enters only through its low-rank terms, selected by a one-hot mask over the stacked factors.
    Because the down projection is linear, ``sum_j w_j (W_d + dW_d,e_j) h_j = W_d (sum_j w_j h_j) +
    sum_j w_j dW_d,e_j h_j``: ``W_d`` runs once per token, not once per chosen expert. Differentiable in
    ``hidden_states``, the gate weights and the factors (training uses it through peft's wrappers).
    """
    k, experts = top_k_index.shape[-1], weights.num_experts
    # Expert-parallel sentinels (id == num_experts) add nothing, as in transformers' eager loop.
    gates = (top_k_weights * (top_k_index < experts)).t().to(hidden_states.dtype)  # [k, N]
    with torch.no_grad():
        select = F.one_hot(top_k_index.t(), experts + 1)[..., :experts].to(hidden_states.dtype)  # [k, N, E]
    # The one projection every expert shares: once per token instead of once per (token, expert) pair.
    gate_up = F.linear(hidden_states, weights.gate_up)
    if weights.gate_up_lora is None:
        gate_up = gate_up.expand(k, -1, -1)
    else:
        a, b = weights.gate_up_lora
        low = F.linear(hidden_states, a) * _rank_mask(select, a)  # [k, N, E*R]: all experts, then masked
        if torch.is_grad_enabled():
            # Training (compiled): baddbmm here made `make bench-model`'s time ratio 1.31 against 1.23.
            gate_up = torch.matmul(low, b) + gate_up
        else:  # eager inference: the product accumulates onto the shared part, no pass adding [k, N, 2I]
            gate_up = torch.baddbmm(gate_up.expand(k, -1, -1), low, b.expand(k, -1, -1))
    gate, up = gate_up.chunk(2, dim=-1)
    act = weights.act_fn(gate) * up  # [k, N, I]
    # A product and a sum over the k slots: einsum would make it N tiny batched matmuls (twice as slow).
    out = F.linear((act * gates[..., None]).sum(0), weights.down)
    if weights.down_lora is not None:
        a, b = weights.down_lora
        low = F.linear(act, a) * (_rank_mask(select, a) * gates[..., None])  # [k, N, E*R]
        out = out + torch.matmul(low.sum(0), b)
    return out


def _rank_mask(select: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """[k, N, E] one-hot expert choices widened to the E*R stacked rank columns of ``a``."""
    return select.repeat_interleave(a.shape[0] // select.shape[-1], dim=-1)


def share_experts(model: nn.Module) -> int:
    """Replace, in place, every fused experts module of ``model`` whose experts share one base MLP by a
    `SharedLoraExperts`; returns how many were replaced.

    ``model`` is a plain transformers MoE or a peft model over one (before ``merge_and_unload``): the peft
    LoRA on ``gate_up_proj`` / ``down_proj`` becomes the per-expert factors. A module is left as it is (and
    merged later as before) when its experts' base weights differ or its adapter is not a plain LoRA. One
    layer at a time: each module's E base copies are released as soon as its shared module is built.
    """
    replaced = 0
    for block in list(model.modules()):
        experts = block._modules.get("experts")
        if experts is None:
            continue
        shared = shared_module(experts)
        if shared is None:
            materialise(experts)
            continue
        block.experts = shared
        replaced += 1
    return replaced


def shared_module(experts: nn.Module) -> SharedLoraExperts | None:
    """The `SharedLoraExperts` equal to ``experts`` (a fused experts module, possibly wrapped by peft's
    ``ParamWrapper``\\ s), or None when it cannot be shared."""
    chain = expert_chain(experts, _lora_factors)
    if chain is None:
        return None
    layer, factors = chain
    params = [getattr(layer, proj) for proj in PROJECTIONS]
    if not all(experts_equal(p) for p in params):
        return None
    # A stride-0 expand view already holds one copy; a real stack is cloned so its E copies can go.
    gate_up, down = (p[0] if p.stride(0) == 0 else p[0].clone() for p in params)
    return SharedLoraExperts(layer, gate_up.detach(), down.detach(), factors)


def expert_chain(module: nn.Module, factors_of: Callable[[Any], Any]) -> tuple[nn.Module, dict] | None:
    """(fused experts module, {projection: factors}) under peft's ``ParamWrapper`` chain of ``module``.

    ``factors_of(wrapper)`` gives a wrapper's LoRA factors, None when it adds nothing (no active adapter), or
    False when its state cannot be shared; then, or when the chain does not end in a known experts module
    with adapters on its projections only, the result is None. Inference and training share this walk and
    differ in the factors they take (detached and merged for inference, live for training).
    """
    factors: dict = {}
    layer = module
    while _is_param_wrapper(layer):
        pair = factors_of(layer)
        if pair is False:
            return None
        if pair is not None:
            factors[layer.parameter_name] = pair
        layer = layer.base_layer
    if type(layer).__name__ not in EXPERT_CLASSES or set(factors) - set(PROJECTIONS):
        return None
    return layer, factors


def _is_param_wrapper(module: nn.Module) -> bool:
    from peft.tuners.lora.layer import ParamWrapper

    return isinstance(module, ParamWrapper)


def _lora_factors(wrapper) -> tuple[torch.Tensor, torch.Tensor] | None | bool:
    """``(lhs, rhs)`` of the active adapters of a peft ``ParamWrapper`` (ranks stacked, scaling in lhs),
    None when no adapter is active, False when the adapter cannot be expressed that way."""
    if wrapper.merged:
        return False
    if wrapper.disable_adapters:
        return None
    lhs_parts, rhs_parts = [], []
    for name in wrapper.active_adapters:
        if name not in wrapper.lora_A:
            continue
        if wrapper.use_dora.get(name) or wrapper.lora_bias.get(name):
            return False
        lhs, rhs, scaling = wrapper.get_delta_factors(name)
        param = wrapper.get_param()
        # delta = scaling * lhs @ rhs has the parameter's own [E, out, in] shape.
        if (lhs.shape[0], lhs.shape[1], rhs.shape[2]) != tuple(param.shape):
            return False
        lhs_parts.append(lhs.detach() * scaling)
        rhs_parts.append(rhs.detach())
    if not lhs_parts:
        return None
    return torch.cat(lhs_parts, dim=-1).contiguous(), torch.cat(rhs_parts, dim=-2).contiguous()


def experts_equal(param: torch.Tensor) -> bool:
    """Whether every expert slice of a fused [E, ...] weight is the same tensor (always, for stride 0)."""
    if param.stride(0) == 0:
        return True
    return all(torch.equal(param[0], param[e]) for e in range(1, param.shape[0]))


def materialise(module: nn.Module) -> None:
    """Give stride-0 expert weights of ``module`` their own storage: merging adds to them in place, which
    on a stride-0 view would write every expert's copy at once (torch refuses)."""
    for _, param in module.named_parameters():
        if param.dim() == 3 and param.stride(0) == 0:
            param.data = param.data.contiguous()

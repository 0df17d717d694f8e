"""NeKo task routing: force each token's task expert, let the router pick the rest, and teach the router.

Training (mode "neko"): every token of a record from task t goes to expert e(t) plus the router's top-(k-1)
among the *other* experts. The gate weights are the softmax of the router logits restricted to the chosen k
experts, i.e. exactly what Mixtral / Qwen2-MoE (``norm_topk_prob=True``) compute for their own top-k:
``w_i = exp(l_i) / sum_{j in chosen} exp(l_j)``. The forced expert therefore gets a weight that grows as the
router learns the task, and the weights keep summing to 1 (which is what keeps an upcycled model equal to
its dense parent). `RoutingRecorder.router_loss` is the cross-entropy of every layer's router logits against
e(t) over non-padding tokens: it teaches the router to find the task's expert by itself, so inference needs
no task label (zero-shot: the plain router's top-k).

Mode "learned" is the plain top-k, with the standard load-balancing loss as router loss; an optional task
hint at inference uses mode "neko". Mode "dense" is a no-op (no routers exist).

Implementation: forward hooks on each router replace its (logits, weights, indices) output while the context
is open and are removed on exit, so the model object, and every checkpoint saved from it, stays a plain
transformers model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from neko.errors import ConfigError, unknown_choice
from neko.model.config import ROUTINGS, Routing

if TYPE_CHECKING:
    import torch
    from torch import nn

ROUTER_CLASSES = ("MixtralTopKRouter", "Qwen2MoeTopKRouter")


def find_routers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every MoE router in ``model`` (also inside a peft wrapper), in layer order."""
    return [(n, m) for n, m in model.named_modules() if type(m).__name__ in ROUTER_CLASSES]


def neko_topk(logits: torch.Tensor, forced: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gate weights and indices [N, top_k]: ``forced`` (>= 0) first, then the best others by logit.

    Rows with ``forced == -1`` get the plain top-k. Weights are the softmax over the chosen logits.
    """
    import torch

    plain = torch.topk(logits, top_k, dim=-1).indices
    has_task = forced >= 0
    safe = forced.clamp(min=0)
    others = logits.float().scatter(1, safe[:, None], float("-inf"))
    rest = torch.topk(others, top_k - 1, dim=-1).indices
    chosen = torch.cat([safe[:, None], rest], dim=1)
    indices = torch.where(has_task[:, None], chosen, plain)
    weights = torch.softmax(logits.float().gather(1, indices), dim=-1)
    return weights, indices


@dataclass
class RoutingRecorder:
    """What the routers did inside a `task_routing` context: logits and chosen experts, one entry per call."""

    mode: Routing
    num_experts: int
    top_k: int
    token_experts: list[torch.Tensor] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)
    indices: list[torch.Tensor] = field(default_factory=list)
    weights: list[torch.Tensor] = field(default_factory=list)

    def reset(self) -> None:
        """Forget the recorded calls (e.g. between generation steps)."""
        for items in (self.token_experts, self.logits, self.indices, self.weights):
            items.clear()

    def router_loss(self, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The router loss of the recorded forward pass(es), averaged over layers and non-padding tokens.

        neko: cross-entropy of the router logits against the task expert of each token (tokens of
        sequences without a task are ignored). learned: transformers' load-balancing loss. dense: 0.
        """
        import torch

        if self.mode == "dense" or not self.logits:
            return torch.zeros(())
        mask = None if attention_mask is None else attention_mask.reshape(-1).bool()
        if self.mode == "learned":
            from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

            return load_balancing_loss_func(tuple(self.logits), self.num_experts, self.top_k, attention_mask)
        logits = torch.cat(self.logits).float()
        targets = torch.cat(self.token_experts)
        if mask is not None:
            keep = mask.repeat(len(self.logits))
            if keep.numel() != targets.numel():
                raise ConfigError("attention_mask does not match the recorded forward pass")
            targets = torch.where(keep, targets, torch.full_like(targets, -1))
        if not bool((targets >= 0).any()):
            return logits.sum() * 0.0
        return torch.nn.functional.cross_entropy(logits, targets, ignore_index=-1)

    def expert_counts(self) -> torch.Tensor:
        """How often each expert was chosen [layers-calls, num_experts], for analysis and tests."""
        import torch

        return torch.stack([torch.bincount(i.reshape(-1), minlength=self.num_experts) for i in self.indices])


class _RoutingHooks:
    """The hooks of one `task_routing` block and the state they share: whether the block is open, whether a
    fresh forward pass began (not a checkpointed recompute), and how many backward passes are still due."""

    def __init__(
        self,
        model: nn.Module,
        routers: list[tuple[str, nn.Module]],
        ids: torch.Tensor | None,
        mode: Routing,
        record: bool,
    ) -> None:
        self.model, self.ids, self.mode, self.record = model, ids, mode, record
        self.first = routers[0][1]
        self.recorder = RoutingRecorder(mode, self.first.num_experts, self.first.top_k)
        self.open, self.fresh, self.pending = True, False, 0
        self.batch: int | None = None
        self.handles = [model.get_input_embeddings().register_forward_pre_hook(self.on_embed)]
        self.handles += [router.register_forward_hook(self.on_router) for _, router in routers]

    def on_embed(self, module: nn.Module, args: tuple) -> None:
        """The embedding sees input_ids [batch, seq]: the only place the flattened router input's shape is
        known. It lies outside the checkpointed layers, so it marks a fresh forward, never a recompute."""
        if args and args[0].dim() == 2:
            self.batch = args[0].shape[0]
        self.fresh = True

    def per_token(self, n_tokens: int) -> torch.Tensor:
        """The task expert of each of ``n_tokens`` flattened tokens (-1 = none)."""
        import torch

        ids = self.ids
        if ids is None:
            return torch.full((n_tokens,), -1, dtype=torch.long)
        batch = self.batch if self.batch is not None else len(ids)
        seq_ids = ids if batch == len(ids) else ids.repeat_interleave(batch // len(ids))
        if len(seq_ids) != batch or n_tokens % batch:
            raise ConfigError(f"{len(ids)} expert ids do not fit a batch of {batch} sequences")
        return seq_ids.repeat_interleave(n_tokens // batch)

    def on_backward_done(self, grad: torch.Tensor) -> None:
        """The first router's logits get their gradient last, after every layer has been recomputed."""
        self.pending -= 1
        if not self.open and self.pending == 0:
            _remove(self.model, self.handles)

    def on_router(self, module: nn.Module, args: tuple, output: tuple) -> tuple:
        """Replace the router's (logits, weights, indices) by the task routing, and record them."""
        logits, weights, indices = output
        token_experts = self.per_token(logits.shape[0]).to(logits.device)
        if self.mode == "neko" and bool((token_experts >= 0).any()):
            weights, indices = neko_topk(logits, token_experts, module.top_k)
            weights = weights.to(output[1].dtype)
        if module is self.first and self.fresh and logits.requires_grad:
            self.fresh = False
            self.pending += 1
            logits.register_hook(self.on_backward_done)
        if self.record and self.open:
            recorder = self.recorder
            recorder.token_experts.append(token_experts)
            recorder.logits.append(logits)
            recorder.indices.append(indices.detach())
            recorder.weights.append(weights.detach())
        return logits, weights, indices

    def close(self) -> None:
        """End the block: remove the hooks, or keep them until a checkpointed backward pass is through."""
        import torch

        self.open = False
        checkpointing = any(getattr(m, "gradient_checkpointing", False) for m in self.model.modules())
        if checkpointing and self.pending > 0 and torch.is_grad_enabled():
            self.model._neko_routing_hooks = self.handles  # released by on_backward_done or the next call
        else:
            _remove(self.model, self.handles)


@contextlib.contextmanager
def task_routing(
    model: nn.Module,
    expert_ids: torch.Tensor | None,
    mode: Routing = "neko",
    *,
    record: bool = True,
) -> Iterator[RoutingRecorder]:
    """Route ``model``'s forward passes inside the block; yields a `RoutingRecorder`.

    ``expert_ids``: LongTensor [batch], the task expert of each sequence (-1 = no task), or None for the
    plain router. Under beam search the batch grows by repeat_interleave; the ids follow. ``record=False``
    keeps nothing (long generation). Gradient checkpointing recomputes each layer during ``backward()``,
    possibly after the block has closed: the hooks then stay until that backward pass is through, so the
    recomputed forward routes exactly as the first one (a later `task_routing` call also clears them).
    """
    import torch

    if mode not in ROUTINGS:
        raise unknown_choice("routing mode", mode, ROUTINGS)
    _release_stale(model)
    routers = find_routers(model)
    if mode == "dense" or not routers:
        if mode != "dense":
            raise ConfigError(f"routing mode {mode!r} needs an MoE model; this one has no routers")
        yield RoutingRecorder(mode, 0, 0)
        return
    ids = None if expert_ids is None else torch.as_tensor(expert_ids, dtype=torch.long).reshape(-1)
    hooks = _RoutingHooks(model, routers, ids, mode, record)
    try:
        yield hooks.recorder
    finally:
        hooks.close()


def _remove(model: nn.Module, handles: list) -> None:
    """Remove routing hooks (idempotent) and forget them on the model."""
    for handle in handles:
        handle.remove()
    if getattr(model, "_neko_routing_hooks", None) is handles:
        del model._neko_routing_hooks


def _release_stale(model: nn.Module) -> None:
    """Remove hooks left waiting for a backward pass that never came."""
    stale = getattr(model, "_neko_routing_hooks", None)
    if stale is not None:
        _remove(model, stale)

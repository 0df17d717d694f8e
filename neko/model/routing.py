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

if TYPE_CHECKING:
    import torch
    from torch import nn

ROUTING_MODES = ("neko", "learned", "dense")
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

    mode: str
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


@contextlib.contextmanager
def task_routing(
    model: nn.Module,
    expert_ids: torch.Tensor | None,
    mode: str = "neko",
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

    if mode not in ROUTING_MODES:
        raise unknown_choice("routing mode", mode, ROUTING_MODES)
    _release_stale(model)
    routers = find_routers(model)
    if mode == "dense" or not routers:
        if mode != "dense":
            raise ConfigError(f"routing mode {mode!r} needs an MoE model; this one has no routers")
        yield RoutingRecorder(mode, 0, 0)
        return
    first = routers[0][1]
    recorder = RoutingRecorder(mode, first.num_experts, first.top_k)
    state = {"open": True, "fresh": False, "pending": 0}
    shape: dict[str, int] = {}
    ids = None if expert_ids is None else torch.as_tensor(expert_ids, dtype=torch.long).reshape(-1)

    def on_embed(module, args):
        # The embedding sees input_ids [batch, seq]: the only place the flattened router input's shape is
        # known. It lies outside the checkpointed layers, so it marks a fresh forward, never a recompute.
        if args and args[0].dim() == 2:
            shape["batch"], shape["seq"] = args[0].shape
        state["fresh"] = True

    def per_token(n_tokens: int) -> torch.Tensor:
        if ids is None:
            return torch.full((n_tokens,), -1, dtype=torch.long)
        batch = shape.get("batch", len(ids))
        seq_ids = ids if batch == len(ids) else ids.repeat_interleave(batch // len(ids))
        if len(seq_ids) != batch or n_tokens % batch:
            raise ConfigError(f"{len(ids)} expert ids do not fit a batch of {batch} sequences")
        return seq_ids.repeat_interleave(n_tokens // batch)

    def on_backward_done(grad):
        # The first router's logits get their gradient last, after every layer has been recomputed.
        state["pending"] -= 1
        if not state["open"] and state["pending"] == 0:
            _remove(model, handles)

    def on_router(module, args, output):
        logits, weights, indices = output
        token_experts = per_token(logits.shape[0]).to(logits.device)
        if mode == "neko" and bool((token_experts >= 0).any()):
            weights, indices = neko_topk(logits, token_experts, module.top_k)
            weights = weights.to(output[1].dtype)
        if module is first and state["fresh"] and logits.requires_grad:
            state["fresh"] = False
            state["pending"] += 1
            logits.register_hook(on_backward_done)
        if record and state["open"]:
            recorder.token_experts.append(token_experts)
            recorder.logits.append(logits)
            recorder.indices.append(indices.detach())
            recorder.weights.append(weights.detach())
        return logits, weights, indices

    handles = [model.get_input_embeddings().register_forward_pre_hook(on_embed)]
    handles += [router.register_forward_hook(on_router) for _, router in routers]
    try:
        yield recorder
    finally:
        state["open"] = False
        checkpointing = any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
        if checkpointing and state["pending"] > 0 and torch.is_grad_enabled():
            model._neko_routing_hooks = handles  # released by on_backward_done or the next call
        else:
            _remove(model, handles)


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

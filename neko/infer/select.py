"""``select`` mode: score each hypothesis as the continuation of the prompt and return the best one.

Prefix sharing, in two forward passes per batch of records:

1. the prompts go through one pass (left-padded, with position ids, KV cache on) that keeps only the last
   position's logits: each prompt runs ONCE, however many hypotheses it has;
2. the distinct hypotheses of each record are merged into a token trie (an n-best list mostly shares its
   prefixes: "turn of the lights" / "turn off the lights") and the trie nodes of every record run in one
   pass on top of the prompt cache, one row per record, with a tree attention mask: each node sees the
   prompt and its own ancestors, at position prompt length + depth. A node's hidden state is exactly that
   of its token in the plain sequence prompt + hypothesis, so each hypothesis token is computed once per
   distinct prefix rather than once per hypothesis. Logits are computed only at the nodes, for the tokens
   they must score (children and closing EOS).

A hypothesis's score is the sum (default) or mean of the log-probabilities of its tokens and of the EOS
that closes it, as in training; it equals the score of a plain forward pass over prompt + hypothesis +
EOS (tested to 1e-4 on Llama, Qwen2 and upcycled MoE models). No autoregressive loop: it can only return
one of the given hypotheses. Duplicate hypotheses of a record are scored once. The logits are
``lm_head(hidden state)``, as in the Llama, Qwen2, Mixtral and Qwen2-MoE heads (no logit scaling or
soft-capping).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from neko.infer.generate import last_log_probs, left_pad, special_ids

# Rows of logits turned into log-probabilities at once ([rows, vocabulary] floats each; SmolLM2: 25 MB, under
# glibc's 32 MB ceiling for heap-served blocks). 256 measured the same within noise (docs/INFERENCE.md).
LOGIT_ROWS = 128
# Most padded prompt tokens in one pass: its KV cache and activations (SmolLM2 x4 experts in fp32: about
# 140 kB a token) stay near 150 MB whatever the batch size; on CPU 1,024 rows already fill the matrix
# products, so smaller passes cost no speed.
PASS_TOKENS = 1024


@dataclass
class Trie:
    """The hypotheses of one record as a token trie: node k holds ``tokens[k]`` below ``parents[k]`` (-1: root).

    ``paths[h]`` lists the nodes of hypothesis ``h`` from the root down (empty for an empty hypothesis).
    """

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    paths: list[list[int]] = field(default_factory=list)

    def add(self, ids: Sequence[int]) -> None:
        """Insert one hypothesis, sharing the nodes of its longest prefix already in the trie."""
        node, path = -1, []
        for token in ids:
            child = self._children.get((node, token))
            if child is None:
                child = len(self.tokens)
                self.tokens.append(token)
                self.parents.append(node)
                self.depths.append(self.depths[node] + 1 if node >= 0 else 0)
                self._children[(node, token)] = child
            node = child
            path.append(node)
        self.paths.append(path)

    def __post_init__(self) -> None:
        self._children: dict[tuple[int, int], int] = {}

    def ancestors(self, width: int) -> torch.Tensor:
        """[width, width] bool: node q may attend to node k (k is q or one of its ancestors)."""
        seen = torch.zeros((width, width), dtype=torch.bool)
        for k, parent in enumerate(self.parents):  # parents come before their children
            if parent >= 0:
                seen[k] = seen[parent]
            seen[k, k] = True
        return seen


def _log_probs(model: Any, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) of each row of ``hidden`` ([n, H]), the logits computed a few rows at a time."""
    head = model.get_output_embeddings()
    out = torch.empty(len(targets), dtype=torch.float32, device=hidden.device)
    for start in range(0, len(targets), LOGIT_ROWS):
        logits = head(hidden[start : start + LOGIT_ROWS]).float()
        picked = logits.gather(-1, targets[start : start + LOGIT_ROWS, None]).squeeze(-1)
        # logsumexp in place: the logits are not needed after it, and a second [rows, vocabulary] block
        # would cost fresh pages every chunk.
        top = logits.amax(-1, keepdim=True)
        out[start : start + LOGIT_ROWS] = picked - logits.sub_(top).exp_().sum(-1).log_() - top.squeeze(-1)
    return out


@torch.inference_mode()
def score_shared(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    hypotheses: Sequence[Sequence[Sequence[int]]],
    *,
    reduce: str = "sum",
) -> list[list[float]]:
    """Score of each hypothesis (+ EOS) of each record given its prompt; duplicates score alike."""
    pad_id, eos_id = special_ids(tokenizer)
    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    first_lp, cache = last_log_probs(model, input_ids=ids, attention_mask=mask, position_ids=positions)
    tries = []
    for hyps in hypotheses:
        trie = Trie()
        for h in hyps:
            trie.add(h)
        tries.append(trie)
    # Every scored edge: (record, node or -1 for the prompt's last position, target token, hypothesis slot).
    edges: list[tuple[int, int, int, int]] = []
    slots = []
    slot_of: list[list[int]] = []  # record -> slot of each of its hypotheses (a repeat shares its slot)
    for rec, trie in enumerate(tries):
        firsts: dict[tuple[int, ...], int] = {}
        for path in trie.paths:
            if tuple(path) not in firsts:
                firsts[tuple(path)] = len(slots)
                slots.append(len(path) + 1)
                nodes = [-1, *path]
                targets = [trie.tokens[n] for n in path] + [eos_id]
                edges += [(rec, n, t, len(slots) - 1) for n, t in zip(nodes, targets, strict=True)]
        slot_of.append([firsts[tuple(path)] for path in trie.paths])
    totals = torch.zeros(len(slots), dtype=torch.float32, device=device)
    root = [e for e in edges if e[1] < 0]
    if root:
        at = torch.tensor([(r, t) for r, _, t, _ in root], device=device)
        totals.index_add_(0, torch.tensor([e[3] for e in root], device=device), first_lp[at[:, 0], at[:, 1]])
    inner = [e for e in edges if e[1] >= 0]
    if inner:
        hidden = _trie_hidden(model, cache, mask, tries)
        rows = torch.tensor([(r, n) for r, n, _, _ in inner], device=device)
        lp = _log_probs(
            model, hidden[rows[:, 0], rows[:, 1]], torch.tensor([e[2] for e in inner], device=device)
        )
        totals.index_add_(0, torch.tensor([e[3] for e in inner], device=device), lp)
    if reduce == "mean":
        totals = totals / torch.tensor(slots, dtype=torch.float32, device=device)
    flat = totals.tolist()
    return [[flat[slot] for slot in slots_] for slots_ in slot_of]


def _trie_hidden(model: Any, cache: Any, prompt_mask: torch.Tensor, tries: list[Trie]) -> torch.Tensor:
    """Last hidden states [records, nodes, H] of every trie node on top of its record's prompt cache."""
    device = prompt_mask.device
    width = max(len(t.tokens) for t in tries)
    ids = torch.zeros((len(tries), width), dtype=torch.long)
    depth = torch.zeros((len(tries), width), dtype=torch.long)
    allowed = torch.zeros((len(tries), width, prompt_mask.shape[1] + width), dtype=torch.bool)
    allowed[:, :, : prompt_mask.shape[1]] = prompt_mask.bool().cpu()[:, None, :]
    for rec, trie in enumerate(tries):
        n = len(trie.tokens)
        ids[rec, :n] = torch.tensor(trie.tokens, dtype=torch.long)
        depth[rec, :n] = torch.tensor(trie.depths, dtype=torch.long)
        allowed[rec, :, prompt_mask.shape[1] :] = trie.ancestors(width)
    dtype = next(model.parameters()).dtype
    # An additive float mask is what both the eager and the SDPA attention take as a custom 4D mask.
    bias = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    positions = prompt_mask.sum(-1, keepdim=True) + depth.to(device)
    return model.base_model(
        input_ids=ids.to(device),
        attention_mask=bias[:, None].to(device),
        position_ids=positions,
        cache=cache,
        use_cache=True,
    ).last_hidden_state


def pass_groups(prompts: Sequence[Sequence[int]]) -> Iterator[slice]:
    """Consecutive groups of records whose padded prompts hold at most ``PASS_TOKENS`` tokens (at least one
    record a group): the records that one forward pass over the prompts takes."""
    start = 0
    while start < len(prompts):
        stop, width = start + 1, len(prompts[start])
        while stop < len(prompts) and (stop + 1 - start) * max(width, len(prompts[stop])) <= PASS_TOKENS:
            width = max(width, len(prompts[stop]))
            stop += 1
        yield slice(start, stop)
        start = stop


def select_best(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    hypotheses: Sequence[Sequence[Sequence[int]]],
    *,
    reduce: str = "sum",
) -> list[tuple[int, list[float]]]:
    """For each record (prompt + its hypotheses' ids): (index of the best hypothesis, score of each).

    Ties go to the earlier hypothesis (the recogniser's preference). Records are scored in consecutive
    groups of at most ``PASS_TOKENS`` padded prompt tokens (at least one record a group).
    """
    results: list[tuple[int, list[float]]] = []
    for group in pass_groups(prompts):
        for scores in score_shared(model, tokenizer, prompts[group], hypotheses[group], reduce=reduce):
            best = max(range(len(scores)), key=lambda i: (scores[i], -i))
            results.append((best, scores))
    return results

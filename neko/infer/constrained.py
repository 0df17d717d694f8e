"""``constrained`` mode: beam search restricted to the paths of a lattice of the record's words.

For ASR the lattice is the n-best's word confusion network (below); for OCR it is the line's spelling
lattice (``neko.infer.spelling``: each word, or a dictionary word a few edits away). The search is the same.

The shown hypotheses are aligned into a confusion network (``neko.baselines.confusion_network``): a
sequence of slots, each holding the words the hypotheses put there (and ``EPS`` where some hypothesis puts
nothing). A path chooses one option per slot, so it can recombine words of different hypotheses (up to the
compositional oracle) but can never write a word no hypothesis has: it cannot hallucinate.

The model scores a path as the answer after the task prompt: the sum of the log-probabilities of its tokens
and of the EOS that closes it (what ``select`` computes for a hypothesis), plus ``cn_weight`` times the sum
of the log posteriors of the chosen options (each hypothesis votes 1 in its slot). Beam search walks the
slots left to right with ``beams`` paths per record; paths that reach the same tokens are merged (the best
score stays). A word is scored as the tokens of ``" " + word``; for the byte-level BPE tokenizers of the
base models (SmolLM2, Qwen2) their concatenation is the tokenisation of the whole text, so a path's score
equals ``select``'s score of its text (tested). The empty path (every slot ``EPS``) is rescored at the end
as ``select`` scores an empty text (a lone space token, as training encodes an empty target).

Cost: each prompt runs ONCE (left-padded, KV cache on); the cache is then shared by the beams of the record
(``reorder_cache``). At each slot, the first token of every option is scored from the beam's last logits;
the later tokens of multi-token words are scored in one pass of a token trie on top of the cache (tree
attention, as in ``select``; the trie is cropped off afterwards); then the chosen words are appended in one
left-padded pass, whose last logits score the next slot (or the closing EOS).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from neko.baselines.confusion_network import EPS, ConfusionNetwork, build_confusion_network
from neko.infer.config import InferConfig
from neko.infer.generate import last_log_probs, left_pad, special_ids
from neko.infer.prompt import Prepared, answer_ids, encode_text, prepare
from neko.infer.select import Trie, _log_probs, pass_groups, score_shared
from neko.records import Record
from neko.tasks.base import PromptStyle

# The tasks with a lattice: ASR (the n-best's confusion network), OCR (the line's spelling lattice).
LATTICE_TASKS = ("asr", "ocr")


@dataclass
class CnPath:
    """One path through a record's confusion network.

    Attributes:
        text: the chosen words joined by single spaces.
        score: what the beam search ranks by: ``lm_score + cn_weight * cn_score``.
        lm_score: the model's log-probability of the path's tokens and the closing EOS (``mean`` score: per
            token).
        cn_score: the sum of the log posteriors of the chosen options in their slots.
    """

    text: str
    score: float
    lm_score: float
    cn_score: float


def network_of(hypotheses: Sequence[str]) -> ConfusionNetwork:
    """The confusion network of the hypotheses a prompt shows (one vote per distinct hypothesis)."""
    return build_confusion_network(list(hypotheses) or [""])


def slot_options(network: ConfusionNetwork) -> list[list[tuple[str, float]]]:
    """Per slot, each option (a word or ``EPS``) with its log posterior (its share of the slot's votes)."""
    options = []
    for slot in network.slots:
        total = sum(slot.values())
        options.append([(word, math.log(weight / total)) for word, weight in slot.items()])
    return options


def lattice_of(task: str, hypotheses: Sequence[str]) -> list[list[tuple[str, float]]]:
    """The slots of a record's lattice, each option (a word or words, or ``EPS``) with its log weight: the
    confusion network of the n-best for ASR, the spelling lattice of the first hypothesis for OCR."""
    if task == "asr":
        return slot_options(network_of(hypotheses))
    if task == "ocr":
        from neko.infer.spelling import spelling_options

        return spelling_options(hypotheses[0] if hypotheses else "")
    raise ValueError(f"task {task!r} has no lattice; tasks with one: {', '.join(LATTICE_TASKS)}")


def is_path(words: Sequence[str], network: ConfusionNetwork) -> bool:
    """True when ``words`` is a path of ``network``: one option per slot, in order, EPS left out."""
    # reachable[j]: the first j words can come from the slots seen so far.
    reachable = [True] + [False] * len(words)
    for slot in network.slots:
        step = [False] * (len(words) + 1)
        for j, ok in enumerate(reachable):
            if not ok:
                continue
            if EPS in slot:
                step[j] = True
            if j < len(words) and words[j] in slot:
                step[j + 1] = True
        reachable = step
    return reachable[-1]


@dataclass
class _Beam:
    record: int
    words: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    lm: float = 0.0
    cn: float = 0.0


class _Search:
    """Beam search state of one group of records: the shared KV cache, one row per live beam.

    ``mask`` [rows, cache length] marks real tokens (prompt left padding and the padding of appended chunks
    are 0); ``lengths`` counts each row's real tokens (the position of its next token); ``last`` holds the
    log-probabilities after each row's last real token.
    """

    def __init__(self, model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]]) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.pad_id, self.eos_id = special_ids(tokenizer)
        self.device = next(model.parameters()).device
        ids, self.mask = left_pad(prompts, self.pad_id, self.device)
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        self.last, self.cache = last_log_probs(
            model, input_ids=ids, attention_mask=self.mask, position_ids=positions
        )
        self.lengths = self.mask.sum(-1)
        self.beams = [_Beam(record) for record in range(len(prompts))]
        self._word_ids: dict[str, list[int]] = {}

    def word_ids(self, word: str) -> list[int]:
        """Token ids of ``word`` as the next word of an answer (after a space)."""
        if word not in self._word_ids:
            self._word_ids[word] = encode_text(self.tokenizer, " " + word)
        return self._word_ids[word]

    def option_gains(self, options: list[list[tuple[str, float]]]) -> list[list[float]]:
        """log p(option's tokens | row's path) of each option of each row (0 for EPS)."""
        gains = []
        tries: list[Trie] = []
        inner: list[list[tuple[int, int, int]]] = []  # per row: (option, trie node, next token)
        for row, opts in enumerate(options):
            trie, edges, first = Trie(), [], []
            for k, (word, _) in enumerate(opts):
                ids = self.word_ids(word) if word != EPS else []
                first.append(float(self.last[row, ids[0]]) if ids else 0.0)
                if len(ids) > 1:
                    # The node of token i predicts token i + 1: only the word's prefix needs a pass.
                    trie.add(ids[:-1])
                    edges += [(k, node, ids[i + 1]) for i, node in enumerate(trie.paths[-1])]
            gains.append(first)
            tries.append(trie)
            inner.append(edges)
        if any(trie.tokens for trie in tries):
            hidden = self._trie_hidden(tries)
            flat = [(row, k, node, token) for row, edges in enumerate(inner) for k, node, token in edges]
            where = torch.tensor([(row, node) for row, _, node, _ in flat], device=self.device)
            lp = _log_probs(
                self.model,
                hidden[where[:, 0], where[:, 1]],
                torch.tensor([t for *_, t in flat], device=self.device),
            ).tolist()
            for (row, k, _, _), value in zip(flat, lp, strict=True):
                gains[row][k] += value
        return gains

    def _trie_hidden(self, tries: list[Trie]) -> torch.Tensor:
        """Hidden states [rows, nodes, H] of each row's trie on top of its cache; the cache is left as it was."""
        rows, past = len(tries), self.mask.shape[1]
        width = max(1, max(len(t.tokens) for t in tries))
        ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        depth = torch.zeros((rows, width), dtype=torch.long)
        allowed = torch.zeros((rows, width, past + width), dtype=torch.bool)
        allowed[:, :, :past] = self.mask.bool().cpu()[:, None, :]
        for row, trie in enumerate(tries):
            n = len(trie.tokens)
            if n:
                ids[row, :n] = torch.tensor(trie.tokens, dtype=torch.long)
                depth[row, :n] = torch.tensor(trie.depths, dtype=torch.long)
            allowed[row, :, past:] = trie.ancestors(width)
        dtype = next(self.model.parameters()).dtype
        bias = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
        hidden = self.model.base_model(
            input_ids=ids.to(self.device),
            attention_mask=bias[:, None].to(self.device),
            position_ids=self.lengths[:, None] + depth.to(self.device),
            cache=self.cache,
            use_cache=True,
        ).last_hidden_state
        self.cache.crop(-width)
        return hidden

    def advance(self, parents: list[int], beams: list[_Beam], new_tokens: list[list[int]]) -> None:
        """Make ``beams`` the rows (row i continues row ``parents[i]`` with ``new_tokens[i]``)."""
        index = torch.tensor(parents, dtype=torch.long, device=self.device)
        self.cache.reorder_cache(index)
        self.mask, self.lengths, self.last = self.mask[index], self.lengths[index], self.last[index]
        self.beams = beams
        width = max(len(t) for t in new_tokens)
        if width == 0:
            return
        # Left-padded chunk: every row's last real token is the last column, so one logit row serves all.
        ids = torch.full((len(beams), width), self.pad_id, dtype=torch.long)
        chunk = torch.zeros((len(beams), width), dtype=torch.long)
        for row, tokens in enumerate(new_tokens):
            if tokens:
                ids[row, width - len(tokens) :] = torch.tensor(tokens, dtype=torch.long)
                chunk[row, width - len(tokens) :] = 1
        chunk = chunk.to(self.device)
        positions = (self.lengths[:, None] + chunk.cumsum(-1) - 1).clamp(min=0)
        self.mask = torch.cat([self.mask, chunk], dim=1)
        grew = chunk[:, -1].bool()
        self.last[grew], self.cache = last_log_probs(
            self.model,
            grew,
            input_ids=ids.to(self.device),
            attention_mask=self.mask,
            position_ids=positions,
            cache=self.cache,
        )
        self.lengths = self.lengths + chunk.sum(-1)

    def keep(self, rows: list[int]) -> None:
        """Drop every row but ``rows`` (beams of finished records)."""
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        if rows:
            self.cache.reorder_cache(index)
        self.mask, self.lengths, self.last = self.mask[index], self.lengths[index], self.last[index]
        self.beams = [self.beams[r] for r in rows]


def _finish(beam: _Beam, eos_lp: float, reduce: str, cn_weight: float) -> CnPath:
    lm = beam.lm + eos_lp
    if reduce == "mean":
        lm /= len(beam.tokens) + 1
    return CnPath(" ".join(beam.words), lm + cn_weight * beam.cn, lm, beam.cn)


def _rescore_empty(
    model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], done: list[list[CnPath]], reduce: str
) -> None:
    """Give the empty path the score ``select`` gives an empty text: its answer is a lone space token."""
    ids = answer_ids(tokenizer, "")
    empty = [(record, path) for record, paths in enumerate(done) for path in paths if not path.text]
    if not ids or not empty:
        return
    scores = score_shared(
        model, tokenizer, [prompts[r] for r, _ in empty], [[ids] for _ in empty], reduce=reduce
    )
    for (_, path), (lm,) in zip(empty, scores, strict=True):
        path.score += lm - path.lm_score
        path.lm_score = lm


def _extend(
    search: _Search, opts: list[list[tuple[str, float]]], beams: int, cn_weight: float
) -> tuple[list[int], list[_Beam], list[list[int]]]:
    """One step of the search: each beam extended by each option of its next slot (``opts``, one list per
    beam row), the ``beams`` best per record kept; returns (parent rows, new beams, their new token ids)."""
    gains = search.option_gains(opts)
    # Candidates per record: (total, row, option); the same tokens reached twice keep the best.
    best: dict[int, dict[tuple[int, ...], tuple[float, int, int]]] = {}
    for row, beam in enumerate(search.beams):
        for k, (word, log_post) in enumerate(opts[row]):
            tokens = tuple(beam.tokens) + (tuple(search.word_ids(word)) if word != EPS else ())
            total = beam.lm + gains[row][k] + cn_weight * (beam.cn + log_post)
            seen = best.setdefault(beam.record, {})
            if tokens not in seen or total > seen[tokens][0]:
                seen[tokens] = (total, row, k)
    parents, new_beams, new_tokens = [], [], []
    for record in sorted(best):
        # Ties keep the earlier beam and option: the recogniser's order.
        chosen = sorted(best[record].values(), key=lambda c: (-c[0], c[1], c[2]))[:beams]
        for _, row, k in chosen:
            beam, (word, log_post) = search.beams[row], opts[row][k]
            ids = search.word_ids(word) if word != EPS else []
            parents.append(row)
            new_tokens.append(ids)
            new_beams.append(
                _Beam(
                    record,
                    beam.words + ([word] if word != EPS else []),
                    beam.tokens + ids,
                    beam.lm + gains[row][k],
                    beam.cn + log_post,
                )
            )
    return parents, new_beams, new_tokens


@torch.inference_mode()
def _search_group(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    options: Sequence[list[list[tuple[str, float]]]],
    beams: int,
    top_k: int,
    cn_weight: float,
    reduce: str,
) -> list[list[CnPath]]:
    search = _Search(model, tokenizer, prompts)
    done: list[list[CnPath]] = [[] for _ in prompts]
    step = 0
    while True:
        # Beams of records with no slot left get their closing EOS and leave the cache.
        stay = []
        for row, beam in enumerate(search.beams):
            if len(options[beam.record]) == step:
                eos = float(search.last[row, search.eos_id])
                done[beam.record].append(_finish(beam, eos, reduce, cn_weight))
            else:
                stay.append(row)
        if not stay:
            break
        if len(stay) < len(search.beams):
            search.keep(stay)
        opts = [options[beam.record][step] for beam in search.beams]
        search.advance(*_extend(search, opts, beams, cn_weight))
        step += 1
    _rescore_empty(model, tokenizer, prompts, done, reduce)
    results = []
    for paths in done:
        paths.sort(key=lambda p: -p.score)
        results.append(paths[:top_k])
    return results


def constrained_paths(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    lattices: Sequence[ConfusionNetwork | list[list[tuple[str, float]]]],
    *,
    beams: int = 4,
    top_k: int = 1,
    cn_weight: float = 0.0,
    reduce: str = "sum",
) -> list[list[CnPath]]:
    """The ``top_k`` best lattice paths of each record (prompt ids + its confusion network, or its slots as
    ``lattice_of`` gives them), best first.

    At least ``top_k`` beams run. A record gets fewer than ``top_k`` paths when its network has fewer.
    Records run in consecutive groups of at most ``PASS_TOKENS`` padded prompt tokens (at least one record
    a group); each group's beams share one KV cache. ``reduce="mean"`` ranks the finished paths by their
    per-token log-probability (the search itself maximises the sum, as beam search does).
    """
    if beams < 1 or top_k < 1:
        raise ValueError("beams and top_k must be at least 1")
    beams = max(beams, top_k)  # the search can only return the paths its beams kept
    options = [slot_options(n) if isinstance(n, ConfusionNetwork) else n for n in lattices]
    results: list[list[CnPath]] = []
    for group in pass_groups(prompts):
        results += _search_group(
            model, tokenizer, prompts[group], options[group], beams, top_k, cn_weight, reduce
        )
    return results


def prepared_paths(
    model: Any, tokenizer: Any, prepared: Sequence[Prepared], config: InferConfig, top_k: int = 1
) -> list[list[CnPath]]:
    """``constrained_paths`` of prepared records (of ``LATTICE_TASKS``), with the beams, CN weight and score
    of ``config``."""
    return constrained_paths(
        model,
        tokenizer,
        [p.prompt_ids for p in prepared],
        [lattice_of(p.record.task, p.record.hypotheses) for p in prepared],
        beams=config.cn_beams,
        top_k=top_k,
        cn_weight=config.cn_weight,
        reduce=config.select_score,
    )


def constrained_candidates(
    model: Any,
    tokenizer: Any,
    records: Sequence[Record],
    config: InferConfig,
    top_k: int = 4,
    style: PromptStyle = "full",
) -> list[list[CnPath]]:
    """Up to ``top_k`` constrained paths of each record (best first), as extra candidates of a decision
    (prompts in the model's ``style``).

    Records of a task without a lattice (not in ``LATTICE_TASKS``) get an empty list. Routing is the
    caller's (run it inside ``Corrector._routing`` to force a task expert).
    """
    results: list[list[CnPath]] = [[] for _ in records]
    wanted = [i for i, r in enumerate(records) if r.task in LATTICE_TASKS]
    prepared = [prepare(tokenizer, records[i], config, style) for i in wanted]
    for i, paths in zip(wanted, prepared_paths(model, tokenizer, prepared, config, top_k), strict=True):
        results[i] = paths
    return results

"""Sparse upcycling: a dense Llama / Qwen2 LM becomes a Mixtral / Qwen2-MoE whose experts all copy its MLP.

Why the upcycled model computes exactly the dense function: every expert holds the same MLP weights and the
top-k gate weights are renormalised to sum to 1 (Mixtral always; Qwen2-MoE with ``norm_topk_prob=True``), so
``sum_k w_k * MLP(x) = MLP(x)`` whatever the router picks. Qwen2-MoE's shared expert is built at width 1 with
all weights zero, so it adds exactly 0 (its sigmoid gate cannot be shut, but it multiplies a zero output).

Router initialisation: small seeded random weights (std 0.02, the transformers initializer range). All-zero
routers would also keep the output equal, but every token's logits would tie and ``torch.topk`` would break
the tie by index, sending every token to experts 0 and 1: the load-balancing loss then starts from total
collapse and the first neko router top-1 is always the lowest-numbered other expert. Random weights give
each token a distinct, roughly uniform choice from the first step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from neko.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Dense architecture -> its MoE counterpart (model_type names of transformers' config classes).
MOE_OF_DENSE = {"llama": "mixtral", "qwen2": "qwen2_moe"}
MOE_TYPES = ("mixtral", "qwen2_moe")
ROUTER_INIT_STD = 0.02
ROUTER_SEED = 1234


def is_moe(model: PreTrainedModel) -> bool:
    """Whether ``model`` is already one of the supported MoE architectures."""
    return model.config.model_type in MOE_TYPES


def _shared_fields(cfg) -> dict:
    """Config fields that carry over unchanged from the dense config."""
    names = (
        "vocab_size hidden_size num_hidden_layers num_attention_heads num_key_value_heads hidden_act "
        "max_position_embeddings rms_norm_eps tie_word_embeddings rope_parameters attention_dropout "
        "bos_token_id eos_token_id pad_token_id"
    ).split()
    return {name: getattr(cfg, name) for name in names if hasattr(cfg, name)}


def moe_config(dense_cfg, num_experts: int, top_k: int):
    """The Mixtral / Qwen2-MoE config that holds ``num_experts`` copies of the dense MLP."""
    from transformers import MixtralConfig, Qwen2MoeConfig

    kind = dense_cfg.model_type
    if kind not in MOE_OF_DENSE:
        raise ConfigError(f"cannot upcycle model_type {kind!r}; supported: {', '.join(MOE_OF_DENSE)}")
    if not 1 <= top_k <= num_experts:
        raise ConfigError(f"top_k={top_k} must lie in 1..num_experts={num_experts}")
    common = _shared_fields(dense_cfg)
    moe = dict(num_experts_per_tok=top_k, output_router_logits=False, initializer_range=ROUTER_INIT_STD)
    if kind == "llama":
        # Mixtral's attention has no biases and its experts no bias either: refuse what it cannot hold.
        if getattr(dense_cfg, "attention_bias", False) or getattr(dense_cfg, "mlp_bias", False):
            raise ConfigError("Llama models with attention/MLP biases have no Mixtral counterpart")
        return MixtralConfig(
            **common,
            head_dim=getattr(dense_cfg, "head_dim", None),
            intermediate_size=dense_cfg.intermediate_size,
            num_local_experts=num_experts,
            router_jitter_noise=0.0,
            sliding_window=None,
            **moe,
        )
    return Qwen2MoeConfig(
        **common,
        intermediate_size=dense_cfg.intermediate_size,
        moe_intermediate_size=dense_cfg.intermediate_size,
        shared_expert_intermediate_size=1,
        num_experts=num_experts,
        norm_topk_prob=True,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        qkv_bias=True,
        use_sliding_window=getattr(dense_cfg, "use_sliding_window", False),
        sliding_window=getattr(dense_cfg, "sliding_window", None),
        max_window_layers=getattr(dense_cfg, "max_window_layers", dense_cfg.num_hidden_layers),
        **moe,
    )


def upcycle(
    dense_model: PreTrainedModel,
    num_experts: int,
    top_k: int,
    *,
    consume: bool = False,
    expand: bool = False,
) -> PreTrainedModel:
    """A MoE model whose every expert copies ``dense_model``'s MLP; an MoE model is returned unchanged.

    The result has the dense model's dtype, is in eval mode, and gives the dense model's logits (up to
    float rounding) for any router weights. ``consume=True`` hands the dense weights over instead of
    copying them: the MoE takes the embeddings, attention and norms as they are and each dense MLP is
    released as soon as its experts are stacked, so loading never holds a dense and an MoE copy at once
    (SmolLM2 at 4 experts: peak RSS 3.7 GB -> under 2 GB); ``dense_model`` is unusable afterwards.
    ``expand=True`` makes each fused expert weight a stride-0 ``expand`` view of one MLP copy instead of E
    copies: read-only (an in-place update would write all experts at once), for models whose experts run
    shared (`neko.model.shared_experts`): inference, and single-process training where the experts' base
    is frozen (merging materialises it first); never for saving the base itself.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if is_moe(dense_model):
        n = getattr(dense_model.config, "num_local_experts", None) or dense_model.config.num_experts
        if n != num_experts or dense_model.config.num_experts_per_tok != top_k:
            raise ConfigError(
                f"base is already an MoE with {n} experts, top-{dense_model.config.num_experts_per_tok}; "
                f"config asks for {num_experts}, top-{top_k}"
            )
        return dense_model
    cfg = moe_config(dense_model.config, num_experts, top_k)
    dtype = next(dense_model.parameters()).dtype
    # Build on the meta device: random init of hundreds of millions of expert weights is wasted work, and
    # `assign=True` below makes the new tensors the parameters (no second, copied-into allocation).
    with torch.device("meta"):
        moe = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    shared = cfg.model_type == "qwen2_moe"
    release = _release_parameter(dense_model) if consume else None
    state = _moe_state_dict(
        dense_model.state_dict(), num_experts, cfg.hidden_size, dtype, shared, release, expand
    )
    missing, unexpected = moe.load_state_dict(state, strict=False, assign=True)
    if unexpected or missing:
        raise ConfigError(f"upcycling left weights unset {missing[:4]} or unused {unexpected[:4]}")
    moe.tie_weights()
    # Non-persistent buffers (rotary inv_freq) are not in any state dict and were left uninitialised on
    # the meta device: rebuild those modules from the config, as a fresh init would.
    for name, module in list(moe.named_modules()):
        if type(module).__name__.endswith("RotaryEmbedding"):
            parent = moe.get_submodule(name.rsplit(".", 1)[0]) if "." in name else moe
            setattr(parent, name.rsplit(".", 1)[-1], type(module)(config=module.config))
    left = [n for n, t in [*moe.named_parameters(), *moe.named_buffers()] if t.device.type == "meta"]
    if left:
        raise ConfigError(f"upcycling left tensors uninitialised: {left[:4]}")
    moe.generation_config = dense_model.generation_config
    return moe.eval()


def _release_parameter(model: PreTrainedModel):
    """A function that frees the dense parameter ``name`` of ``model`` (its storage becomes empty)."""
    import torch

    def release(name: str) -> None:
        model.get_parameter(name).data = torch.empty(0, dtype=model.get_parameter(name).dtype)

    return release


def _moe_state_dict(
    dense: dict, num_experts: int, hidden: int, dtype, shared_expert: bool, release=None, expand=False
) -> dict:
    """Dense weights renamed for the MoE, MLPs stacked into fused experts, seeded routers, zero shared experts.

    Without ``release`` the dense tensors are cloned (the MoE owns its weights); with it they are taken as
    they are and each MLP weight is released (``release(name)``) once its experts are built. ``expand``
    stacks the experts as stride-0 views of one copy.
    """
    import torch

    gen = torch.Generator().manual_seed(ROUTER_SEED)
    out, layers = {}, set()
    for key, value in dense.items():
        if ".mlp." not in key:
            out[key] = value if release else value.clone()
            continue
        layers.add(key.split(".mlp.")[0])
    for prefix in sorted(layers, key=lambda p: int(p.rsplit(".", 1)[1])):
        names = [f"{prefix}.mlp.{proj}.weight" for proj in ("gate_proj", "up_proj", "down_proj")]
        gate, up, down = (dense.pop(name) for name in names)
        gate_up = torch.cat([gate, up], 0).unsqueeze(0)
        if expand:
            # Views keep `down`'s storage alive after the dense parameter is released; cat made a new one.
            out[f"{prefix}.mlp.experts.gate_up_proj"] = gate_up.expand(num_experts, -1, -1)
            down = down if release else down.clone()
            out[f"{prefix}.mlp.experts.down_proj"] = down.unsqueeze(0).expand(num_experts, -1, -1)
        else:
            out[f"{prefix}.mlp.experts.gate_up_proj"] = gate_up.repeat(num_experts, 1, 1)
            out[f"{prefix}.mlp.experts.down_proj"] = down.unsqueeze(0).repeat(num_experts, 1, 1).contiguous()
        del gate, up, down, gate_up
        if release:
            for name in names:
                release(name)
        router = torch.randn(num_experts, hidden, generator=gen) * ROUTER_INIT_STD
        out[f"{prefix}.mlp.gate.weight"] = router.to(dtype)
        if not shared_expert:
            continue
        for name, shape in (("gate_proj", (1, hidden)), ("up_proj", (1, hidden)), ("down_proj", (hidden, 1))):
            out[f"{prefix}.mlp.shared_expert.{name}.weight"] = torch.zeros(shape, dtype=dtype)
        out[f"{prefix}.mlp.shared_expert_gate.weight"] = torch.zeros(1, hidden, dtype=dtype)
    return out


def upcycle_to_dir(base: str, num_experts: int, top_k: int, out_dir: str | Path) -> Path:
    """``neko upcycle``: resolve ``base``, upcycle it and save model + tokenizer as a plain HF folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from neko.model.base import resolve_base

    folder = resolve_base(base)
    dense = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    moe = upcycle(dense, num_experts, top_k, consume=True)
    out = Path(out_dir)
    moe.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return out

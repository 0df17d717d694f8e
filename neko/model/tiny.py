"""Tiny real models for tests across the project: a BPE tokenizer trained in code and small random LMs.

Both build offline in well under a second, are seeded, and are the same classes as the real ones
(`PreTrainedTokenizerFast`, `LlamaForCausalLM`, `Qwen2ForCausalLM`), so tests exercise the real code paths:
save one with ``save_pretrained`` into a temporary folder and pass that folder as ``ModelConfig.base``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"

# A fixed English corpus so the trained merges, and so every token id, are the same on every machine.
_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "correct the transcription of the speech recognizer",
    "translate the sentence into english and fix the grammar",
    "the recognised text has errors in spelling and in word order",
    "he go to school every day and he like his teacher",
    "optical character recognition confuses the letters l and i and o and zero",
    "we evaluate word error rate and bleu on the test set",
    "hypothesis one hypothesis two hypothesis three best candidate",
    "a mixture of experts routes every token to two experts",
    "the weather today is sunny with a chance of rain in the evening",
    "numbers like one two three four five six seven eight nine ten",
    "What is the answer? It is: 42, or maybe 7; who knows!",
]

# ChatML, as SmolLM2 and Qwen2.5 use, so code that calls apply_chat_template also runs on the tiny tokenizer.
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (bos/eos/pad and ChatML markers as special tokens) trained on a fixed corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.chat_template = _CHAT_TEMPLATE
    return fast


def tiny_dense_model(
    family: str = "llama",
    vocab_size: int | None = None,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
) -> PreTrainedModel:
    """A small dense LM of ``family`` ("llama" or "qwen2") with seeded random weights, in fp32 eval mode.

    ``vocab_size`` defaults to the tiny tokenizer's. Weights are drawn with std 0.1 (biases and norm gains
    included) rather than transformers' 0.02, so that every sublayer changes the logits visibly and an
    equivalence test cannot pass by accident.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tok = tiny_tokenizer() if vocab_size is None else None
    vocab = vocab_size or len(tok)
    ids = (
        {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
        if tok is not None
        else {}
    )
    common = dict(
        vocab_size=vocab,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        **ids,
    )
    families = {
        "llama": lambda: LlamaForCausalLM(LlamaConfig(tie_word_embeddings=True, **common)),
        "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(tie_word_embeddings=False, **common)),
    }
    if family not in families:
        from neko.errors import unknown_choice

        raise unknown_choice("tiny model family", family, families)
    torch.manual_seed(seed)
    model = families[family]()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen) * 0.1
            param.copy_(1.0 + noise if name.endswith("norm.weight") else noise)
    return model.float().eval()


def save_tiny_base(folder, family: str = "llama", seed: int = 0):
    """Save a tiny dense model and the tiny tokenizer into ``folder`` (a usable ``ModelConfig.base``)."""
    from pathlib import Path

    folder = Path(folder)
    tiny_dense_model(family, seed=seed).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder

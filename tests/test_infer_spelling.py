"""OCR spelling lattices: each word or a dictionary word near it; ``constrained`` OCR emits only their paths."""

from __future__ import annotations

import torch

from neko.infer.config import InferConfig
from neko.infer.constrained import constrained_candidates, lattice_of
from neko.infer.corrector import Corrector
from neko.infer.spelling import candidates, spelling_options
from neko.model.tiny import tiny_dense_model, tiny_tokenizer
from neko.records import Record

torch.set_num_threads(1)

TOK = tiny_tokenizer()


def words_of(slots) -> list[list[str]]:
    return [[word for word, _ in slot] for slot in slots]


def is_lattice_path(text: str, slots) -> bool:
    """True when ``text`` is one option per slot, in order (options may hold several words)."""
    ends = {0}
    words = text.split()
    for slot in slots:
        ends = {
            end + len(o.split())
            for end in ends
            for o, _ in slot
            if words[end : end + len(o.split())] == o.split()
        }
    return len(words) in ends


def test_non_words_get_dictionary_words_with_punctuation_and_casing_kept():
    assert ("precincts,", 1) in candidates("precincta,")
    assert ("British", 1) in candidates("Britinh")
    assert ("(Vincennes)", 1) in candidates("(Vincenncs)")
    assert ("THE", 1) in candidates("THF")
    # Glyph confusions undone (li for h, rn for m), at one place or everywhere.
    assert ("the", 1) in candidates("tlie")
    assert ("committee", 1) in candidates("cornrnittee")
    # The token itself always comes first, at distance 0.
    assert candidates("Britinh")[0] == ("Britinh", 0)


def test_real_words_get_only_much_more_frequent_neighbours():
    assert ("are", 1) in candidates("arc")
    assert candidates("quick") == [("quick", 0)]
    assert candidates("doesn’t") == [("doesn’t", 0)]  # a typographic apostrophe is still a word


def test_numbers_symbols_and_single_letters_keep_only_themselves():
    for token in ("1871", "a", "I", "#6", "bran-new", "—"):
        assert candidates(token) == [(token, 0)]


def test_lattice_merges_runs_of_sure_words_and_weighs_options_by_edits():
    slots = spelling_options("The Britinh police  have heen searching")
    words = words_of(slots)
    assert words[0] == ["The"] and words[2] == ["police have"] and words[4] == ["searching"]
    assert words[1][:2] == ["Britinh", "British"] and words[3][:2] == ["heen", "been"]
    assert all(weight <= 0 for slot in slots for _, weight in slot)
    assert slots[1][0][1] == 0 and slots[1][1][1] == -1
    assert spelling_options("") == [[("", 0.0)]]
    assert lattice_of("ocr", ["tlie cat"]) == spelling_options("tlie cat")


def test_constrained_ocr_emits_only_lattice_paths():
    lines = ["Tlie Britinh police heen searching", "1871 cornrnittee arc here", "", "quick"]
    records = [Record(str(i), "ocr", "d", [line]) for i, line in enumerate(lines)]
    model = tiny_dense_model(seed=3)
    found = constrained_candidates(model, TOK, records, InferConfig(), top_k=3)
    for line, paths in zip(lines, found, strict=True):
        slots = spelling_options(line)
        assert paths and all(is_lattice_path(p.text, slots) for p in paths)
    outs = Corrector(model, TOK, InferConfig(mode="constrained")).correct_many(records)
    for line, out in zip(lines, outs, strict=True):
        assert out.mode == "constrained" and out.task == "ocr"
        assert is_lattice_path(out.text, spelling_options(line))
        if out.index == 0:
            assert out.text == line

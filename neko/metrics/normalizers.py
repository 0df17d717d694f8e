"""Text normalisers applied to hypotheses and references alike before scoring.

Each normaliser is a plain ``str -> str`` callable, registered by name in the literal dict ``NORMALIZERS``:

- ``none``: the text as is (jiwer still splits on whitespace, so runs of spaces never count as errors).
- ``hyporadise``: the conventions of the HyPoradise references: lowercase, no punctuation, acronyms spelled as
  spaced letters ("U.S." and "NEC" become "u s" and "n e c"), apostrophes kept inside words ("there's"),
  hyphens and other punctuation turned into word breaks, single spaces.
- ``whisper``: OpenAI Whisper's English normaliser, the class that ships with transformers
  (``transformers.models.whisper.english_normalizer.EnglishTextNormalizer``), fed with Whisper's own
  British-to-American spelling table. The table is the ``english.json`` of the ``openai-whisper==20250625``
  package (MIT licence, copied unchanged as ``whisper_english.json`` beside this file, see
  ``whisper_english.LICENSE``); it is the same table that the hub's Whisper tokenizers ship as
  ``normalizer.json``, so nothing is fetched at run time.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from functools import cache
from pathlib import Path

from neko.errors import unknown_choice

Normalizer = Callable[[str], str]

WHISPER_SPELLING_TABLE = Path(__file__).with_name("whisper_english.json")

# Curly quotes and primes would otherwise split "don’t" into two words under the punctuation rule below.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
# "U.S.", "a.m.", "e.g.": letters each followed by a dot, at least two of them.
_DOTTED_ACRONYM = re.compile(r"\b(?:[A-Za-z]\.){2,}")
# All-capital words of 2-5 letters ("NEC", "FBI", the "NEC" of "NEC's"); a shouted sentence is spelled out
# too, the price of recognising acronyms by their form alone.
_CAPS_ACRONYM = re.compile(r"\b[A-Z]{2,5}\b")
# An apostrophe that does not join two word characters is a quotation mark.
_STRAY_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


def identity(text: str) -> str:
    """The ``none`` normaliser: return the text unchanged."""
    return text


def _spell_out(letters: str) -> str:
    return " ".join(letters.lower())


def hyporadise(text: str) -> str:
    """Normalise to the HyPoradise conventions: lowercase, no punctuation, spaced-letter acronyms.

    Acronyms can only be recognised from their form (dots or capitals), so an all-capital word of 2-5
    letters is spelled out; text that is already lowercase (as every HyPoradise hypothesis is) only loses
    its punctuation.
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    text = _DOTTED_ACRONYM.sub(lambda m: " " + _spell_out(m.group(0).replace(".", "")) + " ", text)
    text = _CAPS_ACRONYM.sub(lambda m: _spell_out(m.group(0)), text)
    text = text.lower()
    # Every punctuation or symbol character except the apostrophe becomes a word break ("flour-fattened").
    text = "".join(" " if ch != "'" and unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    text = _STRAY_APOSTROPHE.sub(" ", text)
    return " ".join(text.split())


@cache
def _whisper_normalizer() -> Normalizer:
    # Imported here: transformers is heavy and only this normaliser needs it. Cached: the spelling table
    # and the number normaliser's regexes are built once per process.
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    with open(WHISPER_SPELLING_TABLE, encoding="utf-8") as handle:
        mapping = json.load(handle)
    return EnglishTextNormalizer(mapping)


def whisper(text: str) -> str:
    """Normalise with Whisper's English normaliser (numbers as digits, American spelling, no fillers)."""
    return _whisper_normalizer()(text)


NORMALIZERS: dict[str, Normalizer] = {"none": identity, "hyporadise": hyporadise, "whisper": whisper}


def get_normalizer(name: str | None) -> Normalizer:
    """The normaliser called ``name`` (None means ``none``); a ConfigError lists the valid names otherwise."""
    if name is None:
        return identity
    try:
        return NORMALIZERS[name]
    except KeyError:
        raise unknown_choice("normalizer", name, NORMALIZERS) from None

"""HyPoradise-style text normalisation for generated ASR data: numbers as words, lowercase, no punctuation.

HyPoradise references are lowercase, keep apostrophes and nothing else but letters and spaces. Whisper writes
digits ("20 minutes", "$5", "3rd") and punctuation, so the same function is applied to references (before they
are synthesised, so that the speech says exactly the reference words) and to every hypothesis.
"""

from __future__ import annotations

import re
import unicodedata

# Typographic characters that are the same word-internal mark as an ASCII one.
_TRANSLATE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2013": "-", "\u2014": " - "})
_CURRENCY = {"$": "dollars", "\u00a3": "pounds", "\u20ac": "euros"}
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECADE = re.compile(r"\b(\d{2,4})'?s\b")
_MONEY = re.compile(r"([$\u00a3\u20ac])\s?(\d[\d,]*(?:\.\d+)?)(\s?(?:million|billion|thousand|trillion))?")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_THOUSANDS = re.compile(r"\b(\d{1,3}(?:,\d{3})+)\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_NOT_WORD = re.compile(r"[^a-z' ]+")
_LONE_APOSTROPHE = re.compile(r"(?<![a-z])'|'(?![a-z])")


def num2words(value: int, **options) -> str:
    """``num2words.num2words`` imported on first use (the ``data`` extra), so ``neko --help`` needs no extra."""
    from num2words import num2words as spell

    return spell(value, **options)


def number_to_words(token: str) -> str:
    """Spell a digit string ("2022", "3.5", "07") as words, years read the way people say them.

    Four-digit numbers from 1100 to 2099 are read as years ("nineteen ninety") because that is how the text-to-
    speech voices and most speakers say them; leading zeros are read digit by digit ("oh seven" style codes).
    """
    if "." in token:
        whole, frac = token.split(".", 1)
        digits = " ".join(num2words(int(d)) for d in frac)
        return f"{number_to_words(whole)} point {digits}"
    if len(token) > 1 and token.startswith("0"):
        return " ".join(num2words(int(d)) for d in token)
    value = int(token)
    if len(token) == 4 and 1100 <= value <= 2099 and value % 1000 != 0:
        return num2words(value, to="year")
    if len(token) > 15:  # very long digit runs are codes, not quantities
        return " ".join(num2words(int(d)) for d in token)
    return num2words(value)


def _spell(match: re.Match) -> str:
    return f" {number_to_words(match.group(0))} "


def numbers_to_words(text: str) -> str:
    """Rewrite every number in ``text`` as words: currencies, percentages, ordinals, decades, thousands."""
    text = _MONEY.sub(
        lambda m: (
            f" {number_to_words(m.group(2).replace(',', ''))}{(' ' + m.group(3).strip()) if m.group(3) else ''} "
            f"{_CURRENCY[m.group(1)]} "
        ),
        text,
    )
    # A comma-grouped number is a quantity, never a year: spell it before the year rule can see four digits.
    text = _THOUSANDS.sub(lambda m: f" {num2words(int(m.group(1).replace(',', '')))} ", text)
    text = _PERCENT.sub(lambda m: f" {number_to_words(m.group(1))} percent ", text)
    text = _ORDINAL.sub(lambda m: f" {num2words(int(m.group(1)), to='ordinal')} ", text)
    text = _DECADE.sub(lambda m: f" {_plural(number_to_words(m.group(1)))} ", text)
    return _NUMBER.sub(_spell, text)


def _plural(words: str) -> str:
    # "nineteen ninety" -> "nineteen nineties", "twenty" -> "twenties": how a decade is said.
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return f"{head} {last}".strip()


def normalize_text(text: str) -> str:
    """The HyPoradise form of ``text``: ASCII lowercase words and apostrophes, numbers spelled out, one space.

    Hyphens and slashes separate words; any other punctuation is dropped; accents are stripped.
    """
    text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
    text = numbers_to_words(text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = text.lower().replace("&", " and ")
    text = re.sub(r"[-/_]", " ", text)
    text = _NOT_WORD.sub("", re.sub(r"[.,;:!?\"()\[\]{}]", " ", text))
    text = _LONE_APOSTROPHE.sub("", text)
    return " ".join(text.split())


def distinct_hypotheses(
    hypotheses: list[str], scores: list[float] | None = None, *, keep: int = 5
) -> tuple[list[str], list[float] | None]:
    """Normalise, drop empty and repeated hypotheses (first occurrence wins), keep the first ``keep``.

    The input is best first, so the first occurrence of a normalised text carries its best score.
    """
    seen: set[str] = set()
    out_h: list[str] = []
    out_s: list[float] = []
    for i, hyp in enumerate(hypotheses):
        if hyp is None:  # pocketsphinx n-best lists can hold None entries
            continue
        norm = normalize_text(hyp)
        if not norm or norm in seen:
            continue
        seen.add(norm)
        out_h.append(norm)
        if scores is not None:
            out_s.append(float(scores[i]))
        if len(out_h) == keep:
            break
    return out_h, (out_s if scores is not None else None)

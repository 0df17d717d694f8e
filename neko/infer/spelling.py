"""Spelling lattices of OCR lines: each word of the line, or a dictionary word a few edits away.

OCR errors are mostly character confusions inside a word (``arc`` for ``are``, ``precincta`` for
``precincts``). A spelling lattice gives each whitespace-separated token of the line one slot whose options
are the token itself and the dictionary words that SymSpell (symmetric-delete lookup, ``symspellpy``) finds
within a few edits of it, with the token's leading and trailing punctuation and its casing kept:

- a token whose letters are not a dictionary word (a non-word error) gets the closest words within
  ``NONWORD_EDITS`` edits (1 for tokens of up to 3 letters: 2 edits make any short word anything);
- a token that is a dictionary word (a possible real-word error) gets the words one edit away that are at
  least ``REAL_WORD_RATIO`` times as frequent (``arc`` -> ``are``), since most real words are right;
- a token that a common OCR glyph confusion (``CONFUSIONS``: ``li`` read for ``h``, ``rn`` for ``m``, ...)
  (at one place or at all: ``cornrnittee`` -> ``committee``) turns into a dictionary word also gets that
  word, at distance 1 (``tlie`` -> ``the``);
- tokens with digits or other symbols inside, and words of one letter, keep only themselves.

A typographic apostrophe (``’``) is looked up as ``'`` and kept in what comes out.

An option's log weight is minus its edit distance (0 for the token itself): the channel's evidence, which
``constrained`` search adds with ``cn_weight`` to the model's score. Consecutive slots with a single option
are merged into one multi-word option (the search spends one step per slot). A path through the lattice
therefore changes whole words only into dictionary words: it cannot hallucinate text the line does not
suggest.

The dictionary is SymSpell's English frequency list (82,765 words, from Google Books n-grams and SCOWL),
shipped inside the ``symspellpy`` wheel.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from typing import Any

from symspellpy import SymSpell, Verbosity

# Edits a non-word may be away from a candidate (tokens of up to SHORT letters: one edit).
NONWORD_EDITS = 2
SHORT = 3
# A dictionary word is offered an alternative one edit away only when that one is this much more frequent.
REAL_WORD_RATIO = 100.0
# Candidates per token besides the token itself.
MAX_CANDIDATES = 3

# Glyph sequences OCR engines read for others (what was printed -> what was read, reversed here):
# read -> printed, each tried once per position.
CONFUSIONS = (("li", "h"), ("rn", "m"), ("cl", "d"), ("vv", "w"), ("ii", "u"), ("ri", "n"), ("tl", "d"))

# Leading punctuation, the word (letters, inner apostrophes or hyphens), trailing punctuation.
_TOKEN = re.compile(r"^([^\w]*)([A-Za-z](?:[A-Za-z'’-]*[A-Za-z])?)([^\w]*)$")


@functools.cache
def speller() -> SymSpell:
    """SymSpell over the English frequency dictionary of the ``symspellpy`` wheel (loaded once, ~1 s)."""
    speller = SymSpell(max_dictionary_edit_distance=NONWORD_EDITS, prefix_length=7)
    path = importlib.resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    if not speller.load_dictionary(str(path), term_index=0, count_index=1, encoding="utf-8"):
        raise FileNotFoundError(f"SymSpell dictionary not found: {path}")
    return speller


def _cased(word: str, like: str) -> str:
    """``word`` (lower case) with the casing pattern of ``like``: ALL CAPS, Capitalised or as is."""
    if len(like) > 1 and like.isupper():
        return word.upper()
    if like[0].isupper():
        return word[0].upper() + word[1:]
    return word


def _confusions(word: str, known: Any) -> list[str]:
    """Dictionary words that undoing a glyph confusion of ``CONFUSIONS`` (at one place, or at all) makes of
    ``word``."""
    found = []
    for read, printed in CONFUSIONS:
        # Every occurrence at once ("cornrnittee" -> "committee"), then each one alone.
        every = word.replace(read, printed)
        if every != word and every in known:
            found.append(every)
        start = word.find(read)
        while start >= 0:
            fixed = word[:start] + printed + word[start + len(read) :]
            if fixed in known and fixed not in found:
                found.append(fixed)
            start = word.find(read, start + 1)
    return found


def candidates(token: str, symspell: Any | None = None) -> list[tuple[str, int]]:
    """The token itself (distance 0) and up to ``MAX_CANDIDATES`` dictionary words near it, with their edit
    distances, best first (fewer edits, then more frequent); punctuation around the word and casing kept."""
    match = _TOKEN.match(token)
    if match is None or len(match.group(2)) < 2:
        return [(token, 0)]
    head, core, tail = match.groups()
    symspell = symspell or speller()
    curly = "’" in core
    lower = core.lower().replace("’", "'")
    count = symspell.words.get(lower, 0)
    if count:
        found = symspell.lookup(lower, Verbosity.ALL, max_edit_distance=1)
        ranked = [(s.distance, -s.count, s.term) for s in found if s.count >= REAL_WORD_RATIO * count]
    else:
        edits = 1 if len(core) <= SHORT else NONWORD_EDITS
        found = symspell.lookup(lower, Verbosity.ALL, max_edit_distance=edits)
        ranked = [(s.distance, -s.count, s.term) for s in found]
    ranked += [(1, -symspell.words[w], w) for w in _confusions(lower, symspell.words) if w != lower]
    ranked.sort()
    out = [(token, 0)]
    for distance, _, term in ranked:
        if curly:
            term = term.replace("'", "’")
        text = head + _cased(term, core) + tail
        if all(text != seen for seen, _ in out):
            out.append((text, distance))
        if len(out) > MAX_CANDIDATES:
            break
    return out


def spelling_options(text: str) -> list[list[tuple[str, float]]]:
    """The spelling lattice of ``text``: per slot, (option, log weight = minus its edit distance); runs of
    tokens with no alternative are merged into one option. An empty text is one slot holding itself."""
    slots: list[list[tuple[str, float]]] = []
    run: list[str] = []
    for token in text.split():
        options = candidates(token)
        if len(options) == 1:
            run.append(token)
            continue
        if run:
            slots.append([(" ".join(run), 0.0)])
            run = []
        slots.append([(word, float(-distance)) for word, distance in options])
    if run or not slots:
        slots.append([(" ".join(run), 0.0)])
    return slots

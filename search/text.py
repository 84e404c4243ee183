"""Words, matching and snippets: the part of search that is the same on every database.

A word is a run of letters, digits, combining marks and private-use characters (Unicode categories L*, N*,
M*, Co); anything else separates words. This is the rule SQLite's FTS5 index is built with
(search.backends.sqlite: unicode61 with those categories), so a Bengali word keeps its vowel signs and
`don't` is the two words `don` and `t`. Words compare case-insensitively and without the accents of Latin
letters (`Café` matches `cafe`), as unicode61's remove_diacritics 2 does.

Snippet offsets count UTF-16 code units, as JavaScript strings do: `text.slice(start, end)` in a browser is
the matched word, whatever emoji or other characters outside the Basic Multilingual Plane come before it.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache

# Words of a query used at most (a 200-character query has fewer anyway); more would only narrow the
# result, and each one is a term every index has to intersect.
MAX_TERMS = 32
# The snippet: at most this many code points of the message, starting a little before its first match.
SNIPPET_CHARS = 160
SNIPPET_LEAD = 40
ELLIPSIS = "…"
# Combining diacritical marks: what remove_diacritics strips from Latin letters once decomposed.
_DIACRITICS = range(0x0300, 0x0370)


def is_word_char(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LNM" or category == "Co"


@cache
def _word_pattern() -> re.Pattern[str]:
    """Runs of word characters as one regular expression, so a 10,000-character message is split in C.
    Python's `\\w` without `_` is letters and digits; combining marks and private-use characters, which it
    leaves out, are a second class (tried only where the first fails: a long class costs per character).
    Built on first use, in about a fifth of a second (every code point's category is looked up)."""
    ranges: list[str] = []
    start = None
    for code in range(sys.maxunicode + 2):
        char = chr(code) if code <= sys.maxunicode and not 0xD800 <= code <= 0xDFFF else ""
        inside = bool(char) and is_word_char(char) and not (char.isalnum() and char != "_")
        if inside and start is None:
            start = code
        elif not inside and start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(code - 1))}")
            start = None
    return re.compile(rf"(?:[^\W_]|[{''.join(ranges)}])+")


@lru_cache(maxsize=8192)  # words repeat: most of a message's words were folded for an earlier one
def fold(word: str) -> str:
    """The form two words are compared in: lower case, Latin accents removed."""
    decomposed = unicodedata.normalize("NFD", word.lower())
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if ord(c) not in _DIACRITICS))


def words(text: str) -> list[tuple[int, int]]:
    """(start, end) code point offsets of each word of `text`, in order."""
    return [match.span() for match in _word_pattern().finditer(text)]


def query_terms(query: str) -> list[str]:
    """The words of a query as typed, in order (repeats kept: they matter to the phrase). Not folded here:
    each database folds them as it folded the indexed text. Empty when the query has no word at all (only
    punctuation, symbols or emoji): such a query matches nothing."""
    return [query[start:end] for start, end in words(query) if fold(query[start:end])][:MAX_TERMS]


@dataclass(frozen=True)
class Snippet:
    text: str
    # [start, end) of each matched word in `text`, in UTF-16 code units, in order, never overlapping.
    matches: list[tuple[int, int]]


def utf16_length(text: str) -> int:
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def snippet(content: str, terms: list[str]) -> Snippet:
    """A plain-text excerpt of `content` around its first matching word, with every matching word marked.

    When the content is longer than SNIPPET_CHARS the excerpt starts up to SNIPPET_LEAD characters before
    the first match and is cut at whitespace, so never inside a word or a sequence of emoji (only a run of
    over SNIPPET_CHARS characters without a space is cut where it must be, between two code points); a cut
    end is shown as "…", counted in the offsets like any other character."""
    wanted = {fold(term) for term in terms}
    pattern = _word_pattern()
    begin, end = 0, len(content)
    if len(content) > SNIPPET_CHARS:
        # Only the words up to the first match, then those of the excerpt, are looked at: a long message
        # whose match comes early costs little more than a short one.
        first = next((m.start() for m in pattern.finditer(content) if fold(m.group()) in wanted), 0)
        begin = _cut_after_space(content, max(0, first - SNIPPET_LEAD), first)
        end = _cut_before_space(content, min(len(content), begin + SNIPPET_CHARS), begin)
    # The excerpt starts and ends at whitespace or at a word's start, so no word is cut by these bounds.
    spans = [m.span() for m in pattern.finditer(content, begin, end)]
    text = content[begin:end]
    prefix = ELLIPSIS if begin > 0 else ""
    suffix = ELLIPSIS if end < len(content) else ""
    shift = utf16_length(prefix)
    matches = []
    for s, e in spans:
        if s >= begin and e <= end and fold(content[s:e]) in wanted:
            start16 = shift + utf16_length(content[begin:s])
            matches.append((start16, start16 + utf16_length(content[s:e])))
    return Snippet(prefix + text + suffix, matches)


def _cut_after_space(text: str, at: int, limit: int) -> int:
    """The first position from `at` up to `limit` (the first match) that follows whitespace; `limit` when
    there is none, 0 when `at` is 0."""
    if at == 0:
        return 0
    for index in range(at, limit):
        if text[index - 1].isspace() and not text[index].isspace():
            return index
    return limit


def _cut_before_space(text: str, at: int, floor: int) -> int:
    """The last position at or before `at` that ends before whitespace (keeping at least one character
    after `floor`); `at` when none is found (one very long word is cut where it must be)."""
    if at >= len(text):
        return len(text)
    for index in range(at, floor, -1):
        if text[index].isspace():
            return index
    return at

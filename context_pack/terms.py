"""The full-text vocabulary shared by the index (documents) and the query side (terms).

SQLite's FTS5 with the `porter unicode61` tokenizer lower-cases, splits at every non-alphanumeric
character and stems; documents add the parts of camelCase words, and queries are cut the same way, so
`getUserName`, "get user name" and "user names" meet.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

from .model import Chunk

WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*|[0-9]+")
CAMEL_FIND_RE = re.compile(r"\b[A-Za-z0-9]*[a-z0-9][A-Z][A-Za-z0-9]*|\b[A-Z]{2,}[a-z][A-Za-z0-9]*")
CAMEL_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

STOPWORDS = frozenset("""
a an and are as at be but by can could did do does for from had has have how i if in into is it its me my no
not of on or our should so such than that the their them then there these this those to too was we were what
when where which while who why will with would you your also just like use used using get got want one two
need make see more some any all very may might only same other new way work works working issue self def
return none true false null var let const function class import from pass end fn func public private static
void int str string bool
""".split())  # noqa: SIM905 (a word list reads better as text)


@lru_cache(maxsize=200_000)
def _subwords(word: str) -> tuple[str, ...]:
    lower = word.lower()
    parts = [p.lower() for p in CAMEL_RE.findall(word)] if not word.islower() else [lower]
    result = [p for p in parts if len(p) > 1 and p not in STOPWORDS]
    if len(parts) > 1 and lower not in STOPWORDS:
        result.append(lower)  # the whole identifier too: exact names score above their parts
    return tuple(result)


def tokenize(text: str) -> list[str]:
    """Identifier sub-words: `getUserName` → get, user, name, getusername; `snake_case` → snake, case."""
    tokens: list[str] = []
    for word in WORD_RE.findall(text):
        tokens.extend(_subwords(word))
    return tokens


# A camelCase word starts a run of word characters and holds a lower-case letter or digit before a capital,
# or starts with two capitals before a lower-case letter: these "hinges" are found with bytes.find on a copy
# of the text cut down to three classes (`_CLASSES`), which costs a fraction of running the regex over it.
_CAMEL_AT_RE = re.compile(r"[A-Za-z0-9]*[a-z0-9][A-Z][A-Za-z0-9]*|[A-Z]{2,}[a-z][A-Za-z0-9]*")
_CLASSES = bytes(
    ord("a") if chr(byte).islower() or chr(byte).isdigit() else ord("A") if chr(byte).isupper() else ord(" ")
    for byte in range(128)
) + b" " * 128
_HINGES = (b"aA", b"AAa")


def camel_words(text: str) -> list[str]:
    """The camelCase words of a text, in order: what `CAMEL_FIND_RE.findall(text)` returns."""
    classes = text.encode("ascii", "replace").translate(_CLASSES)  # one byte per character
    starts: set[int] = set()
    for hinge in _HINGES:
        at = classes.find(hinge)
        while at != -1:
            start = classes.rfind(b" ", 0, at) + 1  # the start of the letters and digits around the hinge
            if start == 0 or not _is_word(text[start - 1]):  # `\b`: what comes before is not a word character
                starts.add(start)
            at = classes.find(hinge, at + 1)
    words = []
    for start in sorted(starts):
        match = _CAMEL_AT_RE.match(text, start)
        if match:
            words.append(match.group())
    return words


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"  # what `\w` matches


@lru_cache(maxsize=200_000)
def _camel_parts(word: str) -> str:
    return " ".join(CAMEL_RE.findall(word))


def chunk_document(chunk: Chunk) -> str:
    """What the full-text index holds for a chunk: its path, name and text, plus camelCase parts."""
    return document(chunk.path, chunk.name, chunk.text)


def document(path: str, name: str, text: str) -> str:
    """`chunk_document` of a chunk with this path, name and text (the index makes a stored file's again)."""
    camel = " ".join(map(_camel_parts, camel_words(text)))
    return f"{path} {name}\n{text}\n{camel}"


def query_terms(query: str) -> list[str]:
    """The query's sub-words, plus each pair of neighbouring words run together: prose says
    "model formsets" where the code says `modelformset_factory`."""
    words = [w.lower() for w in WORD_RE.findall(query) if not w.isdigit()]
    pairs = {a + b for a, b in itertools.pairwise(words)
             if a not in STOPWORDS and b not in STOPWORDS and len(a) > 2 and len(b) > 2}
    return sorted(set(tokenize(query)) | pairs)

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


def chunk_document(chunk: Chunk) -> str:
    """What the full-text index holds for a chunk: its path, name and text, plus camelCase parts."""
    camel = " ".join(" ".join(CAMEL_RE.findall(word)) for word in CAMEL_FIND_RE.findall(chunk.text))
    return f"{chunk.path} {chunk.name}\n{chunk.text}\n{camel}"


def query_terms(query: str) -> list[str]:
    """The query's sub-words, plus each pair of neighbouring words run together: prose says
    "model formsets" where the code says `modelformset_factory`."""
    words = [w.lower() for w in WORD_RE.findall(query) if not w.isdigit()]
    pairs = {a + b for a, b in itertools.pairwise(words)
             if a not in STOPWORDS and b not in STOPWORDS and len(a) > 2 and len(b) > 2}
    return sorted(set(tokenize(query)) | pairs)

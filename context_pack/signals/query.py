"""Query relevance: BM25 over identifier sub-words, boosted by what the query names outright —
identifiers (backticks, `Class.method`, snake_case, CamelCase, calls), file paths and modules, and
file:line locations from pasted tracebacks — then spread along the code graph to callers, callees and
imports of the best matches."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePosixPath

import numpy as np
from scipy import sparse

from ..lang import GRAMMARS
from ..model import Chunk
from .graph import CodeGraph
from .imports import PathIndex

WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*|[0-9]+")
CAMEL_FIND_RE = re.compile(r"\b[A-Za-z0-9]*[a-z0-9][A-Z][A-Za-z0-9]*|\b[A-Z]{2,}[a-z][A-Za-z0-9]*")
CAMEL_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
BACKTICK_RE = re.compile(r"`([^`\n]{1,200})`")
DOTTED_RE = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\b")
SNAKE_RE = re.compile(r"\b_*[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+_*\b|\b__\w+__\b")
CAMEL_WORD_RE = re.compile(
    r"\b(?:[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*|[a-z]+[A-Z][A-Za-z0-9]*|[A-Z]{2,}[a-z][A-Za-z0-9]*)\b"
)
CALL_RE = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\(")
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
SOURCE_EXT = r"(?:py|pyi|js|jsx|mjs|cjs|ts|tsx|go|rs|java|c|h|cc|cpp|cxx|hpp|hh|rb|cs|php|sh|kt|scala|swift)"
PATH_RE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\." + SOURCE_EXT + r")\b")
PY_TRACE_RE = re.compile(r'File "([^"]+)", line (\d+)')
JAVA_TRACE_RE = re.compile(r"\(([\w$]+\.(?:java|kt|scala)):(\d+)\)")
LOCATION_RE = re.compile(r"((?:[\w.-]+/)*[\w.-]+\." + SOURCE_EXT + r"):(\d+)")

STOPWORDS = frozenset("""
a an and are as at be but by can could did do does for from had has have how i if in into is it its me my no
not of on or our should so such than that the their them then there these this those to too was we were what
when where which while who why will with would you your also just like use used using get got want one two
need make see more some any all very may might only same other new way work works working issue self def
return none true false null var let const function class import from pass end fn func public private static
void int str string bool
""".split())  # noqa: SIM905 (a word list reads better as text)

TRACE_VALUE = 1.0
BM25_SHARE = 0.6
IDENT_SHARE = 0.3
PATH_SHARE = 0.1
TEXT_FACTOR = 0.5  # prose and config match an issue's words easily; the fix is in code
TEST_FACTOR = 0.7  # tests name what they test, but the fix is rarely in them
FILE_SHARE = 0.3  # a chunk in the file of a strong match
NEIGHBOUR_SHARE = 0.4  # a caller or callee of a strong match
SEEDS = 20


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
    """What the full-text index holds for a chunk: path, name and text, plus the parts of camelCase words.

    SQLite's unicode61 tokenizer lower-cases and splits at every non-alphanumeric character, so the
    document already yields `snake_case` → snake, case and `getUserName` → getusername; the appended
    parts add get, user, name. `tokenize()` gives queries the same vocabulary.
    """
    camel = " ".join(" ".join(CAMEL_RE.findall(word)) for word in CAMEL_FIND_RE.findall(chunk.text))
    return f"{chunk.path} {chunk.name}\n{chunk.text}\n{camel}"


@dataclass
class Mentions:
    identifiers: dict[str, float] = field(default_factory=dict)  # dotted name -> confidence
    paths: list[str] = field(default_factory=list)
    locations: list[tuple[str, int]] = field(default_factory=list)


def find_mentions(query: str) -> Mentions:
    mentions = Mentions()

    def add(name: str, weight: float) -> None:
        name = name.strip(".")
        if len(name) >= 3 and name.lower() not in STOPWORDS:
            mentions.identifiers[name] = max(weight, mentions.identifiers.get(name, 0.0))

    for span in BACKTICK_RE.findall(query):
        for name in IDENT_RE.findall(span):
            add(name, 1.0)
    for name in CALL_RE.findall(query):
        add(name, 1.0)
    for regex in (DOTTED_RE, SNAKE_RE, CAMEL_WORD_RE):
        for name in regex.findall(query):
            add(name, 0.8)
    for path, line in PY_TRACE_RE.findall(query) + LOCATION_RE.findall(query) + JAVA_TRACE_RE.findall(query):
        mentions.locations.append((path.replace("\\", "/"), int(line)))
    mentions.paths = sorted({p.replace("\\", "/") for p in PATH_RE.findall(query)}
                            | {p for p, _ in mentions.locations})
    for dotted in [n for n in mentions.identifiers if "." in n]:  # `pkg.mod.Class` may name a file
        mentions.paths.append(dotted.replace(".", "/"))
    return mentions


class PathLookup:
    """Repository paths by trailing components, with and without their suffix."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.path_index = PathIndex(paths)
        self.stem_index = PathIndex(str(PurePosixPath(p).with_suffix("")) for p in paths)
        self.stem_to_paths: dict[str, list[str]] = {}
        for path in paths:
            self.stem_to_paths.setdefault(str(PurePosixPath(path).with_suffix("")), []).append(path)


def query_terms(query: str) -> list[str]:
    """The query's sub-words, plus each pair of neighbouring words run together: prose says
    "model formsets" where the code says `modelformset_factory`."""
    words = [w.lower() for w in WORD_RE.findall(query) if not w.isdigit()]
    pairs = {a + b for a, b in itertools.pairwise(words)
             if a not in STOPWORDS and b not in STOPWORDS and len(a) > 2 and len(b) > 2}
    return sorted(set(tokenize(query)) | pairs)


def _match_path(index: PathLookup, mention: str) -> list[str]:
    """Repository files a mentioned path names: the longest trailing match, `a/b.py` or `a/b` (no suffix)."""
    parts = [p for p in mention.split("/") if p and p not in (".", "..")]
    for start in range(len(parts)):
        tail = "/".join(parts[start:])
        if start > 0 and len(parts) - start < 2 and "." not in parts[-1]:
            break  # a bare word is not a path
        found = index.path_index.by_suffix.get(tail)
        if found:
            return found if len(found) <= 3 else []
        stems = index.stem_index.by_suffix.get(tail)
        if stems and len(parts) - start >= 2:
            files = [p for stem in stems for p in index.stem_to_paths.get(stem, [])]
            return files if len(files) <= 3 else []
    return []


def compute(chunks: Sequence[Chunk], graph: CodeGraph, query: str, bm25: np.ndarray) -> np.ndarray:
    """`bm25`: each chunk's BM25 score for `query_terms(query)`, from the index."""
    n = len(chunks)
    if n == 0 or not query.strip():
        return np.zeros(n)
    index = PathLookup(graph.files)
    top = float(bm25.max()) if bm25.size else 0.0
    bm25_norm = bm25 / top if top > 0 else bm25

    mentions = find_mentions(query)
    ident = np.zeros(n)
    for name, confidence in mentions.identifiers.items():
        segments = name.split(".")
        targets = graph.definitions.get(segments[-1], [])
        if not targets:
            continue
        specificity = 1.0 / np.sqrt(len(targets))
        for target in targets:
            symbols = chunks[target].symbols
            exact = len(segments) > 1 and any(s == name or s.endswith("." + ".".join(segments[-2:]))
                                              for s in symbols)
            value = confidence * (1.0 if exact else specificity)
            ident[target] = max(ident[target], value)

    path_hit = np.zeros(n)
    trace = np.zeros(n)
    chunk_paths = [c.path for c in chunks]
    path_set: set[str] = set()
    for mention in mentions.paths:
        path_set.update(_match_path(index, mention))
    if path_set:
        path_hit = np.fromiter((1.0 if p in path_set else 0.0 for p in chunk_paths), dtype=np.float64, count=n)
    for mention, line in mentions.locations:
        for path in _match_path(index, mention):
            for i, chunk in enumerate(chunks):
                if chunk.path == path and chunk.start_line <= line <= chunk.end_line:
                    trace[i] = TRACE_VALUE

    direct = np.maximum(trace, BM25_SHARE * bm25_norm + IDENT_SHARE * ident + PATH_SHARE * path_hit)
    kind_factor = np.fromiter((TEXT_FACTOR if c.language not in GRAMMARS else TEST_FACTOR if c.is_test else 1.0
                               for c in chunks), dtype=np.float64, count=n)
    direct = direct * kind_factor
    top_direct = float(direct.max())
    if top_direct <= 0:
        return direct
    direct = direct / top_direct
    return np.maximum.reduce([direct, FILE_SHARE * file_relevance(graph, direct),
                              NEIGHBOUR_SHARE * neighbours(graph, direct)])


def file_relevance(graph: CodeGraph, direct: np.ndarray) -> np.ndarray:
    """Each chunk gets its file's best direct match: the fix is often beside what the query names."""
    best = np.zeros(len(graph.files))
    np.maximum.at(best, graph.file_of_chunk, direct)
    return best[graph.file_of_chunk]


def neighbours(graph: CodeGraph, direct: np.ndarray) -> np.ndarray:
    """One step along references, both ways, from the best direct matches: their callers and callees."""
    n = graph.chunk_count
    order = np.argsort(-direct, kind="stable")[:SEEDS]
    seeds = np.zeros(n)
    seeds[order] = direct[order]
    matrix = graph.chunk_matrix
    row_max = np.asarray(matrix.max(axis=1).todense()).ravel()
    col_max = np.asarray(matrix.max(axis=0).todense()).ravel()
    scale_out = np.divide(1.0, row_max, out=np.zeros(n), where=row_max > 0)
    scale_in = np.divide(1.0, col_max, out=np.zeros(n), where=col_max > 0)
    # callee of a seed: seed's out-edges, scaled by the seed's strongest edge; caller: the reverse
    callees = (sparse.diags(seeds * scale_out) @ matrix).max(axis=0).toarray().ravel()
    callers = (matrix @ sparse.diags(seeds * scale_in)).max(axis=1).toarray().ravel()
    values = np.maximum(callees, callers)
    values[order] = 0.0  # a seed is measured by its own match
    return values

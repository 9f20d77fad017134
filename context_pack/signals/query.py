"""Query relevance: BM25 over identifier sub-words (from the index), boosted by what the query names
outright — identifiers (backticks, `Class.method`, snake_case, CamelCase, calls), file paths and modules,
file:line locations from pasted tracebacks — and shared with the other chunks of the best files, since a
fix is most often beside what the issue names. (Spreading along call edges was measured and did not pay:
bench/RESULTS.md.)"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..lang import GRAMMARS
from ..model import Chunk
from ..terms import CAMEL_RE, STOPWORDS
from .graph import CodeGraph
from .imports import PathIndex

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

TRACE_VALUE = 1.0
BM25_SHARE = 0.6
IDENT_SHARE = 0.3
PATH_SHARE = 0.1
TEXT_FACTOR = 0.5  # prose and config match an issue's words easily; the fix is in code
TEST_FACTOR = 0.7  # tests name what they test, but the fix is rarely in them
FILE_SHARE = 0.5  # a chunk in the file of a strong match
TOP_FILES = 2
TOP_FILE_SHARE = 0.7  # ... in one of the TOP_FILES best files
PARTIAL_SHARE = 0.5  # a definition whose name holds a mentioned word
MAX_PARTIAL = 12  # a word inside more defined names than this says too little


@dataclass
class Mentions:
    identifiers: dict[str, float] = field(default_factory=dict)  # dotted name -> confidence
    paths: list[str] = field(default_factory=list)
    locations: list[tuple[str, int]] = field(default_factory=list)


def find_mentions(query: str) -> Mentions:
    mentions = Mentions()

    def add(name: str, weight: float) -> None:
        name = name.strip(".")
        if len(name) >= 3 and any(ch.isalpha() for ch in name) and name.lower() not in STOPWORDS:
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
        stems = [_without_suffix(p) for p in paths]
        self.stem_index = PathIndex(stems)
        self.stem_to_paths: dict[str, list[str]] = {}
        for stem, path in zip(stems, paths, strict=True):
            self.stem_to_paths.setdefault(stem, []).append(path)


def _without_suffix(path: str) -> str:
    """`a/b.py` -> `a/b`, as PurePosixPath.with_suffix("") has it (a leading-dot name keeps its dot)."""
    slash = path.rfind("/")
    dot = path.rfind(".")
    return path[:dot] if slash + 1 < dot < len(path) - 1 else path


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
    top = float(bm25.max()) if bm25.size else 0.0
    bm25_norm = bm25 / top if top > 0 else bm25
    mentions = find_mentions(query)
    ident = identifier_matches(chunks, graph, mentions)
    path_hit, trace = location_matches(chunks, graph, mentions)

    direct = np.maximum(trace, BM25_SHARE * bm25_norm + IDENT_SHARE * ident + PATH_SHARE * path_hit)
    kind_factor = np.fromiter((TEXT_FACTOR if c.language not in GRAMMARS else TEST_FACTOR if c.is_test else 1.0
                               for c in chunks), dtype=np.float64, count=n)
    direct = direct * kind_factor
    top_direct = float(direct.max())
    if top_direct <= 0:
        return direct
    direct = direct / top_direct
    return np.maximum(direct, file_relevance(graph, direct))


def identifier_matches(chunks: Sequence[Chunk], graph: CodeGraph, mentions: Mentions) -> np.ndarray:
    """Definitions of the identifiers the query names: `Class.method` exactly, a bare name by how rare it
    is, and a name that is only part of a definition's name (`prepend` → `prepend_filter`) at half that."""
    ident = np.zeros(len(chunks))
    parts: dict[str, list[str]] | None = None
    for name, confidence in mentions.identifiers.items():
        segments = name.split(".")
        targets = graph.definitions.get(segments[-1], [])
        for target in targets:
            exact = len(segments) > 1 and any(s == name or s.endswith("." + ".".join(segments[-2:]))
                                              for s in chunks[target].symbols)
            value = confidence * (1.0 if exact else 1.0 / np.sqrt(len(targets)))
            ident[target] = max(ident[target], value)
        if targets or "." in name or not name.isidentifier():
            continue
        if parts is None:
            parts = _definition_parts(graph)
        holders = parts.get(name.lower(), [])
        if 0 < len(holders) <= MAX_PARTIAL:
            for holder in holders:
                for target in graph.definitions[holder]:
                    ident[target] = max(ident[target], PARTIAL_SHARE * confidence / np.sqrt(len(holders)))
    return ident


def _definition_parts(graph: CodeGraph) -> dict[str, list[str]]:
    """Sub-word of a defined name -> the defined names holding it (`prepend_filter` under prepend, filter)."""
    parts: dict[str, list[str]] = {}
    for name in graph.definitions:
        pieces = {p.lower() for p in CAMEL_RE.findall(name)}
        if len(pieces) > 1:
            for piece in pieces:
                parts.setdefault(piece, []).append(name)
    return parts


def location_matches(chunks: Sequence[Chunk], graph: CodeGraph, mentions: Mentions) -> tuple[np.ndarray, np.ndarray]:
    """Chunks of files the query names, and chunks holding a traceback's file:line."""
    n = len(chunks)
    lookup = PathLookup(graph.files)
    path_set: set[str] = set()
    for mention in mentions.paths:
        path_set.update(_match_path(lookup, mention))
    path_hit = np.fromiter((1.0 if c.path in path_set else 0.0 for c in chunks), dtype=np.float64, count=n)
    trace = np.zeros(n)
    for mention, line in mentions.locations:
        for path in _match_path(lookup, mention):
            for i, chunk in enumerate(chunks):
                if chunk.path == path and chunk.start_line <= line <= chunk.end_line:
                    trace[i] = TRACE_VALUE
    return path_hit, trace


def file_relevance(graph: CodeGraph, direct: np.ndarray) -> np.ndarray:
    """Each chunk gets a share of its file's best direct match — the fix is often beside what the query
    names — the larger share in the best few files."""
    best = np.zeros(len(graph.files))
    np.maximum.at(best, graph.file_of_chunk, direct)
    share = np.full(len(graph.files), FILE_SHARE)
    share[np.argsort(-best, kind="stable")[:TOP_FILES]] = TOP_FILE_SHARE
    return (share * best)[graph.file_of_chunk]

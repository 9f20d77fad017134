"""Query relevance. The evidence: BM25 over identifier sub-words (from the index), what the query names
outright — identifiers (backticks, `Class.method`, snake_case, CamelCase, calls), file paths and modules,
file:line locations from pasted tracebacks. By default a logistic model (weights fitted by
`bench/train_ranker.py`) reads that evidence per chunk and per file with the features of `query_features`
and gives the probability that a chunk holds what the query needs; the older hand-weighted mix (`direct`,
shared with the other chunks of the best files) is one of its inputs and stays available with
`USE_LEARNED = False`. bench/RESULTS.md has the measurements behind both.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..model import Chunk
from ..terms import CAMEL_RE, STOPWORDS
from . import query_features
from .columns import ChunkColumns
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

# The learned ranking: a logistic model in two passes, fitted on the dev splits by `bench/train_ranker.py fit
# --splits python,multi --c 0.1 --mine 1000` (judged cross-validated by repository; bench/RESULTS.md): the first
# over query_features.FEATURES (`--drop expansion,expansion_rank` fits it), the second with the expansion columns
# too. The dumps' expansion columns come from the first pass: refit it, and the dumps must be made again before
# the second is refitted. False: the hand-weighted mix.
USE_LEARNED = True
# The model includes these query-independent signals: with a query, rank() leaves their weights out.
LEARNED_INCLUDES = ("definitions", "tests", "recency", "centrality")
SIZE_PENALTY = 0.5  # × log(estimated tokens), subtracted from the model's log-odds
FIRST_PASS_SIZE_PENALTY = 0.3  # the first pass's, with which the dumps' expansion columns were made
CHARS_PER_TOKEN = 3.6
TOKEN_OVERHEAD = 8.0  # the marker and framing a packed chunk adds
NEIGHBOUR_PULL = 0.3  # share of the way a chunk's log-odds move up towards its better neighbour in the file
# The first pass: the model without the expansion columns; its best chunks make the second pass's query.
FIRST_PASS_INTERCEPT = -5.1862
FIRST_PASS_WEIGHTS: dict[str, float] = {
    "bm25": -2.7743,
    "bm25_rank": 8.2616,
    "ident": 1.1583,
    "path": -0.4019,
    "trace": -0.1322,
    "direct": 4.3845,
    "title": 3.2241,
    "file_title": 1.5685,
    "file_best": 0.9208,
    "file_rank": 1.1693,
    "file_bm25": -1.4905,
    "file_bm25_rank": 0.1540,
    "file_ident": 0.3151,
    "own_share": 0.0791,
    "path_words": 1.0396,
    "class_ident": 0.4205,
    "class_best": -0.5180,
    "neighbour": 1.2530,
    "cochange": 2.1522,
    "is_imports": 0.0815,
    "is_block": -0.1953,
    "is_function": -0.5842,
    "is_method": -0.6360,
    "is_class": -0.8785,
    "is_test": -3.5480,
    "is_text": -6.8506,
    "log_size": 1.4528,
    "centrality": -1.0676,
    "recency": 1.3475,
    "definitions": 1.9739,
}

# The second pass: the model with them (query_features.EXPANSION_FEATURES).
LEARNED_INTERCEPT = -4.5724
LEARNED_WEIGHTS: dict[str, float] = {
    "bm25": -2.8807,
    "bm25_rank": 5.6478,
    "ident": 1.0058,
    "path": -0.3478,
    "trace": 0.0722,
    "direct": 4.2912,
    "title": 2.8031,
    "file_title": 1.6238,
    "file_best": 0.8800,
    "file_rank": 0.8645,
    "file_bm25": -1.1841,
    "file_bm25_rank": 0.2114,
    "file_ident": 0.3491,
    "own_share": 0.0893,
    "path_words": 0.9774,
    "class_ident": 0.4059,
    "class_best": -0.5284,
    "neighbour": 0.9020,
    "cochange": 2.1171,
    "is_imports": -0.4345,
    "is_block": -0.7053,
    "is_function": -0.9970,
    "is_method": -1.0929,
    "is_class": -1.3122,
    "is_test": -3.6676,
    "is_text": -6.3826,
    "log_size": 1.2214,
    "centrality": -0.9675,
    "recency": 1.1933,
    "definitions": 1.9502,
    "expansion": 1.4655,
    "expansion_rank": 3.7686,
}


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


@dataclass
class DirectMatch:
    """The query's direct evidence per chunk, each in [0, 1]; `direct` their hand-weighted mix."""

    bm25: np.ndarray
    ident: np.ndarray
    path: np.ndarray
    trace: np.ndarray
    direct: np.ndarray
    mentions: Mentions


@dataclass
class NamedMatch:
    """What the query names outright, per chunk, each in [0, 1]: definitions of its identifiers, chunks of
    the files it names, chunks holding a traceback's file:line. Needs no BM25, so the ranking works it out
    while a thread asks the index the BM25 questions (`index.BM25Prefetch`)."""

    ident: np.ndarray
    path: np.ndarray
    trace: np.ndarray
    mentions: Mentions


def named_match(chunks: Sequence[Chunk], graph: CodeGraph, query: str) -> NamedMatch:
    mentions = find_mentions(query)
    path_hit, trace = location_matches(chunks, graph, mentions)
    return NamedMatch(identifier_matches(chunks, graph, mentions), path_hit, trace, mentions)


def direct_match(chunks: Sequence[Chunk], graph: CodeGraph, query: str, bm25: np.ndarray,
                 named: NamedMatch | None = None, columns: ChunkColumns | None = None) -> DirectMatch:
    """`bm25`: each chunk's BM25 score for `query_terms(query)`, from the index; `named`: `named_match`'s
    answer, if already had; `columns`: the chunks' columns, if had."""
    n = len(chunks)
    top = float(bm25.max()) if bm25.size else 0.0
    bm25_norm = bm25 / top if top > 0 else np.zeros(n)
    if named is None:
        named = named_match(chunks, graph, query)
    ident, path_hit, trace = named.ident, named.path, named.trace
    direct = np.maximum(trace, BM25_SHARE * bm25_norm + IDENT_SHARE * ident + PATH_SHARE * path_hit)
    columns = columns if columns is not None else ChunkColumns(chunks)
    kind_factor = np.where(columns.is_text, TEXT_FACTOR, np.where(columns.is_test, TEST_FACTOR, 1.0))
    direct = direct * kind_factor
    top_direct = float(direct.max()) if n else 0.0
    if top_direct > 0:
        direct = direct / top_direct
    return DirectMatch(bm25_norm, ident, path_hit, trace, direct, named.mentions)


@dataclass
class LearnedInputs:
    """What the learned model reads beyond the direct match: the BM25 scores of the query's first line,
    each chunk's size in characters, and the query-independent columns (centrality, recency, definitions)."""

    title_bm25: np.ndarray
    sizes: Sequence[int]
    priors: dict[str, np.ndarray]
    links: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None  # the chunk graph's CSR (indptr, indices)
    commits: Sequence[Sequence[str]] = ()  # each recent commit's files, newest first (`FileHistory.commits`)
    bm25_terms: Callable[[Sequence[str]], np.ndarray] | None = None  # each chunk's BM25 for some terms (index)
    columns: ChunkColumns | None = None  # the chunks' columns (made from them if not given)


def compute(chunks: Sequence[Chunk], graph: CodeGraph, query: str, bm25: np.ndarray,
            learned: LearnedInputs | None = None, named: NamedMatch | None = None) -> np.ndarray:
    """`bm25`: each chunk's BM25 score for `query_terms(query)`, from the index; `named`: `named_match`'s
    answer, if already had. With `learned` (and
    `USE_LEARNED`), the fitted model's probability that a chunk holds what the query needs; without, the
    hand-weighted direct match shared with the chunks of the best files."""
    n = len(chunks)
    if n == 0 or not query.strip():
        return np.zeros(n)
    match = direct_match(chunks, graph, query, bm25, named, learned.columns if learned is not None else None)
    if not match.direct.any():
        return match.direct
    if learned is not None and USE_LEARNED:
        return learned_relevance(chunks, graph, query, match, learned)
    return np.maximum(match.direct, file_relevance(graph, match.direct))


def learned_relevance(chunks: Sequence[Chunk], graph: CodeGraph, query: str, match: DirectMatch,
                      inputs: LearnedInputs) -> np.ndarray:
    """The logistic model of `bench/train_ranker.py`, as a probability, in two passes: the first over
    `query_features.FEATURES`, the second over those and the expansion columns, each chunk's BM25 for the
    words of the names the first pass's best chunks define (`inputs.bm25_terms` asks the index; without
    it they are 0)."""
    columns = inputs.columns if inputs.columns is not None else ChunkColumns(chunks)
    matrix = query_features.compute_features(
        chunks, graph, match.bm25, match.ident, match.path, match.trace, match.direct, match.mentions.identifiers,
        inputs.sizes, inputs.priors, inputs.title_bm25, query, inputs.links() if inputs.links else None,
        inputs.commits, columns)
    starts = columns.start_lines
    expansion = np.zeros((len(chunks), len(query_features.EXPANSION_FEATURES)))
    if inputs.bm25_terms is not None:
        expansion = expansion_from_first_pass(chunks, graph, matrix, inputs.sizes, starts, inputs.bm25_terms)
    logit = linear(LEARNED_INTERCEPT, LEARNED_WEIGHTS, query_features.FEATURES + query_features.EXPANSION_FEATURES,
                   np.column_stack([matrix, expansion]))
    logit = pulled_by_neighbours(logit - size_penalties(inputs.sizes), graph.file_of_chunk, starts)
    return 1.0 / (1.0 + np.exp(-logit))


def size_penalties(sizes: Sequence[int], share: float | None = None) -> np.ndarray:
    """What each chunk's log-odds lose for its size: `share` (default SIZE_PENALTY) × log(estimated tokens).
    The model says how likely a chunk holds the fix; a pack pays for it in tokens, so big chunks wait a little."""
    tokens = np.asarray(sizes, dtype=np.float64) / CHARS_PER_TOKEN + TOKEN_OVERHEAD
    return (SIZE_PENALTY if share is None else share) * np.log(tokens)


def start_lines(chunks: Sequence[Chunk]) -> np.ndarray:
    return ChunkColumns(chunks).start_lines


def expansion_from_first_pass(chunks: Sequence[Chunk], graph: CodeGraph, matrix: np.ndarray, sizes: Sequence[int],
                              starts: np.ndarray, bm25_terms: Callable[[Sequence[str]], np.ndarray]) -> np.ndarray:
    """The second pass's columns: the first pass ranks the chunks (`matrix` holds query_features.FEATURES),
    and each chunk's BM25 for the words of the names its best chunks define is asked of the index."""
    first = linear(FIRST_PASS_INTERCEPT, FIRST_PASS_WEIGHTS, query_features.FEATURES, matrix)
    first = pulled_by_neighbours(first - size_penalties(sizes, FIRST_PASS_SIZE_PENALTY), graph.file_of_chunk, starts)
    best = np.argsort(-first, kind="stable")[:query_features.EXPANSION_CHUNKS]
    return query_features.expansion_columns(bm25_terms(query_features.expansion_terms(chunks, best)))


def linear(intercept: float, weights: dict[str, float], names: Sequence[str], matrix: np.ndarray) -> np.ndarray:
    """intercept + matrix · weights, column by column (the same floats on every machine and in the bench)."""
    logit = np.full(matrix.shape[0], intercept)
    for column, name in enumerate(names):
        logit += weights[name] * matrix[:, column]
    return logit


def pulled_by_neighbours(logit: np.ndarray, file_of_chunk: np.ndarray, start_lines: np.ndarray,
                         pull: float = NEIGHBOUR_PULL) -> np.ndarray:
    """Each chunk's log-odds moved `pull` of the way up to those of the better of its two neighbours in its
    file (the chunks just above and below). A fix often spans adjacent chunks: a method and the next, the
    lines around a function, a class header and its first method."""
    if len(logit) < 2 or pull == 0.0:
        return logit
    order = np.lexsort((start_lines, file_of_chunk))  # file by file, in line order
    ordered = logit[order]
    same_file = file_of_chunk[order][1:] == file_of_chunk[order][:-1]
    better = np.full(len(logit), -np.inf)
    better[1:] = np.where(same_file, ordered[:-1], -np.inf)  # the chunk above
    better[:-1] = np.maximum(better[:-1], np.where(same_file, ordered[1:], -np.inf))  # the chunk below
    pulled = np.empty_like(logit)
    pulled[order] = ordered + pull * np.maximum(0.0, better - ordered)
    return pulled


def identifier_matches(chunks: Sequence[Chunk], graph: CodeGraph, mentions: Mentions) -> np.ndarray:
    """Definitions of the identifiers the query names: `Class.method` exactly, a bare name by how rare it
    is, and a name that is only part of a definition's name (`prepend` → `prepend_filter`) at half that."""
    ident = np.zeros(len(chunks))
    parts: NameParts | None = None
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
            parts = NameParts(list(graph.definitions))
        holders = parts.holding(name.lower(), MAX_PARTIAL)
        if 0 < len(holders) <= MAX_PARTIAL:
            for holder in holders:
                for target in graph.definitions[holder]:
                    ident[target] = max(ident[target], PARTIAL_SHARE * confidence / np.sqrt(len(holders)))
    return ident


class NameParts:
    """Defined names by the sub-words they hold (`prepend_filter` holds prepend and filter), worked out only
    for the words asked: a name is split only if the word occurs in its lower-case text at all (splitting
    every name of a large repository took 0.05–0.09 s per question)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        lowered = [name.lower() for name in self.names]
        self.text = "\n".join(lowered)
        self.starts = list(itertools.accumulate((len(name) + 1 for name in lowered), initial=0))[:-1]

    def holding(self, word: str, most: int | None = None) -> list[str]:
        """The names, in order, whose sub-words (lower-cased, two or more of them) include `word`; past
        `most` of them, stops (one more than `most` is returned)."""
        if word.isascii():  # a lower-cased ASCII sub-word of a name is in the name's lower-case text
            found = dict.fromkeys(bisect.bisect_right(self.starts, match.start()) - 1
                                  for match in re.finditer(re.escape(word), self.text))
            candidates: Iterable[str] = (self.names[k] for k in found)
        else:  # lower() may join or grow characters: ask every name
            candidates = self.names
        holders: list[str] = []
        for name in candidates:
            pieces = {piece.lower() for piece in CAMEL_RE.findall(name)}
            if len(pieces) > 1 and word in pieces:
                holders.append(name)
                if most is not None and len(holders) > most:
                    break
        return holders


def location_matches(chunks: Sequence[Chunk], graph: CodeGraph, mentions: Mentions) -> tuple[np.ndarray, np.ndarray]:
    """Chunks of files the query names, and chunks holding a traceback's file:line."""
    n = len(chunks)
    path_hit = np.zeros(n)
    trace = np.zeros(n)
    if not mentions.paths and not mentions.locations:
        return path_hit, trace
    lookup = PathLookup(graph.files)
    named_files = {graph.file_id[path] for mention in mentions.paths for path in _match_path(lookup, mention)}
    path_hit[np.isin(graph.file_of_chunk, sorted(named_files))] = 1.0
    for mention, line in mentions.locations:
        for path in _match_path(lookup, mention):
            for i in np.flatnonzero(graph.file_of_chunk == graph.file_id[path]).tolist():
                if chunks[i].start_line <= line <= chunks[i].end_line:
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

"""Query features: what the learned relevance model reads about each chunk, one column per name.

The direct evidence (BM25 over sub-words, named identifiers and paths, traceback lines) is measured per chunk
and summarised per file, since an issue names the file's entry point while the fix sits beside it; the
chunk's place in its class, its graph neighbours, its kind and size say how likely it is to hold the fix.
`bench/train_ranker.py` fits the model's weights on these columns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..model import Chunk
from ..terms import tokenize
from .columns import BLOCK, CLASS, FUNCTION, IMPORTS, METHOD, ChunkColumns
from .graph import CodeGraph

FEATURES: tuple[str, ...] = (
    "bm25", "bm25_rank", "ident", "path", "trace", "direct", "title", "file_title",
    "file_best", "file_rank", "file_bm25", "file_bm25_rank", "file_ident", "own_share", "path_words",
    "class_ident", "class_best", "neighbour", "cochange",
    "is_imports", "is_block", "is_function", "is_method", "is_class",
    "is_test", "is_text", "log_size",
    "centrality", "recency", "definitions",
)
# The second pass's columns (`expansion_columns`): each chunk's BM25 for the words of the names that the first
# pass's best chunks define. An issue names the symptom; the code that uses what first matches it is often the fix.
EXPANSION_FEATURES: tuple[str, ...] = ("expansion", "expansion_rank")
EXPANSION_CHUNKS = 8  # the first pass's best chunks whose names make the second query
EXPANSION_TERMS = 64  # at most this many words, the best chunk's first: FTS5's BM25 costs about rows × terms


def _rank_value(values: np.ndarray) -> np.ndarray:
    """1 / log2(2 + rank) for the positive values (rank 0 = the largest), 0 for the rest."""
    out = np.zeros(len(values))
    positive = np.flatnonzero(values > 0)
    if positive.size:
        order = positive[np.argsort(-values[positive], kind="stable")]
        out[order] = 1.0 / np.log2(2.0 + np.arange(order.size))
    return out


def _per_file_max(graph: CodeGraph, values: np.ndarray) -> np.ndarray:
    best = np.zeros(len(graph.files))
    np.maximum.at(best, graph.file_of_chunk, values)
    return best


def class_matches(columns: ChunkColumns, identifiers: dict[str, float]) -> np.ndarray:
    """Members of a class the query names (`DataArrayRolling` → `DataArrayRolling.__iter__`)."""
    wanted = {name.split(".")[-1]: confidence for name, confidence in identifiers.items()}
    if not wanted:
        return np.zeros(len(columns))
    owners, names = columns.owners
    confidence = np.array([wanted.get(name) or 0.0 for name in names] + [0.0])  # the last for "no owner" (-1)
    return confidence[owners]


def class_best(columns: ChunkColumns, values: np.ndarray) -> np.ndarray:
    """The best value among the other members of each chunk's class (and the class itself)."""
    classes = columns.classes
    out = np.zeros(len(values))
    member = classes >= 0
    if member.any():
        best = np.zeros(int(classes.max()) + 1)
        np.maximum.at(best, classes[member], values[member])
        out[member] = best[classes[member]]
    return out


WORD_RE = re.compile(r"[a-z][a-z0-9]+")
GENERIC_PARTS = frozenset({"src", "lib", "core", "main", "util", "utils", "init", "index", "base", "common",
                           "internal", "pkg", "test", "tests", "mod", "java", "org", "com"})


def path_words(files: Sequence[str], query: str) -> np.ndarray:
    """The share of a file's path words (directories and name, not generic ones) that the query uses."""
    words = set(WORD_RE.findall(query.lower()))
    out = np.zeros(len(files))
    for i, path in enumerate(files):
        stem = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
        parts = {w for w in WORD_RE.findall(stem.lower().replace("_", " ")) if len(w) >= 3} - GENERIC_PARTS
        if parts:
            out[i] = len(parts & words) / len(parts)
    return out


def neighbour_max(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The best value among each chunk's callers and callees; the chunk graph given as CSR row pointers and
    column indices (a warm query reads only these from the kept graph)."""
    n = len(indptr) - 1
    out = np.zeros(n)
    if n <= 0 or indices.size == 0 or not values.any():
        return out
    indptr = indptr.astype(np.int64)
    indices = indices.astype(np.int64)
    lengths = np.diff(indptr)
    filled = np.flatnonzero(lengths)
    out[filled] = np.maximum.reduceat(values[indices], indptr[filled])  # what each chunk points at
    rows = np.repeat(np.arange(n), lengths)
    np.maximum.at(out, indices, values[rows])  # what points at each chunk
    return out


COCHANGE_TOP_FILES = 5  # the best-matching files whose commit partners count


def cochange(files: Sequence[str], file_best: np.ndarray, commits: Sequence[Sequence[str]]) -> np.ndarray:
    """How often each file changed in the same commit as one of the query's best-matching files: a fix that
    spans files tends to touch files that went together before. For file f and top file F (rank r, from 0),
    commits(f and F) / (commits(F) + 1) / (1 + r), the largest over the top files; 0 for the top files."""
    out = np.zeros(len(files))
    positive = np.flatnonzero(file_best > 0)
    if not commits or positive.size == 0:
        return out
    top = positive[np.argsort(-file_best[positive], kind="stable")][:COCHANGE_TOP_FILES]
    rank_of = {files[j]: r for r, j in enumerate(top)}
    together: list[dict[str, int]] = [{} for _ in top]
    touched = np.zeros(len(top))
    for commit in commits:
        ranks = [rank_of[path] for path in commit if path in rank_of]
        for r in ranks:
            touched[r] += 1
            counts = together[r]
            for path in commit:
                counts[path] = counts.get(path, 0) + 1
    file_id = {path: i for i, path in enumerate(files)}
    for r, counts in enumerate(together):
        scale = 1.0 / ((touched[r] + 1.0) * (1.0 + r))
        for path, count in counts.items():
            i = file_id.get(path)
            if i is not None:
                out[i] = max(out[i], count * scale)
    out[top] = 0.0  # a top file is there by its own match
    return out


def expansion_terms(chunks: Sequence[Chunk], best: Sequence[int]) -> list[str]:
    """The words of the names the chunks at `best` define (a qualified name's last part: the class before it
    is a chunk of its own), in order, each once. Only names: chunks loaded from the index come without their
    text and references, and a build must rank the same from the index as from a fresh parse."""
    terms: dict[str, None] = {}
    for i in best:
        for name in chunks[i].symbols:
            terms.update(dict.fromkeys(tokenize(name.rsplit(".", 1)[-1])))
    return list(terms)[:EXPANSION_TERMS]


def expansion_columns(bm25: np.ndarray) -> np.ndarray:
    """A (chunks × EXPANSION_FEATURES) matrix from each chunk's BM25 score for `expansion_terms`."""
    scores = _normalised(np.asarray(bm25, dtype=np.float64))
    return np.column_stack([scores, _rank_value(scores)])


def title_of(query: str) -> str:
    """An issue's first line, its title: what it is about, said shortest."""
    for line in query.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _normalised(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else np.zeros(len(values))


def compute_features(chunks: Sequence[Chunk], graph: CodeGraph, bm25_norm: np.ndarray, ident: np.ndarray,
                     path_hit: np.ndarray, trace: np.ndarray, direct: np.ndarray,
                     identifiers: dict[str, float], sizes: Sequence[int],
                     priors: dict[str, np.ndarray], title_bm25: np.ndarray, query: str,
                     links: tuple[np.ndarray, np.ndarray] | None = None,
                     commits: Sequence[Sequence[str]] = (), chunk_columns: ChunkColumns | None = None,
                     ) -> np.ndarray:
    """A (chunks × FEATURES) matrix. `direct` is the hand-weighted direct match in [0, 1]; `sizes` the
    chunks' text lengths in characters; `priors` the centrality, recency and definitions columns;
    `title_bm25` each chunk's BM25 score for the query's first line; `links` the chunk graph's CSR
    (indptr, indices), by default the graph's own matrix; `commits` each recent commit's files (`FileHistory`);
    `chunk_columns` the chunks' columns, made from them if not given."""
    n = len(chunks)
    chunk_columns = chunk_columns if chunk_columns is not None else ChunkColumns(chunks)
    title = _normalised(title_bm25)
    columns: dict[str, np.ndarray] = {
        "bm25": bm25_norm, "bm25_rank": _rank_value(bm25_norm), "ident": ident, "path": path_hit,
        "trace": trace, "direct": direct, "title": title,
        "file_title": _per_file_max(graph, title)[graph.file_of_chunk],
    }
    file_best = _per_file_max(graph, direct)
    columns["file_best"] = file_best[graph.file_of_chunk]
    file_rank = np.zeros(len(graph.files))
    positive = np.flatnonzero(file_best > 0)
    order = positive[np.argsort(-file_best[positive], kind="stable")]
    file_rank[order] = 1.0 / (1.0 + np.arange(order.size))
    columns["file_rank"] = file_rank[graph.file_of_chunk]
    columns["cochange"] = cochange(graph.files, file_best, commits)[graph.file_of_chunk]
    file_bm25 = np.zeros(len(graph.files))
    np.add.at(file_bm25, graph.file_of_chunk, bm25_norm)
    top = float(file_bm25.max()) if file_bm25.size else 0.0
    columns["file_bm25"] = (file_bm25 / top if top > 0 else file_bm25)[graph.file_of_chunk]
    columns["file_bm25_rank"] = _rank_value(file_bm25)[graph.file_of_chunk]
    columns["file_ident"] = _per_file_max(graph, ident)[graph.file_of_chunk]
    columns["path_words"] = path_words(graph.files, query)[graph.file_of_chunk]
    with np.errstate(divide="ignore", invalid="ignore"):
        columns["own_share"] = np.where(columns["file_best"] > 0, direct / columns["file_best"], 0.0)
    columns["class_ident"] = class_matches(chunk_columns, identifiers)
    columns["class_best"] = class_best(chunk_columns, direct)
    if links is None:
        matrix = graph.chunk_matrix
        links = (matrix.indptr, matrix.indices)
    columns["neighbour"] = neighbour_max(links[0], links[1], direct)
    kinds = chunk_columns.kinds
    columns["is_imports"] = (kinds == IMPORTS).astype(np.float64)
    columns["is_block"] = (kinds == BLOCK).astype(np.float64)
    columns["is_function"] = (kinds == FUNCTION).astype(np.float64)
    columns["is_method"] = (kinds == METHOD).astype(np.float64)
    columns["is_class"] = (kinds == CLASS).astype(np.float64)
    columns["is_test"] = chunk_columns.is_test.astype(np.float64)
    columns["is_text"] = chunk_columns.is_text.astype(np.float64)
    columns["log_size"] = np.log1p(np.asarray(sizes, dtype=np.float64)) / 10.0
    for name in ("centrality", "recency", "definitions"):
        columns[name] = np.asarray(priors[name], dtype=np.float64)
    matrix = np.zeros((n, len(FEATURES)))
    for column, name in enumerate(FEATURES):
        matrix[:, column] = columns[name]
    return matrix

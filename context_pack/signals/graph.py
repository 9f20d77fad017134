"""The code graph: files linked by resolved imports, chunks linked by symbol references; and PageRank.

Reference edges: a chunk that uses an identifier defined in another chunk points at it, with weight
1 / (number of chunks defining the name), so a name defined in many places (`get`, `__init__`) spreads
thin; names defined in more than MAX_DEFINITIONS places, and very short names, add no edge.
A method also points at the class around it.
"""

from __future__ import annotations

import builtins
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..model import Chunk
from ..repo_facts import RepoFacts
from .imports import resolve_imports

PYTHON_BUILTINS = frozenset(dir(builtins))  # `str` in Python code is the builtin, not a repo's own `str`
MAX_DEFINITIONS = 20
MIN_NAME_LENGTH = 3
CONTAINMENT_WEIGHT = 0.5
DAMPING = 0.85


@dataclass
class CodeGraph:
    files: list[str]
    file_of_chunk: np.ndarray  # chunk index -> file index
    file_matrix: sparse.csr_matrix  # file -> file, imports plus references between files
    chunk_matrix: sparse.csr_matrix  # chunk -> chunk, references and containment
    file_imports: dict[str, set[str]]  # resolved import edges, for explain and tests
    definitions: dict[str, list[int]]  # short name -> chunks defining it

    @property
    def chunk_count(self) -> int:
        return int(self.chunk_matrix.shape[0])


def short_name(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1]


def build_graph(chunks: Sequence[Chunk], facts: RepoFacts) -> CodeGraph:
    files = sorted({c.path for c in chunks})
    file_id = {path: i for i, path in enumerate(files)}
    file_of_chunk = np.fromiter((file_id[c.path] for c in chunks), dtype=np.int64, count=len(chunks))

    definitions: dict[str, list[int]] = defaultdict(list)
    qualified_owner: dict[str, int] = {}
    for i, chunk in enumerate(chunks):
        for symbol in chunk.symbols:
            definitions[short_name(symbol)].append(i)
        if chunk.name and chunk.kind not in ("block", "imports"):
            qualified_owner.setdefault(f"{chunk.path}\0{chunk.name}", i)

    rows: list[int] = []
    cols: list[int] = []
    weights: list[float] = []
    for i, chunk in enumerate(chunks):
        python = chunk.language == "python"
        for name in chunk.references:
            if python and name in PYTHON_BUILTINS:
                continue
            targets = definitions.get(name)
            if not targets or len(targets) > MAX_DEFINITIONS or len(name) < MIN_NAME_LENGTH:
                continue
            weight = 1.0 / len(targets)
            for target in targets:
                if target != i:
                    rows.append(i)
                    cols.append(target)
                    weights.append(weight)
        if "." in chunk.name:  # a method points at its class's header
            owner = qualified_owner.get(f"{chunk.path}\0{chunk.name.rsplit('.', 1)[0]}")
            if owner is not None and owner != i:
                rows.append(i)
                cols.append(owner)
                weights.append(CONTAINMENT_WEIGHT)
    n = len(chunks)
    chunk_matrix = sparse.csr_matrix((weights, (rows, cols)), shape=(n, n), dtype=np.float64)

    file_imports_facts: dict[str, tuple[str, set[str]]] = {}
    namespaces: dict[str, list[str]] = defaultdict(list)
    for chunk in chunks:
        file_imports_facts.setdefault(chunk.path, (chunk.language, set()))[1].update(chunk.imports)
        if chunk.kind == "namespace" and chunk.name:
            namespaces[chunk.path].append(chunk.name)
    file_imports = resolve_imports(file_imports_facts, facts, namespaces)
    f_rows = [file_id[src] for src, targets in file_imports.items() for _ in targets]
    f_cols = [file_id[dst] for targets in file_imports.values() for dst in targets]
    import_matrix = sparse.csr_matrix((np.ones(len(f_rows)), (f_rows, f_cols)), shape=(len(files), len(files)))
    # References between files count too, at most one import's worth per file pair.
    coo = chunk_matrix.tocoo()
    ref_files = sparse.csr_matrix((coo.data, (file_of_chunk[coo.row], file_of_chunk[coo.col])),
                                  shape=(len(files), len(files)))
    ref_files.setdiag(0)
    ref_files.data = np.minimum(ref_files.data, 1.0)
    file_matrix = (import_matrix + ref_files).tocsr()
    return CodeGraph(files=files, file_of_chunk=file_of_chunk, file_matrix=file_matrix,
                     chunk_matrix=chunk_matrix, file_imports=file_imports, definitions=dict(definitions))


def pagerank(matrix: sparse.csr_matrix, personalization: np.ndarray | None = None, alpha: float = DAMPING,
             tol: float = 1.0e-8, max_iter: int = 100) -> np.ndarray:
    """PageRank by power iteration on a weighted adjacency matrix (row = source).

    The same computation as networkx's `pagerank` (scipy variant): dangling nodes give their rank to the
    personalization vector. Written against the sparse matrix so a cached graph can be re-ranked per
    query without rebuilding a networkx graph; `tests/test_signals.py` checks it against networkx.
    """
    n = matrix.shape[0]
    if n == 0:
        return np.zeros(0)
    out_weight = np.asarray(matrix.sum(axis=1)).ravel()
    inverse = np.divide(1.0, out_weight, out=np.zeros_like(out_weight), where=out_weight != 0)
    transition = sparse.diags(inverse) @ matrix
    if personalization is None:
        p = np.full(n, 1.0 / n)
    else:
        total = float(personalization.sum())
        p = personalization / total if total > 0 else np.full(n, 1.0 / n)
    dangling = out_weight == 0
    x = p.copy()
    transposed = transition.T.tocsr()
    for _ in range(max_iter):
        previous = x
        x = alpha * (transposed @ x + previous[dangling].sum() * p) + (1 - alpha) * p
        if np.abs(x - previous).sum() < n * tol:
            break
    return x


def log_normalise(values: np.ndarray) -> np.ndarray:
    """Rank mass → [0, 1]: log-scaled so the many small values stay apart and one hub does not flatten all."""
    if values.size == 0:
        return values
    scaled = np.log1p(values * values.size)
    top = float(scaled.max())
    return scaled / top if top > 0 else np.zeros_like(values)


def spread_to_chunks(graph: CodeGraph, file_values: np.ndarray) -> np.ndarray:
    return file_values[graph.file_of_chunk] if file_values.size else np.zeros(len(graph.file_of_chunk))


def personalization_vector(size: int, seeds: Mapping[int, float]) -> np.ndarray:
    vector = np.zeros(size)
    for index, weight in seeds.items():
        vector[index] += weight
    return vector

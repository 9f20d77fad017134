"""The code graph: files linked by resolved imports, chunks linked by symbol references; and PageRank.

Reference edges: a chunk that uses an identifier defined in another chunk points at it, with weight
1 / (number of chunks defining the name), so a name defined in many places (`get`, `__init__`) spreads
thin; names defined in more than MAX_DEFINITIONS places, and very short names, add no edge.
A method also points at the class around it.
"""

from __future__ import annotations

import builtins
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ..model import Chunk, Links
from ..repo_facts import RepoFacts
from .imports import resolve_imports

if TYPE_CHECKING:  # scipy costs ~0.1 s to import; a warm build reads centrality from the index instead
    from scipy import sparse

PYTHON_BUILTINS = frozenset(dir(builtins))  # `str` in Python code is the builtin, not a repo's own `str`
MAX_DEFINITIONS = 20
MIN_NAME_LENGTH = 3
CONTAINMENT_WEIGHT = 0.5
DAMPING = 0.85


class CodeGraph:
    """The graph of a list of chunks. Names, files and definitions are made at once (a query needs them);
    the matrices only when a ranking asks (centrality is usually cached, so a warm build never does)."""

    def __init__(self, chunks: Sequence[Chunk], facts: RepoFacts,
                 links: Callable[[], Sequence[Links]] | None = None,
                 stored: Callable[[], tuple[sparse.csr_matrix, sparse.csr_matrix] | None] | None = None) -> None:
        """`links` gives each chunk's (references, imports), when `chunks` lack them (chunks loaded from the
        index); `stored` gives the (chunk, file) matrices kept from an earlier build, or None."""
        self.chunks = chunks
        self.facts = facts
        self._links = links
        self._stored = stored
        self.files: list[str] = sorted({c.path for c in chunks})
        self.file_id = {path: i for i, path in enumerate(self.files)}
        # chunk index -> file index
        self.file_of_chunk = np.fromiter((self.file_id[c.path] for c in chunks), dtype=np.int64, count=len(chunks))
        definitions: dict[str, list[int]] = defaultdict(list)
        for i, chunk in enumerate(chunks):
            for symbol in chunk.symbols:
                definitions[short_name(symbol)].append(i)
        self.definitions: dict[str, list[int]] = dict(definitions)  # short name -> chunks defining it

    @property
    def chunk_count(self) -> int:
        return len(self.chunks)

    @cached_property
    def chunk_links(self) -> Sequence[Links]:
        """Each chunk's (references, imports), in chunk order."""
        if self._links is not None:
            links = self._links()
            if len(links) != len(self.chunks):
                raise ValueError(f"{len(links)} links for {len(self.chunks)} chunks")
            return links
        return [(chunk.references, chunk.imports) for chunk in self.chunks]

    @property
    def matrices_made(self) -> bool:
        """Both matrices were computed by this graph (not taken from `stored`)."""
        return self.__dict__.get("_made", False)

    @cached_property
    def _from_store(self) -> tuple[sparse.csr_matrix, sparse.csr_matrix] | None:
        found = self._stored() if self._stored is not None else None
        if found is not None and (found[0].shape != (len(self.chunks),) * 2 or
                                  found[1].shape != (len(self.files),) * 2):
            return None  # does not fit this corpus
        return found

    @cached_property
    def chunk_matrix(self) -> sparse.csr_matrix:
        """chunk -> chunk: references, and a method's containment in its class."""
        if self._from_store is not None:
            return self._from_store[0]
        self.__dict__["_made"] = True
        from scipy import sparse

        chunks = self.chunks
        qualified_owner: dict[str, int] = {}
        for i, chunk in enumerate(chunks):
            if chunk.name and chunk.kind not in ("block", "imports"):
                qualified_owner.setdefault(f"{chunk.path}\0{chunk.name}", i)
        ref_src, ref_dst, ref_weight = _reference_edges(chunks, self.chunk_links, self.definitions)
        owner_src: list[int] = []
        owner_dst: list[int] = []
        for i, chunk in enumerate(chunks):
            if "." in chunk.name:  # a method points at its class's header
                owner = qualified_owner.get(f"{chunk.path}\0{chunk.name.rsplit('.', 1)[0]}")
                if owner is not None and owner != i:
                    owner_src.append(i)
                    owner_dst.append(owner)
        rows = np.concatenate([ref_src, np.asarray(owner_src, dtype=np.int64)])
        cols = np.concatenate([ref_dst, np.asarray(owner_dst, dtype=np.int64)])
        weights = np.concatenate([ref_weight, np.full(len(owner_src), CONTAINMENT_WEIGHT)])
        n = len(chunks)
        return sparse.csr_matrix((weights, (rows, cols)), shape=(n, n), dtype=np.float64)

    @cached_property
    def file_imports(self) -> dict[str, set[str]]:
        """Resolved import edges, file -> files."""
        facts_by_file: dict[str, tuple[str, set[str]]] = {}
        namespaces: dict[str, list[str]] = defaultdict(list)
        for chunk, (_, imports) in zip(self.chunks, self.chunk_links, strict=True):
            facts_by_file.setdefault(chunk.path, (chunk.language, set()))[1].update(imports)
            if chunk.kind == "namespace" and chunk.name:
                namespaces[chunk.path].append(chunk.name)
        return resolve_imports(facts_by_file, self.facts, namespaces)

    @cached_property
    def file_matrix(self) -> sparse.csr_matrix:
        """file -> file: imports, plus references between files (at most one import's worth per pair)."""
        if self._from_store is not None:
            return self._from_store[1]
        from scipy import sparse

        size = len(self.files)
        file_id = self.file_id
        f_rows = [file_id[source] for source, targets in self.file_imports.items() for _ in targets]
        f_cols = [file_id[target] for targets in self.file_imports.values() for target in targets]
        import_matrix = sparse.csr_matrix((np.ones(len(f_rows)), (f_rows, f_cols)), shape=(size, size))
        coo = self.chunk_matrix.tocoo()
        ref_files = sparse.csr_matrix((coo.data, (self.file_of_chunk[coo.row], self.file_of_chunk[coo.col])),
                                      shape=(size, size))
        ref_files.setdiag(0)
        ref_files.data = np.minimum(ref_files.data, 1.0)
        return (import_matrix + ref_files).tocsr()


def short_name(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1]


def build_graph(chunks: Sequence[Chunk], facts: RepoFacts) -> CodeGraph:
    return CodeGraph(chunks, facts)


def _reference_edges(chunks: Sequence[Chunk], links: Sequence[Links],
                     definitions: Mapping[str, list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source, target, weight) arrays: each use of a name points at every chunk defining it, 1/#definitions.

    Vectorised (a repository has hundreds of thousands of uses): names become ids, uses become an id array,
    and each use is expanded to its definitions with `np.repeat` over a CSR layout of the definition lists.
    """
    usable = [name for name, targets in definitions.items()
              if len(targets) <= MAX_DEFINITIONS and len(name) >= MIN_NAME_LENGTH]
    name_id = {name: i for i, name in enumerate(usable)}
    python_name_id = {name: i for name, i in name_id.items() if name not in PYTHON_BUILTINS}
    counts = np.fromiter((len(definitions[name]) for name in usable), dtype=np.int64, count=len(usable))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    flat_targets = np.fromiter((t for name in usable for t in definitions[name]), dtype=np.int64,
                               count=int(counts.sum()))
    uses: list[int] = []
    per_chunk: list[int] = []
    for chunk, (references, _) in zip(chunks, links, strict=True):
        lookup = python_name_id if chunk.language == "python" else name_id
        ids = [lookup.get(name, -1) for name in references]
        uses.extend(ids)
        per_chunk.append(len(ids))
    use_name = np.asarray(uses, dtype=np.int64)
    use_chunk = np.repeat(np.arange(len(chunks), dtype=np.int64), per_chunk)
    known = use_name >= 0
    use_name, use_chunk = use_name[known], use_chunk[known]
    fan = counts[use_name]
    total = int(fan.sum())
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(fan) - fan, fan)
    dst = flat_targets[np.repeat(starts[use_name], fan) + offsets]
    src = np.repeat(use_chunk, fan)
    weight = np.repeat(1.0 / np.maximum(fan, 1), fan)
    not_self = src != dst
    return src[not_self], dst[not_self], weight[not_self]


def pagerank(matrix: sparse.csr_matrix, personalization: np.ndarray | None = None, alpha: float = DAMPING,
             tol: float = 1.0e-8, max_iter: int = 100) -> np.ndarray:
    """PageRank by power iteration on a weighted adjacency matrix (row = source).

    The same computation as networkx's `pagerank` (scipy variant): dangling nodes give their rank to the
    personalization vector. Written against the sparse matrix so a cached graph can be re-ranked per
    query without rebuilding a networkx graph; `tests/test_signals.py` checks it against networkx.
    """
    from scipy import sparse

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

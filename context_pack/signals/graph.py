"""The code graph: files linked by resolved imports, chunks linked by symbol references; and PageRank.

Reference edges: a chunk that uses an identifier defined in another chunk points at it, with weight
1 / (number of chunks defining the name), so a name defined in many places (`get`, `__init__`) spreads
thin; names defined in more than MAX_DEFINITIONS places, and very short names, add no edge.
A method also points at the class around it.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..model import Chunk, Links, chunk_paths, chunk_symbols
from ..repo_facts import RepoFacts
from .csr import CSR, vstack
from .imports import resolve_imports

PYTHON_BUILTINS = frozenset(dir(builtins))  # `str` in Python code is the builtin, not a repo's own `str`
MAX_DEFINITIONS = 20
MIN_NAME_LENGTH = 3
CONTAINMENT_WEIGHT = 0.5
DAMPING = 0.85


MAX_PATCHED_FILES = 64  # beyond this many changed files, a graph is rebuilt rather than patched


class CodeGraph:
    """The graph of a list of chunks. Files are made at once (a query needs them), definitions when first
    asked for, the matrices only when a ranking asks (centrality is usually cached, so a warm build never does).

    Chunks come in file blocks, files in path order (as a corpus holds them)."""

    def __init__(self, chunks: Sequence[Chunk], facts: RepoFacts,
                 links_of: Callable[[Sequence[str]], Mapping[str, Sequence[Links]]] | None = None,
                 stored: Callable[[], tuple[CSR, CSR] | None] | None = None,
                 previous: Callable[[], GraphState | None] | None = None,
                 structures: Mapping[str, str] | None = None) -> None:
        """`links_of(paths)` gives each of those files' chunks' (references, imports), when `chunks` lack
        them (chunks loaded from the index); `stored` gives the (chunk, file) matrices kept from an earlier
        build of the same structure, or None; `previous` the state of an earlier build's graph, which is
        patched when only a few files changed and none of them in what other files see of it;
        `structures` is each file's structure digest (`index.structure_digest`), which says what changed."""
        self.chunks = chunks
        self.facts = facts
        self._links_of = links_of
        self._stored = stored
        self._previous = previous
        paths = chunk_paths(chunks)
        self.files: list[str] = sorted(set(paths))
        self.file_id = {path: i for i, path in enumerate(self.files)}
        self.structures = [structures.get(path, "") for path in self.files] if structures is not None else None
        # chunk index -> file index
        self.file_of_chunk = np.fromiter(map(self.file_id.__getitem__, paths), dtype=np.int64, count=len(chunks))

    @cached_property
    def definitions(self) -> dict[str, list[int]]:
        """Short name -> the chunks defining it. Made on first use: a query that names no identifier, on a
        graph whose matrices are kept, never needs it (~10^5 symbols)."""
        return self._definitions_of(None)

    def _definitions_of(self, names: Collection[str] | None) -> dict[str, list[int]]:
        """`definitions`, for these short names only (a patch looks up the names a few chunks use); None: all."""
        if "definitions" in self.__dict__:
            return self.definitions
        wanted = set(names) if names is not None else None
        found: dict[str, list[int]] = defaultdict(list)
        for i, symbols in enumerate(self._symbols):
            if symbols:
                for symbol in symbols:
                    name = symbol.rpartition(".")[2]  # short_name, inlined: ~10^5 calls
                    if wanted is None or name in wanted:
                        found[name].append(i)
        return dict(found)

    @cached_property
    def _symbols(self) -> list[tuple[str, ...]]:
        """Each chunk's symbols (read once: `definitions` and `state` both want them)."""
        return chunk_symbols(self.chunks)

    @property
    def chunk_count(self) -> int:
        return len(self.chunks)

    @cached_property
    def chunk_links(self) -> Sequence[Links]:
        """Each chunk's (references, imports), in chunk order."""
        if self._links_of is None:
            return [(chunk.references, chunk.imports) for chunk in self.chunks]
        found = self._links_of(self.files)
        links: list[Links] = []
        for path in dict.fromkeys(chunk_paths(self.chunks)):  # file blocks, in chunk order
            links.extend(found[path])
        if len(links) != len(self.chunks):
            raise ValueError(f"{len(links)} links for {len(self.chunks)} chunks")
        return links

    @property
    def patched(self) -> bool:
        """The matrices were patched from an earlier build's (`_patched`), not made from scratch."""
        return "_previous_state" in self.__dict__

    @property
    def matrices_made(self) -> bool:
        """Both matrices were computed (or patched) by this graph, not taken from `stored`."""
        return self.__dict__.get("_made", False)

    @cached_property
    def _from_store(self) -> tuple[CSR, CSR] | tuple[CSR, CSR, CSR] | None:
        found = self._stored() if self._stored is not None else None
        if found is not None and (found[0].shape != (len(self.chunks),) * 2 or
                                  found[1].shape != (len(self.files),) * 2):
            found = None  # does not fit this corpus
        if found is None:
            found = self._patched()
        return found

    @cached_property
    def chunk_matrix(self) -> CSR:
        """chunk -> chunk: references, and a method's containment in its class."""
        if self._from_store is not None:
            return self._from_store[0]
        self.__dict__["_made"] = True
        n = len(self.chunks)
        rows, cols, weights = _chunk_edges(self.chunks, self.chunk_links, self.definitions, 0, only_used=False)
        return CSR.from_triples(rows, cols, weights, (n, n))

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
    def import_matrix(self) -> CSR:
        """file -> file: resolved imports."""
        if self._from_store is not None and len(self._from_store) > 2:
            return self._from_store[2]
        size = len(self.files)
        file_id = self.file_id
        f_rows = [file_id[source] for source, targets in self.file_imports.items() for _ in targets]
        f_cols = [file_id[target] for targets in self.file_imports.values() for target in targets]
        return CSR.from_triples(f_rows, f_cols, np.ones(len(f_rows)), (size, size))

    @cached_property
    def file_matrix(self) -> CSR:
        """file -> file: imports, plus references between files (at most one import's worth per pair)."""
        if self._from_store is not None:
            return self._from_store[1]
        return _file_matrix(self.import_matrix, self.chunk_matrix, self.file_of_chunk, len(self.files))

    def state(self) -> GraphState | None:
        """What a later build needs to reuse or patch these matrices; None without structure digests."""
        if self.structures is None or any(not digest for digest in self.structures):
            return None
        previous = self.__dict__.get("_previous_state")
        if previous is not None:  # patched: what other files see of each file is as before
            interfaces = previous.interfaces
        else:
            interfaces = [file_interface(chunks, links) for chunks, links in self._file_blocks(range(len(self.files)))]
        return GraphState(files=self.files, counts=np.bincount(self.file_of_chunk, minlength=len(self.files)),
                          structures=self.structures, interfaces=interfaces,
                          definers=np.fromiter(map(bool, self._symbols), dtype=bool,
                                               count=len(self.chunks)),
                          facts=self.facts.fingerprint(), chunk_matrix=self.chunk_matrix,
                          file_matrix=self.file_matrix, import_matrix=self.import_matrix)

    def _file_blocks(self, files: Sequence[int]) -> list[tuple[Sequence[Chunk], Sequence[Links]]]:
        starts = np.searchsorted(self.file_of_chunk, np.arange(len(self.files) + 1))
        links = self.chunk_links
        return [(self.chunks[starts[i]:starts[i + 1]], links[starts[i]:starts[i + 1]]) for i in files]

    def _patched(self) -> tuple[CSR, CSR, CSR] | None:
        """The previous build's matrices with the changed files' rows made again and every chunk index moved
        to where it is now: the same matrices a rebuild makes (tests/test_index.py checks it), when

        - the files are the same ones, and so are the repository facts (so imports resolve as before);
        - at most MAX_PATCHED_FILES changed, and each still defines the same symbols in the same order,
          imports the same and declares the same namespaces (`file_interface`): then every name has the
          same definitions, so the other files' edges keep their targets and weights.
        """
        if self._previous is None or self.structures is None or len(self.chunks) == 0:
            return None
        if np.any(np.diff(self.file_of_chunk) < 0):
            return None  # not in file blocks
        previous = self._previous()
        if previous is None or previous.files != self.files or previous.facts != self.facts.fingerprint():
            return None
        counts = np.bincount(self.file_of_chunk, minlength=len(self.files))
        changed = [i for i, (old, new) in enumerate(zip(previous.structures, self.structures, strict=True))
                   if old != new]
        if not changed or len(changed) > MAX_PATCHED_FILES:
            return None
        same = np.ones(len(self.files), dtype=bool)
        same[changed] = False
        if np.any(previous.counts[same] != counts[same]):
            return None
        found = self._links_of([self.files[i] for i in changed]) if self._links_of is not None else None
        old_starts = np.concatenate([[0], np.cumsum(previous.counts)])
        new_starts = np.concatenate([[0], np.cumsum(counts)])
        blocks: dict[int, tuple[Sequence[Chunk], Sequence[Links]]] = {}
        for i in changed:
            chunks = self.chunks[new_starts[i]:new_starts[i + 1]]
            links = found[self.files[i]] if found is not None else [(c.references, c.imports) for c in chunks]
            if len(links) != len(chunks) or file_interface(chunks, links) != previous.interfaces[i]:
                return None
            blocks[i] = (chunks, links)
        # Old chunk index -> new: a shift for unchanged files; the k-th defining chunk of a changed file to
        # its k-th now (only defining chunks are targets of other files' edges); -1 for the rest.
        moved = np.repeat(new_starts[:-1] - old_starts[:-1], previous.counts) + np.arange(int(old_starts[-1]))
        moved[~np.repeat(same, previous.counts)] = -1
        for i in changed:
            old = np.flatnonzero(previous.definers[old_starts[i]:old_starts[i + 1]]) + old_starts[i]
            new = [new_starts[i] + k for k, chunk in enumerate(blocks[i][0]) if chunk.symbols]
            if len(old) != len(new):
                return None
            moved[old] = new
        n = len(self.chunks)
        definitions = self._definitions_of({name for i in changed for references, _ in blocks[i][1]
                                            for name in references})
        old_matrix = previous.chunk_matrix
        pieces = []
        run_start = 0
        for i in [*changed, len(self.files)]:
            if old_starts[i] > old_starts[run_start]:  # unchanged files run_start..i-1: their rows, moved
                low, high = int(old_matrix.indptr[old_starts[run_start]]), int(old_matrix.indptr[old_starts[i]])
                columns = moved[old_matrix.indices[low:high]]
                if np.any(columns < 0):
                    return None
                indptr = old_matrix.indptr[old_starts[run_start]:old_starts[i] + 1] - low
                pieces.append(CSR(old_matrix.data[low:high], columns.astype(np.int32), indptr.astype(np.int64),
                                  (int(old_starts[i] - old_starts[run_start]), n)))
            if i == len(self.files):
                break
            chunks, links = blocks[i]
            rows, cols, weights = _chunk_edges(chunks, links, definitions, int(new_starts[i]), only_used=True)
            pieces.append(CSR.from_triples(rows - new_starts[i], cols, weights, (len(chunks), n)))
            run_start = i + 1
        chunk_matrix = vstack(pieces)
        self.__dict__["_made"] = True
        self.__dict__["_previous_state"] = previous
        file_matrix = _file_matrix(previous.import_matrix, chunk_matrix, self.file_of_chunk, len(self.files))
        return chunk_matrix, file_matrix, previous.import_matrix


@dataclass
class GraphState:
    """A graph's matrices, with what a later build needs to patch them (`CodeGraph._patched`)."""

    files: list[str]
    counts: np.ndarray  # chunks per file
    structures: list[str]  # per file: `index.structure_digest`
    interfaces: list[str]  # per file: `file_interface`
    definers: np.ndarray  # per chunk: it defines a symbol
    facts: str  # `RepoFacts.fingerprint`
    chunk_matrix: CSR
    file_matrix: CSR
    import_matrix: CSR

    def to_bytes(self) -> bytes:
        """An .npz (numpy's own format, read back without pickle); names and digests as UTF-8 JSON."""
        buffer = io.BytesIO()
        arrays: dict[str, np.ndarray] = {}
        for name in ("chunk", "file", "import"):
            matrix = getattr(self, f"{name}_matrix")
            arrays.update({f"{name}_data": matrix.data, f"{name}_indices": matrix.indices,
                           f"{name}_indptr": matrix.indptr, f"{name}_shape": np.array(matrix.shape)})
        meta = json.dumps([self.files, self.structures, self.interfaces, self.facts], ensure_ascii=False)
        np.savez(buffer, counts=self.counts, definers=self.definers,
                 meta=np.frombuffer(meta.encode("utf-8", "surrogatepass"), dtype=np.uint8), **arrays)
        return buffer.getvalue()

    @staticmethod
    def chunk_links_from_bytes(value: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Only the chunk matrix's row pointers and column indices, read with numpy alone."""
        with np.load(io.BytesIO(value), allow_pickle=False) as arrays:
            return arrays["chunk_indptr"], arrays["chunk_indices"]

    @classmethod
    def from_bytes(cls, value: bytes) -> GraphState:
        with np.load(io.BytesIO(value), allow_pickle=False) as arrays:
            matrices = [CSR.checked(arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"],
                                    arrays[f"{name}_shape"].tolist())
                        for name in ("chunk", "file", "import")]
            files, structures, interfaces, facts = json.loads(arrays["meta"].tobytes().decode("utf-8",
                                                                                              "surrogatepass"))
            state = cls(files=list(files), counts=arrays["counts"].astype(np.int64), structures=list(structures),
                        interfaces=list(interfaces), definers=arrays["definers"].astype(bool), facts=str(facts),
                        chunk_matrix=matrices[0], file_matrix=matrices[1], import_matrix=matrices[2])
        if not (len(state.files) == len(state.counts) == len(state.structures) == len(state.interfaces)
                and len(state.definers) == int(state.counts.sum()) == state.chunk_matrix.shape[0]):
            raise ValueError("inconsistent graph state")
        return state


def file_interface(chunks: Sequence[Chunk], links: Sequence[Links]) -> str:
    """What other files' edges depend on of a file: its language, the symbols of each chunk defining any
    (in order), its imports and the namespaces it declares."""
    shape = [chunks[0].language if chunks else "",
             [list(chunk.symbols) for chunk in chunks if chunk.symbols],
             sorted({name for _, imports in links for name in imports}),
             sorted(chunk.name for chunk in chunks if chunk.kind == "namespace" and chunk.name)]
    return hashlib.sha1(json.dumps(shape, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


def _chunk_edges(chunks: Sequence[Chunk], links: Sequence[Links], definitions: Mapping[str, list[int]],
                 offset: int, only_used: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source, target, weight) of the edges leaving `chunks` (which sit at `offset` in the graph): their
    references, then each method's containment in its class (a class is in its method's file)."""
    qualified_owner: dict[str, int] = {}
    for i, chunk in enumerate(chunks):
        if chunk.name and chunk.kind not in ("block", "imports"):
            qualified_owner.setdefault(f"{chunk.path}\0{chunk.name}", i + offset)
    ref_src, ref_dst, ref_weight = _reference_edges(chunks, links, definitions, offset, only_used)
    owner_src: list[int] = []
    owner_dst: list[int] = []
    for i, chunk in enumerate(chunks, start=offset):
        if "." in chunk.name:  # a method points at its class's header
            owner = qualified_owner.get(f"{chunk.path}\0{chunk.name.rsplit('.', 1)[0]}")
            if owner is not None and owner != i:
                owner_src.append(i)
                owner_dst.append(owner)
    rows = np.concatenate([ref_src, np.asarray(owner_src, dtype=np.int64)])
    cols = np.concatenate([ref_dst, np.asarray(owner_dst, dtype=np.int64)])
    weights = np.concatenate([ref_weight, np.full(len(owner_src), CONTAINMENT_WEIGHT)])
    return rows, cols, weights


def _file_matrix(import_matrix: CSR, chunk_matrix: CSR, file_of_chunk: np.ndarray, size: int) -> CSR:
    rows, cols, weights = chunk_matrix.triples()
    source, target = file_of_chunk[rows], file_of_chunk[cols]
    between = source != target  # a file's references to itself are no edge
    references = CSR.from_triples(source[between], target[between], weights[between], (size, size))
    capped = CSR(np.minimum(references.data, 1.0), references.indices, references.indptr, references.shape)
    return import_matrix.plus(capped)


def short_name(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1]


def build_graph(chunks: Sequence[Chunk], facts: RepoFacts) -> CodeGraph:
    return CodeGraph(chunks, facts)


def _reference_edges(chunks: Sequence[Chunk], links: Sequence[Links], definitions: Mapping[str, list[int]],
                     offset: int = 0, only_used: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source, target, weight) arrays: each use of a name points at every chunk defining it, 1/#definitions.

    Vectorised (a repository has hundreds of thousands of uses): names become ids, uses become an id array,
    and each use is expanded to its definitions with `np.repeat` over a CSR layout of the definition lists.
    """
    # `only_used`: a few chunks (a patch) need ids for the names they use, not for every defined name.
    names = {name for references, _ in links for name in references} if only_used else definitions
    usable = [name for name in names if len(targets := definitions.get(name, ())) <= MAX_DEFINITIONS
              and targets and len(name) >= MIN_NAME_LENGTH]
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
    use_chunk = np.repeat(np.arange(offset, offset + len(chunks), dtype=np.int64), per_chunk)
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


def pagerank(matrix: CSR, personalization: np.ndarray | None = None, alpha: float = DAMPING,
             tol: float = 1.0e-8, max_iter: int = 100, both_ways: bool = False) -> np.ndarray:
    """PageRank by power iteration on a weighted adjacency matrix (row = source); `both_ways`: on the
    matrix plus its transpose (each edge also points back), without making that matrix.

    The same computation as networkx's `pagerank` (scipy variant): dangling nodes give their rank to the
    personalization vector. Written against the sparse matrix so a cached graph can be re-ranked per
    query without rebuilding a networkx graph; `tests/test_signals.py` checks it against networkx.
    """
    n = matrix.shape[0]
    if n == 0:
        return np.zeros(0)
    sources, targets, weights = matrix.triples()
    if both_ways:  # an edge list may repeat a pair: the sums below add repeats up
        sources, targets, weights = (np.concatenate([sources, targets]), np.concatenate([targets, sources]),
                                     np.concatenate([weights, weights]))
    out_weight = np.bincount(sources, weights=weights, minlength=n).astype(np.float64)  # (int if no edges)
    inverse = np.divide(1.0, out_weight, out=np.zeros_like(out_weight), where=out_weight != 0)
    transition = weights * inverse[sources]  # each edge's share of its source's rank
    if personalization is None:
        p = np.full(n, 1.0 / n)
    else:
        total = float(personalization.sum())
        p = personalization / total if total > 0 else np.full(n, 1.0 / n)
    dangling = out_weight == 0
    x = p.copy()
    for _ in range(max_iter):
        previous = x
        passed = np.bincount(targets, weights=transition * previous[sources], minlength=n)  # what each node gets
        x = alpha * (passed + previous[dangling].sum() * p) + (1 - alpha) * p
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

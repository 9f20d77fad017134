"""The library: walk → parse → signals → score → pack → render, as `build()` and its parts."""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import logging
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import index as index_module
from . import walk as walk_module
from .config import Config, load_config, parse_budget
from .errors import CtxpackError, UsageError
from .history import FileHistory, read_history, tracked_blobs
from .index import CachedFile, ChunkList, Index, ParsedFile, Stat, content_hash
from .lang import GRAMMARS, query_source
from .model import Chunk, File, Links, Pack, PackedChunk, ScoredChunk, chunk_paths
from .render import Style, normalise_format
from .repo_facts import RepoFacts, read_repo_facts
from .staged import StagedChange, read_staged, without_files
from .tokens import CachedTokenizer, Tokenizer, check_spec, get_tokenizer
from .walk import read_source, walk

# numpy, the parser and the ranking are imported where used: a build whose pack is cached needs none.
if TYPE_CHECKING:
    import numpy as np

    from .parallel import ParseRun
    from .score import Ranking
    from .signals.columns import ChunkColumns
    from .signals.graph import CodeGraph, GraphState

log = logging.getLogger("context_pack")

_PACKAGE = Path(__file__).resolve().parent
MAX_DIFF_SHARE = 0.6  # the staged diff takes at most this share of the budget; the rest is the code around it


@dataclass
class Corpus:
    """Everything query-independent about a root: its files and their chunks."""

    root: Path
    files: list[File]
    chunks: ChunkList
    line_counts: dict[str, int]
    skipped: dict[str, list[str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    history: FileHistory = field(default_factory=FileHistory)
    facts: RepoFacts = field(default_factory=RepoFacts)
    index: Index | None = None
    parsed_files: int = 0  # how many files this build had to parse
    structure_key: str = ""  # what the code graph depends on: every file's structure digest, and repo facts
    structures: dict[str, str] = field(default_factory=dict)  # path -> its structure digest
    content_key: str = ""  # what the chunks depend on: the parse fingerprint, every file's path, language, hash
    _graph: CodeGraph | None = None
    _columns: ChunkColumns | None = None
    _texts: dict[str, dict[int, tuple[str, index_module.Details]]] = field(default_factory=dict)  # by line
    _spans: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # see _term_spans
    _count_store: index_module.CountCache | None = None
    _memo: dict[str, Any] = field(default_factory=dict)

    @property
    def textless(self) -> dict[str, CachedFile]:
        """Every chunk comes as the index holds it, without its text, references and imports (ranking reads
        none of them; packing reads the text, a graph rebuild the links): path -> the file as the index holds
        it, for each file that has chunks, in corpus order."""
        return self.chunks.by_path

    @property
    def graph(self) -> CodeGraph:
        """The code graph; its matrices come from the index when the structure is unchanged, and are
        patched from the last build's when only a few files changed (`CodeGraph._patched`)."""
        if self._graph is None:
            from .signals.graph import CodeGraph

            self._graph = CodeGraph(self.chunks, self.facts, links_of=self.links_of, stored=self._stored_matrices,
                                    previous=self._previous_graph, structures=self.structures)
        return self._graph

    @property
    def columns(self) -> ChunkColumns:
        """The chunks' columns (`signals.columns`): those kept in the index for these very chunks, or patched
        from those of the build before (the per-chunk ones, after an edit); the rest made when read
        (`remember_columns` keeps them)."""
        if self._columns is None:
            from .signals.columns import ChunkColumns

            layout = self._layout()
            self._columns = ChunkColumns(self.chunks, layout=layout)
            if self.index is None or not self.content_key:
                return self._columns
            # The one value kept: this very state's, or an earlier one's to patch (`ChunkColumns.patched`).
            latest = self.index.latest_derived("columns")
            if latest is None:
                return self._columns
            key, kept = latest
            try:
                if key == self._columns_key():
                    self._columns = ChunkColumns.from_bytes(self.chunks, kept)
                    self._columns.layout = layout
                elif layout is not None and key.endswith(f":{_columns_code_fingerprint()}"):
                    self._columns = ChunkColumns.patched(self.chunks, layout, kept)
            except Exception:  # a damaged value is a miss, whatever numpy makes of it
                log.warning("ignoring damaged cached chunk columns; making them again")
        return self._columns

    def _layout(self) -> list[tuple[str, str, str, int]]:
        """Per file with chunks, in chunk order: path, content hash, language and chunk count."""
        return [(path, entry.hash, entry.language, entry.count) for path, entry in self.textless.items()]

    def remember_columns(self) -> None:
        """Keep the columns in the index if this build made any (an in-memory index would not be read again),
        with those a question reads, so that the first question after this build finds them (cheap to make
        here when patched: the next build after an edit copies them)."""
        from .signals.columns import FOR_QUESTIONS

        columns = self._columns
        if (columns is not None and columns.made and self.content_key and self.index is not None
                and self.index.location != ":memory:"):
            for name in FOR_QUESTIONS:
                getattr(columns, name)
            self.index.put_derived("columns", self._columns_key(), columns.to_bytes())
            columns.made.clear()

    def _columns_key(self) -> str:
        return f"{self.content_key}:{_columns_code_fingerprint()}"

    def _stored_graph(self) -> tuple[str, GraphState] | None:
        """The graph state kept in the index (from the last build that made one) and its key."""
        if "graph_state" not in self._memo:
            self._memo["graph_state"] = self._read_graph()
        return self._memo["graph_state"]

    def _kept_graph_blob(self) -> tuple[str, bytes] | None:
        """The kept graph's (key, blob) as the index holds it, read once per build (the query's chunk links
        and the graph's matrices may both want it)."""
        if "graph_blob" not in self._memo:
            index = self.index if self.structure_key else None
            self._memo["graph_blob"] = index.latest_derived("graph") if index is not None else None
        return self._memo["graph_blob"]

    def _read_graph(self) -> tuple[str, GraphState] | None:
        found = self._kept_graph_blob()
        if found is None or not found[0].endswith(f":{_graph_code_fingerprint()}"):
            return None  # none, or made by other code
        from .signals.graph import GraphState

        try:
            return found[0], GraphState.from_bytes(found[1])
        except Exception:  # a damaged blob is a cache miss, whatever numpy makes of it
            log.warning("ignoring a damaged cached code graph; rebuilding it")
            return None

    def _stored_matrices(self) -> tuple[Any, Any] | None:
        stored = self._stored_graph()
        if stored is None or stored[0] != self._derived_key():
            return None
        return stored[1].chunk_matrix, stored[1].file_matrix

    def chunk_links(self) -> tuple[np.ndarray, np.ndarray]:
        """The chunk graph as CSR (indptr, indices): only those two arrays of the kept graph when nothing has
        loaded it yet (a warm query decodes no more of it), else from the graph."""
        graph = self._graph
        if (graph is None or "chunk_matrix" not in graph.__dict__) and "graph_state" not in self._memo:
            kept = self._kept_chunk_links()
            if kept is not None:
                return kept
        matrix = self.graph.chunk_matrix
        return matrix.indptr, matrix.indices

    def _kept_chunk_links(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The kept graph's chunk links if they belong to this structure and fit this corpus."""
        found = self._kept_graph_blob()
        if found is None or found[0] != self._derived_key():
            return None
        from .signals.graph import GraphState

        try:
            indptr, indices = GraphState.chunk_links_from_bytes(found[1])
        except Exception:  # damaged: the graph rebuilds it
            return None
        n = len(self.chunks)
        return (indptr, indices) if len(indptr) == n + 1 and (indices.size == 0 or int(indices.max()) < n) else None

    def _previous_graph(self) -> GraphState | None:
        stored = self._stored_graph()
        return stored[1] if stored is not None else None

    def remember_graph(self) -> None:
        """Store the graph's matrices if this build made them (a later build with the same structure
        then needs neither the links nor the work of making them; one with a few files changed patches them)."""
        graph = self._graph
        if graph is not None and graph.matrices_made and not self._memo.get("graph_kept"):
            state = graph.state()
            if state is not None:
                self._store_derived("graph", state.to_bytes())
            self._memo["graph_kept"] = True  # once: centrality and focus both ask

    def _derived_key(self) -> str:
        return f"{self.structure_key}:{_graph_code_fingerprint()}"

    def _derived(self, kind: str) -> bytes | None:
        if self.index is None or not self.structure_key:
            return None
        return self.index.derived(kind, self._derived_key())

    def _store_derived(self, kind: str, value: bytes) -> None:
        if self.index is not None and self.structure_key:
            self.index.put_derived(kind, self._derived_key(), value)

    def links_of(self, paths: Sequence[str]) -> dict[str, list[Links]]:
        """Each chunk's (references, imports) of these files, read from the index (chunks come without them)."""
        wanted = {path: (self.textless[path].hash, self.textless[path].count) for path in paths
                  if path in self.textless}
        stored = self.index.all_links(wanted) if wanted and self.index is not None else {}
        links: dict[str, list[Links]] = {}
        for path in paths:
            if path not in wanted:  # a file without chunks
                links[path] = []
                continue
            found = stored.get(path)
            if found is None or len(found) != wanted[path][1]:
                raise CtxpackError(f"the index changed under this build ({path}); run it again")
            links[path] = found
        return links

    def with_text(self, chunk: Chunk) -> Chunk:
        """The chunk with its text and details (signature, redactions), read from the index for chunks that
        were loaded without them."""
        if chunk.text or chunk.path not in self.textless:
            return chunk
        by_line = self._texts.get(chunk.path)
        if by_line is None:
            entry = self.textless[chunk.path]
            bodies = self.index.bodies(chunk.path, entry.hash, entry.lengths) if self.index is not None else None
            if bodies is None:
                raise CtxpackError(f"the index changed under this build ({chunk.path}); run it again")
            starts = [c.start_line for c in entry.chunks]
            by_line = self._texts[chunk.path] = dict(zip(starts, bodies, strict=True))
        text, (signature, signature_line, redactions) = by_line[chunk.start_line]
        return replace(chunk, text=text, signature=signature, signature_line=signature_line, redactions=redactions)

    def chunk_sizes(self) -> list[int]:
        """Each chunk's text length in characters, without reading the texts the index holds."""
        sizes: list[int] = []
        for entry in self.textless.values():  # in corpus order
            sizes.extend(entry.lengths)
        return sizes

    def close(self) -> None:
        if self.index is not None:
            self.index.close()

    def chunk_counter(self, tokenizer: Tokenizer) -> Tokenizer | None:
        """What the packer counts chunks with: `tokenizer`'s chunk estimator, its counts kept in the index
        under the tokenizer's id (the pack text is always counted afresh); None to use no store."""
        from .pack import chunk_estimator

        if self.index is None or tokenizer.id.startswith("backend:"):  # a server's model may change behind a URL
            return None
        self._count_store = self._count_store or index_module.CountCache(self.index)
        return CachedTokenizer(chunk_estimator(tokenizer), self._count_store)

    def save_counts(self) -> None:
        if self._count_store is not None:
            self._count_store.flush()

    def centrality(self) -> np.ndarray:
        """Each chunk's centrality; cached in the index by the structure key, since only a change to
        definitions, uses or imports moves it and computing it means building the whole graph."""
        import numpy as np

        from .signals import centrality

        stored = self._derived("centrality")
        if stored is not None and len(stored) == 8 * len(self.chunks):
            return np.frombuffer(stored, dtype="<f8").astype(np.float64)
        values = np.asarray(centrality.compute(self.graph), dtype="<f8")
        self._store_derived("centrality", values.tobytes())
        self.remember_graph()
        return values.astype(np.float64)

    def bm25(self, query: str) -> np.ndarray:
        """Each chunk's BM25 score for the query's terms, from the index's full-text table."""
        from .terms import query_terms

        return self.bm25_terms(query_terms(query))

    def bm25_terms(self, terms: Sequence[str]) -> np.ndarray:
        """Each chunk's BM25 score for these terms (already lower-case sub-words), from the full-text table."""
        import numpy as np

        scores = np.zeros(len(self.chunks))
        if self.index is None:
            return scores
        rowids, values = self.index.bm25(terms)
        if not len(rowids):
            return scores
        starts, positions, counts = self._term_spans()
        if not starts.size:
            return scores
        rows = np.asarray(rowids, dtype=np.int64)
        span = np.searchsorted(starts, rows, side="right") - 1  # the file whose span holds each row
        span_ok = span >= 0
        span = np.where(span_ok, span, 0)
        ordinal = rows - starts[span]
        keep = span_ok & (ordinal < counts[span])
        np.add.at(scores, positions[span[keep]] + ordinal[keep], np.asarray(values, dtype=np.float64)[keep])
        return scores

    def _term_spans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the files of the corpus, by first FTS rowid: that rowid, the corpus position of the file's
        first chunk, and how many chunks it has (rows past them, if any, are not the corpus's)."""
        import numpy as np

        if self._spans is None:
            assert self.index is not None
            first: dict[str, int] = {}  # a file's chunks are contiguous in the corpus
            counts: dict[str, int] = {}
            position = 0
            for path, entry in self.textless.items():  # in corpus order
                first[path] = position
                counts[path] = entry.count
                position += entry.count
            spans = sorted((start, first[path], min(counts[path], end - start + 1))
                           for path, start, end in self.index.term_spans() if path in first)
            table = np.asarray(spans, dtype=np.int64).reshape(-1, 3)
            self._spans = (table[:, 0], table[:, 1], table[:, 2])
        return self._spans


def resolve_config(root: Path, config: Config | Mapping[str, Any] | None) -> Config:
    if isinstance(config, Config):
        return config
    return load_config(root, dict(config or {}))


def parse_fingerprint(config: Config) -> str:
    """What a cached parse depends on besides the file: ctxpack, grammars, queries and chunking settings."""
    parts = [metadata_version("context-pack"), str(config.class_split_lines), str(config.block_max_lines)]
    # Redacted and raw parses never share rows: --no-redact must not be served redacted text, nor the
    # default served secrets.
    parts.append(f"redact={config.redact} detect-secrets={metadata_version('detect-secrets')}")
    for module in ("walk", "parse", "terms", "index", "parallel", "secrets"):  # by file: none need be imported
        parts.append(hashlib.sha1((_PACKAGE / f"{module}.py").read_bytes()).hexdigest())
    for language, (module, _) in sorted(GRAMMARS.items()):
        parts.append(f"{language}={metadata_version(module.replace('_', '-'))}")
        try:
            parts.append(hashlib.sha1(query_source(language).encode()).hexdigest())
        except OSError:
            parts.append("no-query")
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


@lru_cache(maxsize=1)
def _graph_code_fingerprint() -> str:
    """The code a cached centrality came from: ctxpack's version and the graph and ranking modules."""
    parts = [metadata_version("context-pack")]
    for module in ("signals/graph.py", "signals/imports.py", "signals/centrality.py"):
        parts.append(hashlib.sha1((_PACKAGE / module).read_bytes()).hexdigest())
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def _columns_code_fingerprint() -> str:
    """The code kept chunk columns came from: ctxpack's version, the columns and the signals they hold."""
    parts = [metadata_version("context-pack")]
    for module in ("signals/columns.py", "signals/definitions.py", "signals/todo.py", "lang.py"):
        parts.append(hashlib.sha1((_PACKAGE / module).read_bytes()).hexdigest())
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:16]


def metadata_version(distribution: str) -> str:
    """A distribution's installed version: read from its `NAME-VERSION.dist-info` folder's name (how the
    packaging spec names it) when exactly one such folder on the import path names it, else asked of
    `importlib.metadata` (an egg, a zip, two copies). Importing `importlib.metadata` and parsing metadata files
    cost ~15 ms of every build."""
    versions = _dist_info_versions().get(_normalised_name(distribution), set())
    if len(versions) == 1:
        return next(iter(versions))
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def _dist_info_versions() -> dict[str, set[str]]:
    """Normalised project name -> the versions its `.dist-info` folders on the import path name."""
    found: dict[str, set[str]] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:  # a zip, a missing folder
            continue
        for name in names:
            if name.endswith(".dist-info"):
                project, dash, version = name[: -len(".dist-info")].partition("-")
                if dash and version and "-" not in version:
                    found.setdefault(_normalised_name(project), set()).add(version)
    return found


def _normalised_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@dataclass
class Scan:
    """What a build learns before parsing anything: the files, their verified content hashes, and which
    of them the index already holds."""

    root: Path
    walked: walk_module.WalkResult
    history: FileHistory
    index: Index
    stored: dict[str, index_module.StoredFile]
    present: list[File]
    reuse: list[str]  # paths whose indexed parse is current
    restat: dict[str, Stat]  # ... of which these have a new stat (same content)
    jobs: list[tuple[str, str, bytes]]  # (path, language, source) to parse
    digests: dict[str, tuple[str, Stat]]  # hash and stat of each job
    timings: dict[str, float]
    clock: float
    parsing: ParseRun | None = None  # the jobs' parse, once started (`start_parsing`)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self.clock
        self.clock = now

    @property
    def unchanged(self) -> bool:
        """The index holds exactly the files found, each as it is now."""
        return not self.jobs and len(self.stored) == len(self.present)

    def start_parsing(self, config: Config) -> ParseRun:
        """Start the workers on the jobs now, so that what the build does next (load the cached files, the
        tokenizer) runs while they parse. Returns the run (started once)."""
        if self.parsing is None:
            self.parsing = _start_parse(self.jobs, config)
        return self.parsing

    def close(self) -> None:
        """For a build that stops before `complete`: the workers, then the index."""
        if self.parsing is not None:
            self.parsing.close()
        self.index.close()

    def file_hashes(self) -> list[tuple[str, str, str]]:
        """(path, language, content hash) of every file, as this scan verified them."""
        return [(f.path, f.language or "text", self.digests[f.path][0] if f.path in self.digests
                 else self.stored[f.path].hash) for f in self.present]


def collect(root: str | Path, config: Config | None = None, use_cache: bool = True,
            progress: Callable[[int, int], None] | None = None) -> Corpus:
    """Walk and parse a root into chunks, re-using `.ctxpack/index.db` for files that did not change.

    `use_cache=False` touches no disk (an in-memory index). `progress(done, total)` reports parsing.
    """
    config = resolve_config(Path(root), config)
    return complete(scan(root, config, use_cache), config, progress)


def scan(root: str | Path, config: Config, use_cache: bool = True) -> Scan:
    """Walk the root and verify each file against the index: by stat, by git's blob id, else by reading and
    hashing it. Opens the index (the caller closes it, through the corpus `complete` makes)."""
    root_path = Path(root)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    fingerprint = parse_fingerprint(config)
    seen = index_module.indexed_stats(root_path.resolve(), fingerprint) if use_cache and root_path.is_dir() else {}

    def known(rel: str, size: int, mtime_ns: int) -> bool:
        return seen.get(rel) == (size, mtime_ns)

    taken: int | None = 0  # bytes the walk has taken; None once the scanner compiles

    def on_taken(size: int) -> None:
        """Nothing indexed: every file will be scanned for secrets. Once the walk has taken enough for the
        one-pass scanner to pay, it compiles in a thread while the walk goes on reading files."""
        nonlocal taken
        if taken is None:
            return
        from . import secrets as secret_scan

        taken += size
        if taken >= secret_scan.MULTI_PATTERN_MIN_BYTES:
            secret_scan.compile_in_background()
            taken = None

    # git's answers for recency and for content hashes come from processes that run while the walk works.
    with ThreadPoolExecutor(max_workers=2) as pool:
        history_job = pool.submit(read_history, root_path.resolve())
        blobs_job = pool.submit(tracked_blobs, root_path.resolve())
        walked = walk(root_path, include=config.include, exclude=config.exclude,
                      max_file_size=config.max_file_size, skip_secret_files=config.redact,
                      known=known if seen else None, keep_read=True,
                      on_taken=on_taken if config.redact and not seen else None)
        lap("walk")
        history = history_job.result()
        blobs = blobs_job.result() if history.available else {}
    if not config.redact:
        log.warning("redaction is OFF (--no-redact): secret files are read and secrets in files go into the pack")
    root_dir = walked.root
    lap("git")
    index = Index.open(root_dir, fingerprint, use_disk=use_cache)
    stored = index.stored()
    reuse: list[str] = []
    restat: dict[str, Stat] = {}
    jobs: list[tuple[str, str, bytes]] = []
    digests: dict[str, tuple[str, Stat]] = {}
    present: list[File] = []
    for file in walked.files:
        language = file.language or "text"
        read = walked.taken.pop(file.path, None)  # its stat from the walk (taken before it read the file, if it did)
        source = read[0] if read is not None else None
        if read is not None:
            stat = Stat(read[1], read[2])
        else:
            try:
                info = os.stat(root_dir / file.path)
            except OSError as exc:  # deleted since the walk
                walked.skip("vanished" if isinstance(exc, FileNotFoundError) else "unreadable", file.path)
                continue
            stat = Stat(info.st_size, info.st_mtime_ns)
        entry = stored.get(file.path)
        fresh = entry is not None and entry.language == language
        if fresh and entry is not None and entry.stat == stat:
            reuse.append(file.path)  # same size and mtime: no read at all
            present.append(file)
            continue
        blob = blobs.get(file.path) if file.path not in history.dirty else None
        if fresh and entry is not None and blob is not None and blob == entry.hash:
            reuse.append(file.path)  # git already knows the content is the same
            restat[file.path] = stat
            present.append(file)
            continue
        if source is None:
            try:
                source = read_source(root_dir / file.path, config.max_file_size)
            except OSError as exc:  # deleted, swapped for a FIFO, grown or locked since the walk
                walked.skip("vanished" if isinstance(exc, FileNotFoundError) else "unreadable", file.path)
                continue
        digest = blob if blob is not None else content_hash(source)
        present.append(file)
        if fresh and entry is not None and entry.hash == digest:
            reuse.append(file.path)
            restat[file.path] = stat
            continue
        jobs.append((file.path, language, source))
        digests[file.path] = (digest, stat)
    lap("hash")
    return Scan(root=root_dir, walked=walked, history=history, index=index, stored=stored, present=present,
                reuse=reuse, restat=restat, jobs=jobs, digests=digests, timings=timings, clock=clock)


def complete(found: Scan, config: Config, progress: Callable[[int, int], None] | None = None,
             write_behind: bool = False) -> Corpus:
    """Parse what the scan found changed, store it, and load the rest from the index: the corpus.
    `write_behind`: the caller asks no BM25 of the corpus, so a big update's full-text rows may still be
    being written while it uses the corpus (`Index.update`)."""
    root_dir, walked, history, index, stored = found.root, found.walked, found.history, found.index, found.stored
    reuse, restat, jobs, digests, present = found.reuse, found.restat, found.jobs, found.digests, found.present
    lap = found.lap

    languages = {f.path: f.language or "text" for f in present}
    current = {f.path for f in present}
    deleted = [path for path in stored if path not in current]
    running = found.start_parsing(config)  # the workers parse while the cached files load
    try:
        cached = dict(index.load(reuse))
        jobs, digests = list(jobs), dict(digests)
        again: list[tuple[str, str, bytes]] = []
        for path in reuse:
            if path not in cached:  # a row that did not decode: parse it again
                try:
                    source = read_source(root_dir / path, config.max_file_size)
                except OSError as exc:
                    walked.skip("vanished" if isinstance(exc, FileNotFoundError) else "unreadable", path)
                    present = [f for f in present if f.path != path]
                    continue
                again.append((path, languages[path], source))
                digests[path] = (stored[path].hash, restat.get(path, stored[path].stat))
        jobs.extend(again)

        total = len(jobs)
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress:
                progress(done, total)

        changed: dict[str, ParsedFile] = {}
        fresh: dict[str, CachedFile] = {}
        warnings: dict[str, str] = {}

        def parse_files() -> Iterator[tuple[str, ParsedFile]]:
            # Rows parsed again start their workers only now: `index.update` first ends any BM25 thread (no fork
            # while it runs), and the run above started only when the scan found jobs (then there is none).
            results = itertools.chain(running.results(advance), _iter_parse(again, config, advance))
            for path, (warning, rows) in results:
                if warning:
                    warnings[path] = warning
                changed[path] = parsed = ParsedFile(*digests[path], languages[path], rows)
                yield path, parsed
                # Decoded as the index holds it (below) now, while the workers parse: after them, the build
                # runs on one core alone, and this would add its whole time (a cold build's graph and columns
                # read every chunk; cached files, decoded when read, are another matter).
                fresh[path] = parsed.cached(path).decoded_now()

        # Each batch is stored as it comes back, while the workers parse the next ones.
        parsing = parse_files()
        written = index.update(parsing, restat, deleted, replacing=[path for path, _, _ in jobs],
                               write_behind=write_behind)
        for _ in parsing:  # the index failed part-way: the rest is still parsed, for an in-memory one
            pass
    finally:
        running.close()  # the workers' results were all read, or nobody will read them
    parsed_files = len(changed)
    for path in sorted(warnings):
        log.warning("%s", warnings[path])
    lap("parse")
    if not written:
        index = _memory_index(index, config, root_dir, changed, cached)
        lap("store")
    # Fresh parses are read as the index holds them, as every other file is: chunks without their text,
    # references and imports (the corpus reads those from the index when it needs them).
    cached.update((path, fresh[path] if path in fresh else parsed.cached(path)) for path, parsed in changed.items())

    line_counts: dict[str, int] = {}
    structures: dict[str, str] = {}
    structure = hashlib.sha1()
    content = hashlib.sha1(f"{index.fingerprint}\0".encode())
    present = [f for f in present if f.path in cached]  # less any dropped just above
    for file in present:
        entry = cached[file.path]
        digest = changed[file.path].structure if file.path in changed else stored[file.path].structure
        content.update(f"{file.path}\0{languages[file.path]}\0{entry.hash}\0".encode())
        line_counts[file.path] = entry.last_line
        structure.update(f"{file.path}\0{digest}\0".encode())
        structures[file.path] = digest
    facts = read_repo_facts(root_dir, [f.path for f in present])
    structure.update(facts.fingerprint().encode())
    lap("load")
    return Corpus(root=root_dir, files=present, chunks=ChunkList(cached[f.path] for f in present),
                  line_counts=line_counts, skipped=walked.skipped, timings=found.timings, history=history, facts=facts,
                  index=index, parsed_files=parsed_files, structure_key=structure.hexdigest(), structures=structures,
                  content_key=content.hexdigest())


def _iter_parse(jobs: Sequence[tuple[str, str, bytes]], config: Config,
                progress: Callable[[int], None] | None = None) -> Iterator[tuple[str, Any]]:
    from .parallel import iter_parse  # here: it brings multiprocessing and the secret detectors

    return iter_parse(jobs, config.class_split_lines, config.block_max_lines, progress=progress,
                      redact_secrets=config.redact)


def _start_parse(jobs: Sequence[tuple[str, str, bytes]], config: Config) -> ParseRun:
    from .parallel import ParseRun

    return ParseRun(jobs, config.class_split_lines, config.block_max_lines, redact_secrets=config.redact)


def _parse(jobs: Sequence[tuple[str, str, bytes]], config: Config) -> dict[str, Any]:
    return dict(_iter_parse(jobs, config))


def _memory_index(failed: Index, config: Config, root: Path, changed: dict[str, ParsedFile],
                  cached: dict[str, CachedFile]) -> Index:
    """The disk index could not take this build's parses: carry on with everything in memory.

    Cached files' rows are copied from the failed index if it can still be read; otherwise the files are
    parsed again from disk into `changed`."""
    everything = dict(changed)
    for path, entry in list(cached.items()):
        language = entry.language if entry.count else "text"
        try:
            rows = failed.rows(path, entry.hash)
        except sqlite3.Error:
            rows = None
        if rows is None:
            del cached[path]
            try:
                source = read_source(root / path, config.max_file_size)
            except OSError:
                continue  # gone since the walk
            _, rows = _parse([(path, language, source)], config)[path]
            changed[path] = ParsedFile(entry.hash, entry.stat, language, rows)
        everything[path] = ParsedFile(entry.hash, entry.stat, language, rows)
    failed.close()
    memory = Index.open(Path("."), failed.fingerprint, use_disk=False)
    memory.update(everything.items(), {}, [])
    return memory


def rank(corpus: Corpus, config: Config, query: str | None = None,
         focus: Sequence[str] = (), changed_lines: Mapping[str, Sequence[tuple[int, int]]] | None = None,
         ) -> Ranking:
    """Score every chunk of the corpus, best first. `changed_lines` (path -> line ranges, from a staged
    change) makes the chunks holding those lines the focus's centre."""
    import numpy as np

    from .score import compute_features, score_chunks
    from .signals import focus as focus_signal
    from .signals import query as query_signal
    from .signals import recency
    from .signals.query_features import title_of

    started = time.perf_counter()
    chunks = corpus.chunks
    columns = corpus.columns
    extra: dict[str, Sequence[float]] = {
        "recency": recency.compute(chunks, corpus.history),
        "centrality": corpus.centrality(),
        "definitions": columns.definitions,
        "tests": columns.is_test,
        "todo": columns.todo,
    }
    if query and query.strip():
        named = query_signal.named_match(chunks, corpus.graph, query)  # while the index may still be asking BM25
        learned = query_signal.LearnedInputs(
            title_bm25=corpus.bm25(title_of(query)), sizes=corpus.chunk_sizes(),
            priors={name: np.asarray(extra[name], dtype=np.float64)
                    for name in ("centrality", "recency", "definitions")},
            links=corpus.chunk_links, commits=corpus.history.commits, bm25_terms=corpus.bm25_terms,
            columns=columns)
        extra["query"] = query_signal.compute(chunks, corpus.graph, query, corpus.bm25(query), learned, named)
    if focus:
        centre = changed_chunks(chunks, changed_lines) if changed_lines else None
        extra["focus"] = focus_signal.compute(corpus.graph, chunk_paths(chunks), focus, centre)
        corpus.remember_graph()
    weights = config.weights
    if query and query.strip() and query_signal.USE_LEARNED:  # the model weighs these itself
        weights = {**weights, **dict.fromkeys(query_signal.LEARNED_INCLUDES, 0.0)}
    features = compute_features(chunks, extra)
    ranked = score_chunks(chunks, features, weights, with_text=corpus.with_text,
                          order=(columns.file_numbers, columns.start_lines))
    corpus.remember_columns()
    corpus.timings["rank"] = time.perf_counter() - started
    return ranked


def changed_chunks(chunks: ChunkList, changed_lines: Mapping[str, Sequence[tuple[int, int]]]) -> list[int]:
    """Positions of the chunks that hold any of the changed lines (only the changed files' chunks are read)."""
    found = []
    for path, ranges in changed_lines.items():
        first, file_chunks = chunks.of_file(path)
        found.extend(first + i for i, chunk in enumerate(file_chunks)
                     if any(start <= chunk.end_line and end >= chunk.start_line for start, end in ranges))
    return sorted(found)


def pack_corpus(
    corpus: Corpus,
    ranked: Sequence[ScoredChunk],
    budget: int,
    config: Config,
    fmt: str = "md",
    query: str | None = None,
    staged: StagedChange | None = None,
) -> Pack:
    """Pack ranked chunks of a corpus into a budget, in one text format (md, xml or plain). A staged
    change's diff goes first, counted in the budget (cut short if it would take more than its share)."""
    from .pack import pack as pack_chunks

    fmt = normalise_format(fmt)
    tokenizer = get_tokenizer(config.tokenizer)
    header = ""
    report = None
    if staged is not None:
        diff = staged.diff
        report = {"files": staged.files, "deleted": staged.deleted}
        if config.redact:  # the diff goes to the model too: no secret files, no secrets
            from . import secrets

            diff, left_out = without_files(diff, secrets.is_secret_file)
            diff, findings = secrets.redact(diff)
            report["secret_files_left_out"] = left_out
            report["diff_redactions"] = [{"line": f.line, "kind": f.kind} for f in findings]
        header, diff_tokens = fit_diff(Style(fmt), diff, int(budget * MAX_DIFF_SHARE), tokenizer)
        report["diff_tokens"] = diff_tokens
    result = pack_chunks(ranked, budget, tokenizer, fmt, corpus.root.name, corpus.line_counts, header=header,
                         chunk_counter=corpus.chunk_counter(tokenizer))
    corpus.save_counts()
    return Pack(root=str(corpus.root), budget=budget, tokens=result.tokens, tokenizer=tokenizer.name,
                query=query, format=fmt, text=result.text, chunks=result.chunks,
                files_considered=len(corpus.files), chunks_considered=len(corpus.chunks), staged=report)


def fit_diff(style: Style, diff: str, limit: int, tokenizer: Tokenizer) -> tuple[str, int]:
    """The diff block within `limit` tokens: whole, or its first lines and a note of how many are left out."""
    if not diff.strip():
        return "", 0
    block = style.diff_block(diff)
    tokens = tokenizer.count(block)
    if tokens <= limit:
        return block, tokens
    lines = diff.splitlines(keepends=True)
    low, high = 0, len(lines)  # the most lines that fit, by bisection on the exact count
    best, best_tokens = "", 0
    while low < high:
        middle = (low + high + 1) // 2
        cut = "".join(lines[:middle]) + f"⋮ diff cut here: {len(lines) - middle} more lines\n"
        candidate = style.diff_block(cut)
        count = tokenizer.count(candidate)
        if count <= limit:
            low, best, best_tokens = middle, candidate, count
        else:
            high = middle - 1
    return best, best_tokens


def build(
    root: str | Path,
    budget: int | str | None = None,
    query: str | None = None,
    focus: Iterable[str] = (),
    config: Config | Mapping[str, Any] | None = None,
    format: str = "md",
    use_cache: bool = True,
    staged: bool = False,
    tokenizer: str | None = None,
) -> Pack:
    """Build a pack of `root` within `budget` tokens.

    `budget` takes an integer or `32k`-style text (k = 1024); by default it is the config's (32k).
    `tokenizer` counts the pack text: `tiktoken:cl100k_base` (default), `tiktoken:o200k_base`, `hf:PATH`
    (tokenizer.json or a folder holding one), `gguf:PATH` (a GGUF model's vocabulary); it wins over the config.
    `format` is the pack text's format: md (default), xml or plain. JSON is `Pack.to_json_dict()`.
    `use_cache=False` keeps the index in memory: nothing is written under `root/.ctxpack/`.
    `staged=True` centres the pack on the staged change (`git diff --cached`), whose diff goes first.
    """
    root_path = Path(root)
    if not root_path.exists():
        raise UsageError(f"path does not exist: {root}")
    resolved = resolve_config(root_path, config)
    if budget is not None:
        resolved = resolved.with_overrides(budget=parse_budget(budget))
    if tokenizer is not None:
        resolved = resolved.with_overrides(tokenizer=tokenizer)
    return build_with_corpus(root_path, resolved, query=query, focus=focus, fmt=format, use_cache=use_cache,
                             staged=staged)[0]


def build_with_corpus(root: Path, config: Config, query: str | None = None, focus: Iterable[str] = (),
                      fmt: str = "md", use_cache: bool = True,
                      progress: Callable[[int, int], None] | None = None,
                      staged: bool | StagedChange = False) -> tuple[Pack, Corpus]:
    """`build` for callers that also want the corpus (the CLI reports its skips and timings). `staged` may
    be a `StagedChange` a caller already read.

    A build whose every input is as an earlier build's (see `result_key`) returns that build's pack from
    the index without ranking or packing; its corpus then has no chunks."""
    with paused_collector():
        return _build_with_corpus(root, config, query, focus, fmt, use_cache, progress, staged)


@contextmanager
def paused_collector() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration (restored after). A build makes ~10^5
    long-lived acyclic objects (chunks, their tuples), and each full collection walks them all again:
    measured, ~0.15 s of a 1.2 s warm query build. Parse workers turn it back on (`parallel`)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if not gc.get_freeze_count():
                # Every young object (the build's, and any of the caller's) goes to the oldest generation as
                # it is (list splices, no walk), rather than be walked by the young-generation collection the
                # next allocation would start (~0.05 s); the next full collection sees them as usual.
                # Skipped when the caller keeps frozen objects: unfreeze would release them.
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def _build_with_corpus(root: Path, config: Config, query: str | None, focus: Iterable[str], fmt: str,
                       use_cache: bool, progress: Callable[[int, int], None] | None,
                       staged: bool | StagedChange) -> tuple[Pack, Corpus]:
    change = staged if isinstance(staged, StagedChange) else read_staged(root) if staged else None
    if change is not None and change.empty:
        log.warning("nothing is staged under %s: the pack has no change to centre on", root)
    focus = list(focus)
    focus_paths = resolve_focus(root, focus)
    found = scan(root, config, use_cache)
    try:
        key = result_key(found, config, query, focus_paths, fmt) if change is None else None
        if key is not None and found.unchanged:
            cached = _cached_result(found, key)
            if cached is not None:
                return cached
        if query and query.strip() and found.unchanged:
            _prefetch_bm25(found.index, query)
        elif found.jobs:
            check_spec(config.tokenizer)  # a mistaken tokenizer fails at once, before any worker starts
            found.start_parsing(config)  # the workers parse while the tokenizer loads
        # A bad tokenizer fails now, not after the parse (it is cached for the pack); its vocabulary is kept in
        # the index (not in an in-memory one: nothing would read it again).
        get_tokenizer(config.tokenizer, vocabularies=found.index if found.index.location != ":memory:" else None)
        found.lap("tokenizer")
    except BaseException:
        found.close()
        raise
    corpus, ranked = collect_and_rank(root, config, query, focus, use_cache, progress, change, found=found)
    try:
        if corpus.index is not None:  # what the ranking kept is copied into the db file while the build packs
            corpus.index.checkpoint_in_background()
        started = time.perf_counter()
        pack = pack_corpus(corpus, ranked, config.budget, config, fmt=fmt, query=query, staged=change)
        corpus.timings["pack"] = time.perf_counter() - started
        if key is not None and corpus.index is not None and len(corpus.files) == len(found.present):
            corpus.index.put_result(key, _pack_to_json(pack))
    finally:
        closing = time.perf_counter()
        corpus.close()  # waits for the index writes left behind and the WAL copy
        corpus.timings["close"] = time.perf_counter() - closing
    return pack, corpus


def _prefetch_bm25(index: index_module.Index, query: str) -> None:
    """Have the query's BM25 questions (the whole query, its first line) asked of the index in a thread
    while the build loads the corpus and the ranking works out what the query names. Started after the scan,
    when git and the walk are done with the cores and the build is known to change no full-text row."""
    from .signals.query_features import title_of
    from .terms import query_terms

    if index.location != ":memory:":
        index.adopt(index_module.BM25Prefetch(index.location, index.fingerprint,
                                              [query_terms(query), query_terms(title_of(query))]))


RESULT_FORMAT = "1"  # of `_pack_to_json`


def result_key(found: Scan, config: Config, query: str | None, focus: Sequence[str], fmt: str) -> str | None:
    """What a pack depends on, as one digest: ctxpack's code and its libraries, the parse settings, the
    root, every file's path, language and content hash as the scan verified them, the git history (for
    recency), the config (budget, tokenizer, weights, ...), query, focus and format. None when a pack
    must not be reused: an in-memory index, or a tokenizer whose counts hang on more than its name (a
    file's content, a server)."""
    if found.index.location == ":memory:" or not config.tokenizer.startswith("tiktoken:"):
        return None
    digest = hashlib.sha256()
    history = found.history
    head = [RESULT_FORMAT, _code_fingerprint(), found.index.fingerprint, str(found.root), repr(config),
            normalise_format(fmt), query, list(focus), history.available, history.newest,
            sorted(history.last_commit.items()), sorted(history.touches.items()), sorted(history.dirty),
            history.commits]
    digest.update(json.dumps(head, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    for path, language, content in found.file_hashes():
        digest.update(f"\0{path}\0{language}\0{content}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _cached_result(found: Scan, key: str) -> tuple[Pack, Corpus] | None:
    value = found.index.result(key)
    if value is None:
        return None
    try:
        pack = _pack_from_json(value)
    except (ValueError, TypeError, KeyError):  # a damaged row is a miss
        log.warning("ignoring a damaged cached pack; building it again")
        return None
    if found.restat:  # same content, new stat: remembered so the next scan need not hash them
        found.index.update((), found.restat, [])
    found.index.close()
    found.lap("cached pack")
    corpus = Corpus(root=found.root, files=found.present, chunks=ChunkList(()), line_counts={},
                    skipped=found.walked.skipped, timings=found.timings, history=found.history)
    return pack, corpus


def _pack_to_json(pack: Pack) -> str:
    chunks = [[p.chunk.path, p.chunk.language, p.chunk.kind, p.chunk.name, p.chunk.start_line, p.chunk.end_line,
               p.chunk.text, p.chunk.signature, p.chunk.signature_line, p.chunk.symbols, p.chunk.references,
               p.chunk.imports, p.chunk.todo_count, p.chunk.is_test, p.chunk.redactions,
               p.mode, p.score, p.features, p.tokens, p.section] for p in pack.chunks]
    return json.dumps([pack.root, pack.budget, pack.tokens, pack.tokenizer, pack.query, pack.format, pack.text,
                       pack.files_considered, pack.chunks_considered, chunks], ensure_ascii=False)


def _pack_from_json(value: str) -> Pack:
    root, budget, tokens, tokenizer, query, fmt, text, files, chunk_count, rows = json.loads(value)
    chunks = []
    for (path, language, kind, name, start, end, chunk_text, signature, signature_line, symbols, references,
         imports, todo, is_test, redactions, mode, score, features, chunk_tokens, section) in rows:
        chunk = Chunk(path, language, kind, name, start, end, chunk_text, signature, signature_line, tuple(symbols),
                      tuple(references), tuple(imports), todo, is_test,
                      tuple((line, what) for line, what in redactions))
        chunks.append(PackedChunk(chunk, mode, score, dict(features), chunk_tokens, section))
    return Pack(root=root, budget=budget, tokens=tokens, tokenizer=tokenizer, query=query, format=fmt, text=text,
                chunks=chunks, files_considered=files, chunks_considered=chunk_count)


@lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """Every source file of ctxpack and its query files, and the versions of the libraries whose results
    reach a pack (numbers, graph, tokens)."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    for language in sorted(GRAMMARS):
        with suppress(OSError):
            digest.update(language.encode() + b"\0" + query_source(language).encode())
    for distribution in ("context-pack", "numpy", "tiktoken"):
        digest.update(f"{distribution}={metadata_version(distribution)}".encode())
    digest.update(f"{sys.version}\0{sys.platform}".encode())  # an index copied to another Python is not trusted
    return digest.hexdigest()


def collect_and_rank(root: Path, config: Config, query: str | None = None, focus: Iterable[str] = (),
                     use_cache: bool = True, progress: Callable[[int, int], None] | None = None,
                     staged: StagedChange | None = None, found: Scan | None = None) -> tuple[Corpus, Ranking]:
    """Collect and rank a root (`found`: its scan, if the caller made one). The corpus's index stays open
    (chunk texts are read from it as the ranking is used): call `corpus.close()` when done."""
    focus_paths = resolve_focus(root, focus)
    with paused_collector():
        # Without a question, the ranking needs no full-text row: a big update's may be written behind it.
        corpus = complete(found or scan(root, config, use_cache), config, progress,
                          write_behind=not (query and query.strip()))
    changed_lines = None
    if staged is not None:
        known = {f.path for f in corpus.files}
        focus_paths = sorted({*focus_paths, *(path for path in staged.files if path in known)})
        changed_lines = staged.lines
    try:
        with paused_collector():
            return corpus, rank(corpus, config, query=query, focus=focus_paths, changed_lines=changed_lines)
    except BaseException:
        corpus.close()
        raise


def index_stats(root: Path) -> dict[str, Any]:
    """What the index holds (without changing it) and what the walk skips."""
    config = resolve_config(root, {})
    walked = walk(root, include=config.include, exclude=config.exclude, max_file_size=config.max_file_size,
                  skip_secret_files=config.redact)
    figures = index_module.read_stats(walked.root, parse_fingerprint(config))
    figures["walked"] = len(walked.files)
    figures["skipped"] = {reason: len(paths) for reason, paths in walked.skipped.items()}
    return figures


def resolve_focus(root: Path, focus: Iterable[str]) -> list[str]:
    """Focus paths relative to the root, with `/`; each must exist inside it."""
    resolved_root = root.resolve()
    result = []
    for item in focus:
        candidate = Path(item)
        if not candidate.is_absolute() and not candidate.exists():
            candidate = root / item
        if not candidate.exists():
            raise UsageError(f"focus path does not exist: {item}")
        try:
            result.append(candidate.resolve().relative_to(resolved_root).as_posix())
        except ValueError:
            raise UsageError(f"focus path is outside the root: {item}") from None
    return result

"""The library: walk → parse → signals → score → pack → render, as `build()` and its parts."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import index as index_module
from . import parallel as parallel_module
from . import parse as parse_module
from . import secrets as secrets_module
from . import terms as terms_module
from .config import Config, load_config, parse_budget
from .errors import UsageError
from .history import FileHistory, read_history, tracked_blobs
from .index import CachedFile, Index, ParsedFile, Stat, content_hash
from .lang import GRAMMARS, query_source
from .model import Chunk, File, Pack, ScoredChunk
from .pack import pack as pack_chunks
from .parallel import parse_many
from .render import normalise_format
from .repo_facts import RepoFacts, read_repo_facts
from .score import compute_features, score_chunks
from .signals import centrality, recency
from .signals import focus as focus_signal
from .signals import query as query_signal
from .signals.graph import CodeGraph, build_graph
from .terms import chunk_document, query_terms
from .tokens import get_tokenizer
from .walk import read_source, walk

log = logging.getLogger("context_pack")


@dataclass
class Corpus:
    """Everything query-independent about a root: its files and their chunks."""

    root: Path
    files: list[File]
    chunks: list[Chunk]
    line_counts: dict[str, int]
    skipped: dict[str, list[str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    history: FileHistory = field(default_factory=FileHistory)
    facts: RepoFacts = field(default_factory=RepoFacts)
    index: Index | None = None
    parsed_files: int = 0  # how many files this build had to parse
    _graph: CodeGraph | None = None

    @property
    def graph(self) -> CodeGraph:
        if self._graph is None:
            self._graph = build_graph(self.chunks, self.facts)
        return self._graph

    def bm25(self, query: str) -> np.ndarray:
        """Each chunk's BM25 score for the query's terms, from the index's full-text table."""
        scores = np.zeros(len(self.chunks))
        if self.index is None:
            return scores
        position: dict[tuple[str, int], int] = {}
        ordinal = 0
        for i, chunk in enumerate(self.chunks):
            ordinal = 0 if i == 0 or self.chunks[i - 1].path != chunk.path else ordinal + 1
            position[(chunk.path, ordinal)] = i
        for path, number, score in self.index.bm25(query_terms(query)):
            found = position.get((path, number))
            if found is not None:
                scores[found] = score
        return scores


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
    for module in (parse_module, terms_module, index_module, parallel_module, secrets_module):
        parts.append(hashlib.sha1(Path(module.__file__ or "").read_bytes()).hexdigest())
    for language, (module, _) in sorted(GRAMMARS.items()):
        parts.append(f"{language}={metadata_version(module.replace('_', '-'))}")
        try:
            parts.append(hashlib.sha1(query_source(language).encode()).hexdigest())
        except OSError:
            parts.append("no-query")
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


def metadata_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def collect(root: str | Path, config: Config | None = None, use_cache: bool = True,
            progress: Callable[[int, int], None] | None = None) -> Corpus:
    """Walk and parse a root into chunks, re-using `.ctxpack/index.db` for files that did not change.

    `use_cache=False` touches no disk (an in-memory index). `progress(done, total)` reports parsing.
    """
    root_path = Path(root)
    config = resolve_config(root_path, config)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    walked = walk(root_path, include=config.include, exclude=config.exclude, max_file_size=config.max_file_size,
                  skip_secret_files=config.redact)
    if not config.redact:
        log.warning("redaction is OFF (--no-redact): secret files are read and secrets in files go into the pack")
    root_dir = walked.root
    lap("walk")
    history = read_history(root_dir)
    blobs = tracked_blobs(root_dir) if history.available else {}
    lap("git")
    index = Index.open(root_dir, parse_fingerprint(config), use_disk=use_cache)
    stored = index.stored()

    reuse: list[str] = []
    restat: dict[str, Stat] = {}
    jobs: list[tuple[str, str, bytes]] = []
    digests: dict[str, tuple[str, Stat]] = {}
    present: list[File] = []
    for file in walked.files:
        language = file.language or "text"
        try:
            info = os.stat(root_dir / file.path)
        except OSError as exc:  # deleted since the walk
            walked.skip("vanished" if isinstance(exc, FileNotFoundError) else "unreadable", file.path)
            continue
        stat = Stat(info.st_size, info.st_mtime_ns)
        entry = stored.get(file.path)
        fresh = entry is not None and entry[2] == language
        if fresh and entry is not None and entry[1] == stat:
            reuse.append(file.path)  # same size and mtime: no read at all
            present.append(file)
            continue
        blob = blobs.get(file.path) if file.path not in history.dirty else None
        if fresh and entry is not None and blob is not None and blob == entry[0]:
            reuse.append(file.path)  # git already knows the content is the same
            restat[file.path] = stat
            present.append(file)
            continue
        try:
            source = read_source(root_dir / file.path, config.max_file_size)
        except OSError as exc:  # deleted, swapped for a FIFO, grown or locked since the walk
            walked.skip("vanished" if isinstance(exc, FileNotFoundError) else "unreadable", file.path)
            continue
        digest = blob if blob is not None else content_hash(source)
        present.append(file)
        if fresh and entry is not None and entry[0] == digest:
            reuse.append(file.path)
            restat[file.path] = stat
            continue
        jobs.append((file.path, language, source))
        digests[file.path] = (digest, stat)
    lap("hash")

    total = len(jobs)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress:
            progress(done, total)

    parsed = parse_many(jobs, config.class_split_lines, config.block_max_lines, progress=advance,
                        redact_secrets=config.redact)
    lap("parse")
    for path in sorted(parsed):
        if parsed[path][0].warning:
            log.warning("%s", parsed[path][0].warning)
    languages = {f.path: f.language or "text" for f in present}
    current = {f.path for f in present}
    changed = {path: ParsedFile(*digests[path], languages[path], result.chunks, terms)
               for path, (result, terms) in parsed.items()}
    deleted = [path for path in stored if path not in current]
    cached = dict(index.load(reuse))
    for path in reuse:
        if path not in cached:  # a row that did not decode: parse it again
            try:
                source = read_source(root_dir / path, config.max_file_size)
            except OSError as exc:
                walked.skip("vanished" if isinstance(exc, FileNotFoundError) else "unreadable", path)
                present = [f for f in present if f.path != path]
                continue
            result, terms = parse_many([(path, languages[path], source)], config.class_split_lines,
                                       config.block_max_lines, redact_secrets=config.redact)[path]
            stat = stored[path][1] if path not in restat else restat[path]
            changed[path] = ParsedFile(stored[path][0], stat, languages[path], result.chunks, terms)
    if not index.update(changed, restat, deleted):
        index = _memory_index(index, config, changed, cached)
    lap("store")

    chunks: list[Chunk] = []
    line_counts: dict[str, int] = {}
    for file in present:
        file_chunks = cached[file.path].chunks if file.path in cached else changed[file.path].chunks
        chunks.extend(file_chunks)
        line_counts[file.path] = file_chunks[-1].end_line if file_chunks else 0
    facts = read_repo_facts(root_dir, [f.path for f in present])
    lap("load")
    return Corpus(root=root_dir, files=present, chunks=chunks, line_counts=line_counts, skipped=walked.skipped,
                  timings=timings, history=history, facts=facts, index=index, parsed_files=len(parsed))


def _memory_index(failed: Index, config: Config, changed: dict[str, ParsedFile],
                  cached: dict[str, CachedFile]) -> Index:
    """The disk index could not take this build's parses: carry on with everything in memory."""
    failed.close()
    memory = Index.open(Path("."), failed.fingerprint, use_disk=False)
    everything = dict(changed)
    for path, entry in cached.items():
        terms = [chunk_document(chunk) for chunk in entry.chunks]
        everything[path] = ParsedFile(entry.hash, entry.stat, entry.chunks[0].language if entry.chunks else "text",
                                      entry.chunks, terms)
    memory.update(everything, {}, [])
    return memory


def rank(corpus: Corpus, config: Config, query: str | None = None,
         focus: Sequence[str] = ()) -> list[ScoredChunk]:
    """Score every chunk of the corpus, best first."""
    started = time.perf_counter()
    chunks = corpus.chunks
    extra: dict[str, Sequence[float]] = {
        "recency": recency.compute(chunks, corpus.history),
        "centrality": centrality.compute(corpus.graph),
    }
    if query and query.strip():
        extra["query"] = query_signal.compute(chunks, corpus.graph, query, corpus.bm25(query))
    if focus:
        extra["focus"] = focus_signal.compute(corpus.graph, [c.path for c in chunks], focus)
    features = compute_features(chunks, {k: np.asarray(v).tolist() for k, v in extra.items()})
    ranked = score_chunks(chunks, features, config.weights)
    corpus.timings["rank"] = time.perf_counter() - started
    return ranked


def pack_corpus(
    corpus: Corpus,
    ranked: Sequence[ScoredChunk],
    budget: int,
    config: Config,
    fmt: str = "md",
    query: str | None = None,
) -> Pack:
    """Pack ranked chunks of a corpus into a budget, in one text format (md, xml or plain)."""
    fmt = normalise_format(fmt)
    tokenizer = get_tokenizer(config.tokenizer)
    result = pack_chunks(ranked, budget, tokenizer, fmt, corpus.root.name, corpus.line_counts)
    return Pack(root=str(corpus.root), budget=budget, tokens=result.tokens, tokenizer=tokenizer.name,
                query=query, format=fmt, text=result.text, chunks=result.chunks,
                files_considered=len(corpus.files), chunks_considered=len(corpus.chunks))


def build(
    root: str | Path,
    budget: int | str | None = None,
    query: str | None = None,
    focus: Iterable[str] = (),
    config: Config | Mapping[str, Any] | None = None,
    format: str = "md",
    use_cache: bool = True,
) -> Pack:
    """Build a pack of `root` within `budget` tokens.

    `budget` takes an integer or `32k`-style text (k = 1024); by default it is the config's (32k).
    `format` is the pack text's format: md (default), xml or plain. JSON is `Pack.to_json_dict()`.
    `use_cache=False` keeps the index in memory: nothing is written under `root/.ctxpack/`.
    """
    root_path = Path(root)
    if not root_path.exists():
        raise UsageError(f"path does not exist: {root}")
    resolved = resolve_config(root_path, config)
    if budget is not None:
        resolved = resolved.with_overrides(budget=parse_budget(budget))
    return build_with_corpus(root_path, resolved, query=query, focus=focus, fmt=format, use_cache=use_cache)[0]


def build_with_corpus(root: Path, config: Config, query: str | None = None, focus: Iterable[str] = (),
                      fmt: str = "md", use_cache: bool = True,
                      progress: Callable[[int, int], None] | None = None) -> tuple[Pack, Corpus]:
    """`build` for callers that also want the corpus (the CLI reports its skips and timings)."""
    corpus, ranked = collect_and_rank(root, config, query, focus, use_cache, progress)
    started = time.perf_counter()
    pack = pack_corpus(corpus, ranked, config.budget, config, fmt=fmt, query=query)
    corpus.timings["pack"] = time.perf_counter() - started
    return pack, corpus


def collect_and_rank(root: Path, config: Config, query: str | None = None, focus: Iterable[str] = (),
                     use_cache: bool = True, progress: Callable[[int, int], None] | None = None,
                     ) -> tuple[Corpus, list[ScoredChunk]]:
    """Collect and rank a root, then close its index (ranking is the last stage that reads it)."""
    focus_paths = resolve_focus(root, focus)
    corpus = collect(root, config, use_cache=use_cache, progress=progress)
    try:
        return corpus, rank(corpus, config, query=query, focus=focus_paths)
    finally:
        if corpus.index is not None:
            corpus.index.close()


def index_stats(root: Path) -> dict[str, Any]:
    """What the index holds (without changing it) and what the walk skips."""
    config = resolve_config(root, {})
    walked = walk(root, include=config.include, exclude=config.exclude, max_file_size=config.max_file_size,
                  skip_secret_files=config.redact)
    index = Index.open(walked.root, parse_fingerprint(config))
    try:
        figures = index.stats()
    finally:
        index.close()
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

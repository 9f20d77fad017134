"""The library: walk → parse → signals → score → pack → render, as `build()` and its parts."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config, load_config, parse_budget
from .errors import UsageError
from .history import FileHistory, read_history
from .model import Chunk, File, Pack, ScoredChunk
from .pack import pack as pack_chunks
from .parse import parse_file
from .render import normalise_format
from .repo_facts import RepoFacts, read_repo_facts
from .score import compute_features, score_chunks
from .signals import centrality, recency
from .signals import focus as focus_signal
from .signals import query as query_signal
from .signals.graph import CodeGraph, build_graph
from .tokens import get_tokenizer
from .walk import walk

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
    _graph: CodeGraph | None = None
    _query_index: query_signal.QueryIndex | None = None

    @property
    def graph(self) -> CodeGraph:
        if self._graph is None:
            self._graph = build_graph(self.chunks, self.facts)
        return self._graph

    @property
    def query_index(self) -> query_signal.QueryIndex:
        if self._query_index is None:
            self._query_index = query_signal.QueryIndex(self.chunks)
        return self._query_index


def resolve_config(root: Path, config: Config | Mapping[str, Any] | None) -> Config:
    if isinstance(config, Config):
        return config
    return load_config(root, dict(config or {}))


def collect(root: str | Path, config: Config | None = None) -> Corpus:
    """Walk and parse a root into chunks."""
    root_path = Path(root)
    config = resolve_config(root_path, config)
    started = time.perf_counter()
    walked = walk(root_path, include=config.include, exclude=config.exclude, max_file_size=config.max_file_size)
    walked_at = time.perf_counter()
    chunks: list[Chunk] = []
    line_counts: dict[str, int] = {}
    files: list[File] = []
    for file in walked.files:
        try:
            source = (walked.root / file.path).read_bytes()
        except OSError as exc:  # deleted or unreadable since the walk
            log.warning("skipping %s: %s", file.path, exc.strerror or exc)
            walked.skip("unreadable", file.path)
            continue
        result = parse_file(file.path, source, file.language or "text", config.class_split_lines,
                            config.block_max_lines)
        if result.warning:
            log.warning("%s", result.warning)
        files.append(file)
        chunks.extend(result.chunks)
        line_counts[file.path] = result.chunks[-1].end_line if result.chunks else 0
    parsed_at = time.perf_counter()
    history = read_history(walked.root)
    facts = read_repo_facts(walked.root, [f.path for f in files])
    done = time.perf_counter()
    return Corpus(root=walked.root, files=files, chunks=chunks, line_counts=line_counts, skipped=walked.skipped,
                  timings={"walk": walked_at - started, "parse": parsed_at - walked_at, "git": done - parsed_at},
                  history=history, facts=facts)


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
        extra["query"] = query_signal.compute(chunks, corpus.graph, corpus.query_index, query)
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
) -> Pack:
    """Build a pack of `root` within `budget` tokens.

    `budget` takes an integer or `32k`-style text (k = 1024); by default it is the config's (32k).
    `format` is the pack text's format: md (default), xml or plain. JSON is `Pack.to_json_dict()`.
    """
    root_path = Path(root)
    if not root_path.exists():
        raise UsageError(f"path does not exist: {root}")
    resolved = resolve_config(root_path, config)
    if budget is not None:
        resolved = resolved.with_overrides(budget=parse_budget(budget))
    return build_with_corpus(root_path, resolved, query=query, focus=focus, fmt=format)[0]


def build_with_corpus(root: Path, config: Config, query: str | None = None, focus: Iterable[str] = (),
                      fmt: str = "md") -> tuple[Pack, Corpus]:
    """`build` for callers that also want the corpus (the CLI reports its skips and timings)."""
    focus_paths = resolve_focus(root, focus)
    corpus = collect(root, config)
    ranked = rank(corpus, config, query=query, focus=focus_paths)
    started = time.perf_counter()
    pack = pack_corpus(corpus, ranked, config.budget, config, fmt=fmt, query=query)
    corpus.timings["pack"] = time.perf_counter() - started
    return pack, corpus


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

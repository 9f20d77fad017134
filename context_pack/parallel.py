"""Parse many files across all cores: a process pool over batches, results merged in the parent.

Parsing runs tree-sitter's C code on bytes nobody has checked, and a grammar can crash on garbage (the
Ruby grammar segfaults on 40 KB of random punctuation). So parsing always happens in worker processes,
never in the caller's: a batch whose worker dies is redone in a process of its own, and if it dies again,
file by file; the file that kills its process is read as blank-line blocks, with a warning. The caller
never sees the crash.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from dataclasses import replace

from .index import FileRows, encode_file
from .model import Chunk
from .parse import ParseResult, parse_blocks, parse_file
from .secrets import Finding, redact, warm_up
from .terms import chunk_document

PARALLEL_MIN_FILES = 48  # below this, one worker process takes all the files
BATCH_BYTES = 256 * 1024

Job = tuple[str, str, bytes]  # path, language, source
Parsed = tuple[ParseResult, list[str]]  # the parse, and each chunk's full-text document
Encoded = tuple[str | None, FileRows]  # the parse's warning, and the rows the index stores


def parse_with_terms(job: Job, class_split_lines: int, block_max_lines: int, redact_secrets: bool = True,
                     use_grammar: bool = True) -> Parsed:
    """Redact, parse, and make each chunk's full-text document (in the calling process: see iter_parse).

    Secrets are redacted here, before the parse, so that nothing downstream ever holds one: not the chunks,
    their signatures, names or full-text documents, not the index on disk. Warm builds pay nothing for the
    scan (the index keeps redacted chunks), and token counts and the budget see the text the model reads.
    """
    path, language, source = job
    findings: list[Finding] = []
    if redact_secrets:
        text = source.decode("utf-8", errors="replace")
        try:
            redacted, findings = redact(text, path)
        except Exception as exc:  # a detector failed: leave the file out rather than risk shipping a secret
            return ParseResult(chunks=[], warning=f"{path}: could not scan for secrets ({exc}); left out"), []
        if findings:
            source = redacted.encode("utf-8")
    if use_grammar:
        result = parse_file(path, source, language, class_split_lines, block_max_lines, with_definitions=False)
    else:
        result = parse_blocks(path, source, language, block_max_lines)
        result.warning = f"{path}: the {language} parser crashed on this file; using blank-line blocks"
    if findings:
        result.chunks = _attach(result.chunks, findings)
    return result, [chunk_document(chunk) for chunk in result.chunks]


def _attach(chunks: list[Chunk], findings: list[Finding]) -> list[Chunk]:
    """Each chunk learns the redactions on its lines (a private key running into it counts at its first line)."""
    result = []
    for chunk in chunks:
        own = tuple((max(f.line, chunk.start_line), f.kind) for f in findings
                    if f.line <= chunk.end_line and f.end >= chunk.start_line)
        result.append(replace(chunk, redactions=own) if own else chunk)
    return result


def _die_with_parent(parent: int) -> None:
    """A worker dies with the build that started it. Forked workers share the task pipe, so a SIGKILLed
    build would otherwise leave them waiting on it forever (measured: two idle parsers per kill).
    It also turns the garbage collector back on, which a forked worker inherits paused from the build
    (`pipeline.paused_collector`): parsing makes cyclic garbage (measured: workers at ~580 MB without it).
    What the worker inherits is frozen first, so that no collection walks the parent's objects (measured on
    the standard library: 13.5 s of parse CPU with them walked, 12.4 s frozen)."""
    gc.freeze()
    gc.enable()
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the build died before the line above took effect
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def parse_encoded(job: Job, class_split_lines: int, block_max_lines: int, redact_secrets: bool = True,
                  use_grammar: bool = True) -> Encoded:
    """`parse_with_terms`, as the index stores it (what a worker sends back)."""
    result, terms = parse_with_terms(job, class_split_lines, block_max_lines, redact_secrets, use_grammar)
    return result.warning, encode_file(job[1], result.chunks, terms)


def _parse_batch(jobs: list[Job], class_split_lines: int, block_max_lines: int,
                 redact_secrets: bool) -> list[tuple[str, Encoded]]:
    return [(job[0], parse_encoded(job, class_split_lines, block_max_lines, redact_secrets)) for job in jobs]


def _batches(jobs: Sequence[Job]) -> list[list[Job]]:
    batches: list[list[Job]] = []
    current: list[Job] = []
    size = 0
    for job in jobs:
        current.append(job)
        size += len(job[2])
        if size >= BATCH_BYTES:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return batches


def iter_parse(
    jobs: Sequence[Job],
    class_split_lines: int,
    block_max_lines: int,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    redact_secrets: bool = True,
) -> Iterator[tuple[str, Encoded]]:
    """Parse every job in worker processes, yielding (path, (warning, index rows)) as each batch comes back,
    so the caller can store one batch while the workers parse the next. Every job is yielded once.
    The workers start at the first `next()`; `ParseRun` starts them at once."""
    run = ParseRun(jobs, class_split_lines, block_max_lines, workers, redact_secrets)
    try:
        yield from run.results(progress)
    finally:
        run.close()


class ParseRun:
    """Parsing under way: the workers start (fork) when it is made, so the caller can do other work while
    they parse (load the cached files, the tokenizer). `results` yields what `iter_parse` yields; `close`
    stops workers whose results nobody will read."""

    def __init__(self, jobs: Sequence[Job], class_split_lines: int, block_max_lines: int,
                 workers: int | None = None, redact_secrets: bool = True) -> None:
        self._options = (class_split_lines, block_max_lines, redact_secrets)
        self._batches: list[list[Job]] = []
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Future[list[tuple[str, Encoded]]], int] = {}
        if not jobs:
            return
        if redact_secrets:
            warm_up(sum(len(job[2]) for job in jobs))  # load the detectors once, before the fork, not per worker
        # Largest first, so a big file does not start last and hold the pool open alone.
        ordered = sorted(jobs, key=lambda job: -len(job[2]))
        self._batches = _batches(ordered) if len(jobs) >= PARALLEL_MIN_FILES else [ordered]
        count = max(1, min(workers if workers is not None else (os.cpu_count() or 1), len(self._batches)))
        self._pool, self._futures = _start(self._batches, count, self._options)

    def results(self, progress: Callable[[int], None] | None = None) -> Iterator[tuple[str, Encoded]]:
        if self._pool is None:
            return
        failed: list[list[Job]] = []
        try:
            yield from _finished(self._futures, self._batches, failed, progress)
        finally:
            self.close()
        for batch in failed:  # a worker died: the batch alone, then file by file
            alone: list[list[Job]] = []
            yield from _run([batch], 1, self._options, alone, progress)
            if not alone:
                continue
            for job in batch:
                lost: list[list[Job]] = []
                yield from _run([[job]], 1, self._options, lost, progress)
                if lost:
                    yield job[0], parse_encoded(job, *self._options[:2], self._options[2], use_grammar=False)
                    if progress:
                        progress(1)

    def close(self) -> None:
        """Stop the workers: batches not begun are dropped, those under way are waited for."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _start(batches: list[list[Job]], workers: int, options: tuple[int, int, bool],
           ) -> tuple[ProcessPoolExecutor, dict[Future[list[tuple[str, Encoded]]], int]]:
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_die_with_parent,
                               initargs=(os.getpid(),))
    try:
        return pool, {pool.submit(_parse_batch, batch, *options): index for index, batch in enumerate(batches)}
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise


def _finished(futures: dict[Future[list[tuple[str, Encoded]]], int], batches: list[list[Job]],
              failed: list[list[Job]], progress: Callable[[int], None] | None) -> Iterator[tuple[str, Encoded]]:
    """Each finished batch's results, as they come; the batches whose worker died go to `failed`."""
    for future in as_completed(futures):
        try:
            batch_results = future.result()
        except BrokenProcessPool:  # this batch's worker, or another, died: it did not finish
            failed.append(batches[futures[future]])
            continue
        if progress:
            progress(len(batch_results))
        yield from batch_results


def _run(batches: list[list[Job]], workers: int, options: tuple[int, int, bool], failed: list[list[Job]],
         progress: Callable[[int], None] | None) -> Iterator[tuple[str, Encoded]]:
    """Parse batches in a fresh pool, yielding each finished batch's results; the batches whose worker died
    go to `failed`."""
    pool, futures = _start(batches, workers, options)
    with pool:
        yield from _finished(futures, batches, failed, progress)

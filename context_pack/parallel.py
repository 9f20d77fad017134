"""Parse many files across all cores: a process pool over batches, results merged in the parent."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace

from .model import Chunk
from .parse import ParseResult, parse_file
from .secrets import Finding, redact, warm_up
from .terms import chunk_document

PARALLEL_MIN_FILES = 48  # below this, a pool costs more than it saves
BATCH_BYTES = 256 * 1024

Job = tuple[str, str, bytes]  # path, language, source
Parsed = tuple[ParseResult, list[str]]  # the parse, and each chunk's full-text document


def parse_with_terms(job: Job, class_split_lines: int, block_max_lines: int, redact_secrets: bool = True) -> Parsed:
    """Redact, parse, and make each chunk's full-text document.

    Secrets are redacted here, before the parse, so that nothing downstream ever holds one: not the chunks,
    their signatures, names or full-text documents, not the index on disk. Warm builds pay nothing for the
    scan (the index keeps redacted chunks), and token counts and the budget see the text the model reads.
    """
    path, language, source = job
    findings: list[Finding] = []
    if redact_secrets:
        text = source.decode("utf-8", errors="replace")
        redacted, findings = redact(text, path)
        if findings:
            source = redacted.encode("utf-8")
    result = parse_file(path, source, language, class_split_lines, block_max_lines)
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


def _parse_batch(jobs: list[Job], class_split_lines: int, block_max_lines: int,
                 redact_secrets: bool) -> list[tuple[str, Parsed]]:
    return [(job[0], parse_with_terms(job, class_split_lines, block_max_lines, redact_secrets)) for job in jobs]


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


def parse_many(
    jobs: Sequence[Job],
    class_split_lines: int,
    block_max_lines: int,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    redact_secrets: bool = True,
) -> dict[str, Parsed]:
    """Parse every job; `progress` is called with the number of files just finished."""
    workers = workers if workers is not None else (os.cpu_count() or 1)
    results: dict[str, Parsed] = {}
    if workers <= 1 or len(jobs) < PARALLEL_MIN_FILES:
        for job in jobs:
            results[job[0]] = parse_with_terms(job, class_split_lines, block_max_lines, redact_secrets)
            if progress:
                progress(1)
        return results
    if redact_secrets:
        warm_up()  # load the detectors once, before the fork, not once per worker
    # Largest first, so a big file does not start last and hold the pool open alone.
    ordered = sorted(jobs, key=lambda job: -len(job[2]))
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_parse_batch, batch, class_split_lines, block_max_lines, redact_secrets)
                   for batch in _batches(ordered)]
        for future in as_completed(futures):
            batch_results = future.result()
            results.update(batch_results)
            if progress:
                progress(len(batch_results))
    return results

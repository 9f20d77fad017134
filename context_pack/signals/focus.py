"""Focus: personalised PageRank seeded at the focus files, so what they import, what imports them, what
they call and what calls them rank high. The focus files' own chunks are 1."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from .graph import CodeGraph, log_normalise, pagerank, personalization_vector, spread_to_chunks

NEIGHBOUR_CEILING = 0.8  # a neighbour never outranks the focus files themselves


def compute(graph: CodeGraph, chunk_paths: list[str], focus: Collection[str],
            centre: Sequence[int] | None = None) -> np.ndarray:
    """`centre`: chunk positions to seed the chunk graph from (a staged change's chunks) instead of every
    chunk of the focus files; the focus files' other chunks then rank as close neighbours."""
    n = graph.chunk_count
    focus_set = set(focus)
    if not focus_set or n == 0:
        return np.zeros(n)
    file_seeds = {i: 1.0 for i, path in enumerate(graph.files) if path in focus_set}
    in_focus = [i for i, path in enumerate(chunk_paths) if path in focus_set]
    chunk_seeds = {i: 1.0 for i in (centre if centre else in_focus)}
    if not file_seeds:
        return np.zeros(n)
    # Both directions: what the focus calls and imports, and what calls and imports it.
    file_rank = pagerank(graph.file_matrix, personalization_vector(len(graph.files), file_seeds), both_ways=True)
    chunk_rank = pagerank(graph.chunk_matrix, personalization_vector(n, chunk_seeds), both_ways=True)
    for index in file_seeds:  # measure the neighbours against each other, not against the seeds
        file_rank[index] = 0.0
    chunk_rank[list(chunk_seeds)] = 0.0
    near = np.maximum(spread_to_chunks(graph, log_normalise(file_rank)), log_normalise(chunk_rank))
    values = NEIGHBOUR_CEILING * near
    values[in_focus] = np.maximum(values[in_focus], NEIGHBOUR_CEILING)
    values[list(chunk_seeds)] = 1.0
    return values

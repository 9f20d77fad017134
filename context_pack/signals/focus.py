"""Focus: personalised PageRank seeded at the focus files, so what they import, what imports them, what
they call and what calls them rank high. The focus files' own chunks are 1."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from .graph import CodeGraph, log_normalise, pagerank, personalization_vector, spread_to_chunks

NEIGHBOUR_CEILING = 0.8  # a neighbour never outranks the focus files themselves


def compute(graph: CodeGraph, chunk_paths: list[str], focus: Collection[str]) -> np.ndarray:
    n = graph.chunk_count
    focus_set = set(focus)
    if not focus_set or n == 0:
        return np.zeros(n)
    file_seeds = {i: 1.0 for i, path in enumerate(graph.files) if path in focus_set}
    chunk_seeds = {i: 1.0 for i, path in enumerate(chunk_paths) if path in focus_set}
    if not file_seeds:
        return np.zeros(n)
    file_rank = pagerank(graph.file_matrix, personalization_vector(len(graph.files), file_seeds))
    chunk_rank = pagerank(graph.chunk_matrix, personalization_vector(n, chunk_seeds))
    for index in file_seeds:  # measure the neighbours against each other, not against the seeds
        file_rank[index] = 0.0
    chunk_rank[list(chunk_seeds)] = 0.0
    near = np.maximum(spread_to_chunks(graph, log_normalise(file_rank)), log_normalise(chunk_rank))
    values = NEIGHBOUR_CEILING * near
    values[list(chunk_seeds)] = 1.0
    return values

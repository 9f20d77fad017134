"""Centrality: PageRank over the file graph (imports + references), spread to the file's chunks, averaged
with PageRank over the chunk reference graph, so a module imported by many and a function called from
many both rank high."""

from __future__ import annotations

import numpy as np

from .graph import CodeGraph, log_normalise, pagerank, spread_to_chunks

FILE_SHARE = 0.5


def compute(graph: CodeGraph) -> np.ndarray:
    if graph.chunk_count == 0:
        return np.zeros(0)
    file_rank = log_normalise(pagerank(graph.file_matrix))
    chunk_rank = log_normalise(pagerank(graph.chunk_matrix))
    return FILE_SHARE * spread_to_chunks(graph, file_rank) + (1 - FILE_SHARE) * chunk_rank

"""Stage — score: features → one score per chunk, a weighted sum with weights from config.

A repository has ~10^5 chunks and a pack uses a few hundred, so features are one matrix, the scores one
matrix product, and each `ScoredChunk` is made only when the packer (or `explain`) reaches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import overload

import numpy as np

from .model import FEATURE_NAMES, Chunk, ScoredChunk
from .signals import definitions, tests, todo


def compute_features(chunks: Sequence[Chunk], extra: Mapping[str, Sequence[float] | np.ndarray] | None = None,
                     ) -> np.ndarray:
    """A (chunks × FEATURE_NAMES) matrix; a signal that does not apply is 0."""
    columns: dict[str, Sequence[float] | np.ndarray] = dict(extra or {})
    missing = [(name, signal) for name, signal in (("definitions", definitions), ("tests", tests), ("todo", todo))
               if name not in columns]  # the caller may have computed them already (chunks are then not read)
    if missing:
        chunk_list = list(chunks)
        for name, signal in missing:
            columns[name] = signal.compute(chunk_list)
    count = len(chunks)
    matrix = np.zeros((count, len(FEATURE_NAMES)))
    for column, name in enumerate(FEATURE_NAMES):
        if name in columns and count:
            matrix[:, column] = np.asarray(columns[name], dtype=np.float64)
    return matrix


class Ranking(Sequence[ScoredChunk]):
    """Scored chunks, best first; ties broken by path and line so the order is deterministic."""

    def __init__(self, chunks: Sequence[Chunk], features: np.ndarray, weights: Mapping[str, float],
                 with_text: Callable[[Chunk], Chunk] | None = None,
                 order: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """`order`: each chunk's file numbered in path order, and its first line (`ChunkColumns`), if had."""
        self._chunks = chunks
        self._with_text = with_text  # chunks may come without their text; this fetches it
        self._features = features
        vector = np.array([weights.get(name, 0.0) for name in FEATURE_NAMES])
        # Summed feature by feature, as a reader would: the same floats on every machine (no BLAS order).
        self._scores = np.zeros(len(chunks))
        for column in range(len(FEATURE_NAMES)):
            self._scores += vector[column] * features[:, column]
        if order is None:
            from .signals.columns import ChunkColumns

            columns = ChunkColumns(chunks)
            order = (columns.file_numbers, columns.start_lines)
        path_rank, lines = order
        self._order = np.lexsort((lines, path_rank, -self._scores)) if len(chunks) else np.zeros(0, dtype=np.int64)
        self._made: dict[int, ScoredChunk] = {}

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, position: int) -> ScoredChunk: ...

    @overload
    def __getitem__(self, position: slice) -> list[ScoredChunk]: ...

    def __getitem__(self, position: int | slice) -> ScoredChunk | list[ScoredChunk]:
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        chunk_index = int(self._order[position])
        made = self._made.get(chunk_index)
        if made is None:
            row = self._features[chunk_index]
            chunk = self._chunks[chunk_index]
            made = ScoredChunk(chunk=self._with_text(chunk) if self._with_text else chunk,
                               score=float(self._scores[chunk_index]),
                               features={name: float(row[i]) for i, name in enumerate(FEATURE_NAMES)})
            self._made[chunk_index] = made
        return made

    def __iter__(self) -> Iterator[ScoredChunk]:
        for position in range(len(self)):
            yield self[position]


def score_chunks(chunks: Sequence[Chunk], features: np.ndarray, weights: Mapping[str, float],
                 with_text: Callable[[Chunk], Chunk] | None = None,
                 order: tuple[np.ndarray, np.ndarray] | None = None) -> Ranking:
    return Ranking(chunks, features, weights, with_text, order)

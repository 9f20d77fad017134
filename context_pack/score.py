"""Stage — score: features → one score per chunk, a weighted sum with weights from config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .model import FEATURE_NAMES, Chunk, ScoredChunk
from .signals import definitions, tests, todo


def compute_features(chunks: Sequence[Chunk],
                     extra: Mapping[str, Sequence[float]] | None = None) -> list[dict[str, float]]:
    """Every feature name for every chunk; a signal that does not apply is 0."""
    chunk_list = list(chunks)
    columns: dict[str, Sequence[float]] = {
        "definitions": definitions.compute(chunk_list),
        "tests": tests.compute(chunk_list),
        "todo": todo.compute(chunk_list),
        **(extra or {}),
    }
    return [{name: float(columns[name][i]) if name in columns else 0.0 for name in FEATURE_NAMES}
            for i in range(len(chunk_list))]


def score_chunks(chunks: Sequence[Chunk], features: Sequence[dict[str, float]],
                 weights: Mapping[str, float]) -> list[ScoredChunk]:
    """Scored chunks, best first; ties broken by path and line so the order is deterministic."""
    scored = [
        ScoredChunk(chunk=chunk, score=sum(weights.get(name, 0.0) * value for name, value in feats.items()),
                    features=feats)
        for chunk, feats in zip(chunks, features, strict=True)
    ]
    scored.sort(key=lambda s: (-s.score, s.chunk.path, s.chunk.start_line))
    return scored

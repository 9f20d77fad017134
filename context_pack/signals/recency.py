"""Git recency: how lately and how often a chunk's file changed, measured from the newest commit.

Files modified, staged or untracked are the newest of all. Outside a git repo the signal is 0 for all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..history import FileHistory
from ..model import Chunk, chunk_paths

HALF_LIFE_DAYS = 60.0
CHURN_SHARE = 0.3  # the rest is the age term


def file_recency(history: FileHistory, paths: Sequence[str]) -> dict[str, float]:
    if not history.available and not history.dirty:
        return {path: 0.0 for path in paths}
    most_touches = max(history.touches.values(), default=0)
    values = {}
    for path in paths:
        if path in history.dirty:
            values[path] = 1.0
            continue
        last = history.last_commit.get(path)
        if last is None:
            values[path] = 0.0
            continue
        age_days = max(0.0, (history.newest - last) / 86_400)
        age_term = 0.5 ** (age_days / HALF_LIFE_DAYS)
        churn = math.log1p(history.touches.get(path, 0)) / math.log1p(most_touches) if most_touches else 0.0
        values[path] = (1 - CHURN_SHARE) * age_term + CHURN_SHARE * churn
    return values


def compute(chunks: Sequence[Chunk], history: FileHistory) -> list[float]:
    paths = chunk_paths(chunks)  # a corpus's chunks are not decoded for it
    per_file = file_recency(history, sorted(set(paths)))
    return [per_file[path] for path in paths]

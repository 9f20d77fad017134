"""TODO/FIXME/BUG/HACK/XXX density: open work marks code a reader should know about."""

from __future__ import annotations

import math

from ..model import Chunk


def compute(chunks: list[Chunk]) -> list[float]:
    # Saturating: the first mark matters most; ten marks are not ten times as telling.
    return [1.0 - math.exp(-chunk.todo_count / 1.5) if chunk.todo_count else 0.0 for chunk in chunks]

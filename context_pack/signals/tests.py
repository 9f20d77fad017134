"""Test code: 1 for a chunk in a test file or a test function/class, else 0."""

from __future__ import annotations

from ..model import Chunk


def compute(chunks: list[Chunk]) -> list[float]:
    return [1.0 if chunk.is_test else 0.0 for chunk in chunks]

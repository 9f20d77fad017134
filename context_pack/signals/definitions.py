"""Symbol-definition density: chunks that define more per line say more about the code's shape."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..model import Chunk

IMPORT_HEADER_VALUE = 0.25  # an import header is not a definition, but it maps what a file depends on


def compute(chunks: list[Chunk]) -> list[float]:
    return normalise(raw(chunks)).tolist()


def raw(chunks: Sequence[Chunk]) -> list[float]:
    """Each chunk's own value before the corpus-wide scaling: -1 for an import header. It depends on the
    chunk alone, so the index keeps it per file (`ChunkColumns.patched`)."""
    log1p = math.log1p  # one comprehension, `line_count` inlined: it runs over every chunk of every build
    return [-1.0 if chunk.kind == "imports"
            else len(chunk.symbols) / (1.0 + log1p(chunk.end_line - chunk.start_line + 1)) for chunk in chunks]


def normalise(raw_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Raw values over the largest positive one; import headers get IMPORT_HEADER_VALUE."""
    values = np.asarray(raw_values, dtype=np.float64)
    positive = values[values > 0]
    top = float(positive.max()) if positive.size else 0.0
    out = values / top if top else np.zeros(len(values))
    out[values < 0] = IMPORT_HEADER_VALUE
    return out

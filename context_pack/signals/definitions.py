"""Symbol-definition density: chunks that define more per line say more about the code's shape."""

from __future__ import annotations

import math

from ..model import Chunk

IMPORT_HEADER_VALUE = 0.25  # an import header is not a definition, but it maps what a file depends on


def compute(chunks: list[Chunk]) -> list[float]:
    log1p = math.log1p  # one comprehension, `line_count` inlined: it runs over every chunk of every build
    raw = [-1.0 if chunk.kind == "imports"
           else len(chunk.symbols) / (1.0 + log1p(chunk.end_line - chunk.start_line + 1)) for chunk in chunks]
    top = max((value for value in raw if value > 0), default=0.0)
    return [IMPORT_HEADER_VALUE if value < 0 else (value / top if top else 0.0) for value in raw]

"""ctxpack: pack the most relevant code of a repository into a hard token budget."""

from .config import Config, parse_budget
from .errors import CtxpackError, UsageError
from .model import Chunk, File, Pack, PackedChunk, ScoredChunk
from .pipeline import build

__all__ = [
    "Chunk",
    "Config",
    "CtxpackError",
    "File",
    "Pack",
    "PackedChunk",
    "ScoredChunk",
    "UsageError",
    "build",
    "parse_budget",
]

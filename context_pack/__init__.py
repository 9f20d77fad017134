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
    "ask",
    "build",
    "parse_budget",
]


def __getattr__(name: str) -> object:
    # `ask` needs httpx; loaded on first use so that `build` starts as fast as before.
    if name == "ask":
        from .asking import ask

        globals()["ask"] = ask
        return ask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

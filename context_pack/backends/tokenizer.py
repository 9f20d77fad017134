"""The tokenizer kind `backend:URL`: texts counted by the model server's own /tokenize.

Exact, but one HTTP call per text. The packer therefore estimates each chunk with `estimator` (a local
tokenizer, cl100k by default) while it chooses, and counts only the rendered pack text here — a handful of
calls per pack instead of one per candidate chunk (see `context_pack.pack`).
"""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from threading import Lock

from ..tokens import DEFAULT_TOKENIZER, Tokenizer, get_tokenizer
from .base import Backend

CACHE_SIZE = 512
THREADS = 4


class CharEstimator:
    """A last-resort estimate (about 3.5 characters a token in code) when no local tokenizer loads."""

    name = "chars/3.5"

    def count(self, text: str) -> int:
        return (len(text) * 2 + 6) // 7

    def count_many(self, texts: list[str]) -> list[int]:
        return [self.count(text) for text in texts]


class BackendTokenizer:
    """Counts with the server's tokenizer; caches counts by text; `calls` says how many requests it made."""

    def __init__(self, backend: Backend, estimator: Tokenizer | None = None) -> None:
        self.backend = backend
        self._estimator = estimator
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._lock = Lock()
        self.calls = 0

    @property
    def name(self) -> str:
        return f"backend:{self.backend.url}"

    @property
    def id(self) -> str:
        """The cache key: the server's URL (its model may change behind it, so counts are not kept on disk)."""
        return self.name

    @property
    def estimator(self) -> Tokenizer:
        """A cheap local tokenizer for the packer's per-chunk estimates."""
        if self._estimator is None:
            try:
                self._estimator = get_tokenizer(DEFAULT_TOKENIZER)
            except Exception:  # offline without tiktoken's BPE file: estimates only guide, so chars will do
                self._estimator = CharEstimator()
        return self._estimator

    def count(self, text: str) -> int:
        with self._lock:
            if text in self._cache:
                self._cache.move_to_end(text)
                return self._cache[text]
        tokens = self.backend.count(text)
        with self._lock:
            self.calls += 1
            self._cache[text] = tokens
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return tokens

    def count_many(self, texts: list[str]) -> list[int]:
        unique = list(dict.fromkeys(texts))  # each distinct text once, so no two threads ask for the same
        if len(unique) < 4:
            counts = [self.count(text) for text in unique]
        else:
            with ThreadPoolExecutor(THREADS) as pool:  # the server tokenizes on its HTTP threads, not in a slot
                counts = list(pool.map(self.count, unique))
        found = dict(zip(unique, counts, strict=True))
        return [found[text] for text in texts]


def backend_tokenizer(url: str) -> BackendTokenizer:
    """`get_tokenizer("backend:URL")`: connects (kind auto) and counts with that server."""
    from . import connect

    return BackendTokenizer(connect(url, timeout=60.0))

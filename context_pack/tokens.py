"""Tokenizers behind one protocol. The pack text is always counted with the chosen one."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Protocol

from .errors import CtxpackError, UsageError

DEFAULT_TOKENIZER = "tiktoken:cl100k_base"


class Tokenizer(Protocol):
    @property
    def name(self) -> str:
        """A stable id, e.g. `tiktoken:cl100k_base`; index caches are keyed by it."""
        ...

    def count(self, text: str) -> int: ...

    def count_many(self, texts: list[str]) -> list[int]: ...


class TiktokenTokenizer:
    def __init__(self, encoding_name: str) -> None:
        import tiktoken

        try:
            self._encoding = tiktoken.get_encoding(encoding_name)
        except ValueError as exc:  # unknown encoding name
            raise UsageError(f"unknown tiktoken encoding {encoding_name!r}") from exc
        except Exception as exc:  # offline: the BPE file cannot be downloaded
            cache = os.environ.get("TIKTOKEN_CACHE_DIR", "(unset)")
            raise CtxpackError(
                f"tiktoken could not load {encoding_name!r} ({type(exc).__name__}); this machine may be "
                f"offline: set TIKTOKEN_CACHE_DIR to a folder holding its BPE file (now: {cache})"
            ) from exc
        self._name = f"tiktoken:{encoding_name}"

    @property
    def name(self) -> str:
        return self._name

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def count_many(self, texts: list[str]) -> list[int]:
        return [len(tokens) for tokens in self._encoding.encode_ordinary_batch(texts, num_threads=2)]


@lru_cache(maxsize=8)
def get_tokenizer(spec: str = DEFAULT_TOKENIZER) -> Tokenizer:
    """Resolve a tokenizer spec `kind:argument`."""
    kind, _, argument = spec.partition(":")
    if kind == "tiktoken" and argument:
        return TiktokenTokenizer(argument)
    if kind == "backend" and argument:  # the model server's /tokenize; httpx only when asked for
        from .backends.tokenizer import backend_tokenizer

        return backend_tokenizer(argument)
    raise UsageError(f"unknown tokenizer {spec!r} (expected e.g. {DEFAULT_TOKENIZER})")

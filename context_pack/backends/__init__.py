"""Model servers: one OpenAI-compatible client (httpx) with an adapter per server, llama.cpp and vLLM.

    backend = connect("http://127.0.0.1:8080")      # --kind auto: asks the server what it is
    backend.info().window                            # tokens per request (llama.cpp /props, vLLM /v1/models)
    backend.count_prompt(messages)                   # the templated prompt, counted by the server's tokenizer
"""

from __future__ import annotations

import httpx

from .base import Backend, Messages, ServerInfo
from .client import BackendError, ChatResult, ContextExceededError, HttpClient, normalise_url
from .llamacpp import LlamaCppBackend
from .vllm import VllmBackend

KINDS = ("auto", "llamacpp", "vllm")
DEFAULT_TIMEOUT = 300.0

__all__ = [
    "KINDS",
    "Backend",
    "BackendError",
    "ChatResult",
    "ContextExceededError",
    "LlamaCppBackend",
    "Messages",
    "ServerInfo",
    "VllmBackend",
    "connect",
    "normalise_url",
]


def connect(url: str, kind: str = "auto", model: str | None = None, timeout: float = DEFAULT_TIMEOUT,
            transport: httpx.BaseTransport | None = None) -> Backend:
    """The adapter for the server at `url`; `kind="auto"` tells llama.cpp and vLLM apart from their answers."""
    if kind not in KINDS:
        raise BackendError(f"unknown backend kind {kind!r} (expected {', '.join(KINDS)})")
    http = HttpClient(url, timeout=timeout, transport=transport)
    try:
        if kind == "auto":
            kind = detect(http)
    except BaseException:
        http.close()
        raise
    if kind == "llamacpp":
        return LlamaCppBackend(http)
    return VllmBackend(http, model=model)


def detect(http: HttpClient) -> str:
    """llama.cpp answers /props with its generation settings; vLLM lists models with a max_model_len."""
    anything = tuple(range(400, 600))
    status, props = http.get("/props", allow=anything)
    if status == 200 and isinstance(props, dict) and "default_generation_settings" in props:
        return "llamacpp"
    if status == 503:  # llama.cpp answers 503 on every endpoint while it loads the model
        raise BackendError(f"the server at {http.url} is not ready yet (HTTP 503: still loading its model?)")
    status, models = http.get("/v1/models", allow=anything)
    cards = models.get("data") if status == 200 and isinstance(models, dict) else None
    if isinstance(cards, list) and cards and isinstance(cards[0], dict):
        if "max_model_len" in cards[0] or cards[0].get("owned_by") == "vllm":
            return "vllm"
        if cards[0].get("owned_by") == "llamacpp":
            return "llamacpp"
    raise BackendError(f"cannot tell what server answers at {http.url} (neither llama.cpp's /props nor vLLM's "
                       "/v1/models): pass --kind llamacpp or --kind vllm")

"""What every server adapter offers: its context window, its tokenizer, and chat completions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .client import ChatResult, HttpClient

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class ServerInfo:
    kind: str  # "llamacpp" | "vllm"
    window: int  # tokens one request may hold, prompt and answer together
    window_source: str  # where the window came from, e.g. "/props n_ctx"
    model: str  # the model name to send (vLLM checks it; llama.cpp ignores it)


class Backend:
    """An OpenAI-compatible server plus the few native endpoints that tell its window and count its tokens."""

    kind = "openai"

    def __init__(self, http: HttpClient) -> None:
        self.http = http
        self._info: ServerInfo | None = None

    @property
    def url(self) -> str:
        return self.http.url

    def info(self) -> ServerInfo:
        if self._info is None:
            self._info = self._discover()
        return self._info

    def _discover(self) -> ServerInfo:
        raise NotImplementedError

    def count(self, text: str) -> int:
        """Tokens of a piece of text, as the server's tokenizer cuts it (no BOS or other added tokens)."""
        raise NotImplementedError

    def count_prompt(self, messages: Messages, model: str | None = None) -> int:
        """Tokens of the whole prompt the server builds from chat messages: its chat template applied, special
        tokens included — what it checks against its window."""
        raise NotImplementedError

    def chat_body(self, model: str, messages: Messages, max_tokens: int, stream: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def chat(self, body: dict[str, Any], on_text: Callable[[str], None] | None = None) -> ChatResult:
        return self.http.chat(body, on_text)

    def close(self) -> None:
        self.http.close()

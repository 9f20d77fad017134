"""llama.cpp's `llama-server`: /health, /props (the window per slot), /tokenize, /apply-template, chat."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from .base import Backend, Messages, ServerInfo
from .client import BackendError, one_line


class LlamaCppBackend(Backend):
    kind = "llamacpp"

    def health(self) -> None:
        status, data = self.http.get("/health", allow=(503,))
        if status == 503:
            message = (data.get("error") or {}).get("message", "") if isinstance(data, dict) else ""
            raise BackendError(f"the llama.cpp server at {self.url} is not ready yet ({one_line(message) or 503})")

    def _discover(self) -> ServerInfo:
        self.health()
        _, props = self.http.get("/props")
        settings = props.get("default_generation_settings") if isinstance(props, dict) else None
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        if not isinstance(n_ctx, int) or n_ctx < 1:
            raise BackendError(f"{self.url}/props has no default_generation_settings.n_ctx: is it a llama.cpp server?")
        model = props.get("model_alias") or PurePosixPath(str(props.get("model_path") or "model")).name
        return ServerInfo(kind=self.kind, window=n_ctx, window_source="/props n_ctx", model=str(model))

    def count(self, text: str) -> int:
        # /tokenize takes one `content` string per call; parse_special stays on, as for a chat prompt.
        return len(self._tokens({"content": text, "add_special": False}))

    def count_prompt(self, messages: Messages, model: str | None = None) -> int:
        data = self.http.post("/apply-template", {"messages": messages})
        prompt = data.get("prompt") if isinstance(data, dict) else None
        if not isinstance(prompt, str):
            raise BackendError(f"{self.url}/apply-template answered without a prompt")
        # The server tokenizes a chat prompt with its special tokens (BOS where the model wants one).
        return len(self._tokens({"content": prompt, "add_special": True}))

    def _tokens(self, body: dict[str, Any]) -> list[Any]:
        data = self.http.post("/tokenize", body)
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list):
            raise BackendError(f"{self.url}/tokenize answered without a token list")
        return tokens

    def chat_body(self, model: str, messages: Messages, max_tokens: int, stream: bool = True) -> dict[str, Any]:
        body = super().chat_body(model, messages, max_tokens, stream)
        body["cache_prompt"] = True  # re-use the slot's KV cache for the prompt prefix it shares with the last one
        return body

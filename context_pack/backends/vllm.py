"""vLLM's OpenAI-compatible server: /v1/models (`max_model_len`), /tokenize (text or chat messages), chat.

vLLM's automatic prefix caching needs nothing in the request: it re-uses any cached prefix blocks."""

from __future__ import annotations

from typing import Any

from .base import Backend, Messages, ServerInfo
from .client import BackendError


class VllmBackend(Backend):
    kind = "vllm"

    def __init__(self, *args: Any, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model = model

    def _discover(self) -> ServerInfo:
        _, listing = self.http.get("/v1/models")
        cards = [card for card in (listing.get("data") or []) if isinstance(card, dict)] \
            if isinstance(listing, dict) else []
        if not cards:
            raise BackendError(f"{self.url}/v1/models lists no model")
        card = next((c for c in cards if c.get("id") == self._model), None) if self._model else cards[0]
        if card is None:
            names = ", ".join(str(c.get("id")) for c in cards)
            raise BackendError(f"{self.url} does not serve model {self._model!r} (it serves: {names})")
        window = card.get("max_model_len")
        if not isinstance(window, int) or window < 1:
            raise BackendError(f"{self.url}/v1/models gives no max_model_len for {card.get('id')!r}: "
                               "is it a vLLM server? (try --kind llamacpp, or --budget N)")
        return ServerInfo(kind=self.kind, window=window, window_source="/v1/models max_model_len",
                          model=str(card.get("id")))

    def count(self, text: str) -> int:
        return self._count({"model": self.info().model, "prompt": text, "add_special_tokens": False})

    def count_prompt(self, messages: Messages, model: str | None = None) -> int:
        # The chat form applies the model's chat template, as /v1/chat/completions does.
        return self._count({"model": model or self.info().model, "messages": messages,
                            "add_generation_prompt": True})

    def _count(self, body: dict[str, Any]) -> int:
        data = self.http.post("/tokenize", body)
        if isinstance(data, dict):
            if isinstance(data.get("count"), int):
                return int(data["count"])
            if isinstance(data.get("tokens"), list):
                return len(data["tokens"])
        raise BackendError(f"{self.url}/tokenize answered without a count")

"""One small HTTP client for OpenAI-compatible servers: JSON calls, chat completions (streamed or not), and
every failure turned into one clear `BackendError` line. Every call has a timeout."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import CtxpackError

CONTROL_TIMEOUT = 30.0  # health, props, tokenize: quick calls, never the generation
CONNECT_TIMEOUT = 5.0

# What llama.cpp and vLLM say when a prompt does not fit (llama.cpp also sets type exceed_context_size_error).
_CONTEXT_PHRASES = ("exceeds the available context size", "larger than the max context size",
                    "maximum context length", "context size has been exceeded", "exceed_context_size",
                    "is longer than the maximum model length")


class BackendError(CtxpackError):
    """The model server could not be reached, did not answer in time, or answered with an error."""


class ContextExceededError(BackendError):
    """The server says the request does not fit its context window."""


@dataclass
class ChatResult:
    """What a chat completion produced: the answer, and the server's own accounting of the prompt."""

    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)  # OpenAI `usage`: prompt_tokens, completion_tokens, ...
    timings: dict[str, Any] = field(default_factory=dict)  # llama.cpp only: prompt_n (evaluated), cache_n (reused)


def normalise_url(url: str) -> str:
    """`host:8080`, `http://host:8080/`, `http://host:8000/v1` → `http://host:8080` (the server's root)."""
    url = url.strip()
    if not re.match(r"^https?://", url, re.IGNORECASE):
        url = "http://" + url
    url = url.rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class HttpClient:
    """httpx with ctxpack's error messages. `timeout` bounds the wait for each answer (or each streamed piece)."""

    def __init__(self, url: str, timeout: float = 300.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = normalise_url(url)
        self.timeout = timeout
        self._client = httpx.Client(base_url=self.url, transport=transport, headers={"Accept": "application/json"},
                                    timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)))

    def close(self) -> None:
        self._client.close()

    def _timeout(self, control: bool) -> httpx.Timeout:
        seconds = min(self.timeout, CONTROL_TIMEOUT) if control else self.timeout
        return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT))

    def get(self, path: str, allow: tuple[int, ...] = ()) -> tuple[int, Any]:
        """GET a JSON answer; statuses in `allow` are returned instead of raised."""
        with self._errors(path, control=True):
            response = self._client.get(path, timeout=self._timeout(True))
        return self._json(path, response, allow)

    def post(self, path: str, body: dict[str, Any], control: bool = True) -> Any:
        with self._errors(path, control):
            response = self._client.post(path, json=body, timeout=self._timeout(control))
        return self._json(path, response, ())[1]

    def chat(self, body: dict[str, Any], on_text: Callable[[str], None] | None = None) -> ChatResult:
        """POST /v1/chat/completions; with `body["stream"]`, each piece of the answer goes to `on_text` as it comes."""
        path = "/v1/chat/completions"
        if not body.get("stream"):
            data = self.post(path, body, control=False)
            result = ChatResult(usage=data.get("usage") or {}, timings=data.get("timings") or {})
            choice = (data.get("choices") or [{}])[0]
            result.text = (choice.get("message") or {}).get("content") or ""
            result.finish_reason = choice.get("finish_reason")
            if on_text and result.text:
                on_text(result.text)
            return result
        result = ChatResult()
        pieces: list[str] = []
        with self._errors(path, control=False), self._client.stream(
                "POST", path, json=body, timeout=self._timeout(False),
                headers={"Accept": "text/event-stream"}) as response:
            if response.status_code >= 400:
                response.read()
                self._json(path, response, ())  # raises with the server's message
            complete = False
            for event in _server_sent_events(response.iter_lines()):
                if event is None:
                    complete = True
                    break
                if "error" in event:
                    raise self._http_error(path, 500, event)
                if event.get("usage"):
                    result.usage = event["usage"]
                if event.get("timings"):
                    result.timings = event["timings"]
                for choice in event.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        pieces.append(text)
                        if on_text:
                            on_text(text)
                    if choice.get("finish_reason"):
                        result.finish_reason = choice["finish_reason"]
        if not complete:  # a stream cut off by a server that stopped ends without `data: [DONE]`
            raise BackendError(f"the server at {self.url} ended the answer stream before it was complete "
                               "(did it stop?)")
        result.text = "".join(pieces)
        return result

    def _json(self, path: str, response: httpx.Response, allow: tuple[int, ...]) -> tuple[int, Any]:
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = None
        if response.status_code >= 400 and response.status_code not in allow:
            raise self._http_error(path, response.status_code, data if data is not None else response.text)
        if data is None:
            if response.status_code in allow:
                return response.status_code, {}
            raise BackendError(f"{self.url}{path} answered with something that is not JSON "
                               f"(HTTP {response.status_code}): {one_line(response.text, 120)!r}")
        return response.status_code, data

    def _http_error(self, path: str, status: int, data: Any) -> BackendError:
        message, kind = _error_message(data)
        if status == 404:
            return BackendError(f"{self.url} has no {path} (HTTP 404): is it a llama.cpp or vLLM server? "
                                f"({one_line(message, 120)})")
        if _is_context_error(message, kind):
            return ContextExceededError(f"the request does not fit the server's context window: {one_line(message)}")
        return BackendError(f"{self.url}{path} failed with HTTP {status}: {one_line(message) or 'no message'}")

    @contextmanager
    def _errors(self, path: str, control: bool) -> Iterator[None]:
        """httpx's exceptions → one line that says what happened and where."""
        seconds = self._timeout(control).read
        try:
            yield
        except httpx.ConnectTimeout:
            raise BackendError(f"cannot connect to {self.url}: no answer within {min(seconds or 0, CONNECT_TIMEOUT):g}s"
                               ) from None
        except httpx.ConnectError as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else one_line(str(exc), 120)
            raise BackendError(f"cannot connect to {self.url}: {reason} (is the server running?)") from None
        except httpx.TimeoutException:
            raise BackendError(f"{self.url}{path} did not answer within {seconds:g}s "
                               f"(see --timeout)") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise BackendError(f"the server at {self.url} dropped the connection during {path} "
                               f"({type(exc).__name__}); did it stop?") from None
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.url}{path}: {type(exc).__name__}: {one_line(str(exc), 120)}") from None


def _server_sent_events(lines: Iterator[str]) -> Iterator[dict[str, Any] | None]:
    """The JSON payloads of an SSE stream; None at `data: [DONE]`. llama.cpp may send `error: {...}` lines."""
    for line in lines:
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.strip()
        if name == "data" and value == "[DONE]":
            yield None
            return
        if name not in ("data", "error"):
            continue
        try:
            payload = json.loads(value)
        except ValueError:
            raise BackendError(f"the server sent a stream event that is not JSON: {one_line(value, 120)!r}") from None
        if name == "error":
            payload = {"error": payload}
        yield payload


def _error_message(data: Any) -> tuple[str, str]:
    """The message and type of an OpenAI-style error body: {"error": {...}} (llama.cpp, vLLM) or flat (old vLLM)."""
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or ""), str(error.get("type") or "")
        if isinstance(error, str):
            return error, ""
        if "detail" in data:  # FastAPI validation errors
            return str(data["detail"]), ""
    return str(data or ""), ""


def _is_context_error(message: str, kind: str) -> bool:
    text = f"{message} {kind}".lower()
    return any(phrase in text for phrase in _CONTEXT_PHRASES)

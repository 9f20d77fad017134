"""A STUB of vLLM's OpenAI-compatible server — not vLLM. vLLM needs a GPU and cannot run here.

It answers the endpoints ctxpack uses with the shapes vLLM documents (vllm/entrypoints/openai/protocol.py):

- `GET /v1/models` → `{"object": "list", "data": [{"id", "object": "model", "owned_by": "vllm", "root",
  "max_model_len", "permission": [...]}]}`
- `POST /tokenize` with `{"model", "prompt", "add_special_tokens"}` or `{"model", "messages",
  "add_generation_prompt"}` → `{"count", "max_model_len", "tokens"}`
- `POST /v1/chat/completions`, streamed (`data: {chunk}` events, `usage` in the last chunk with
  `stream_options.include_usage`, then `data: [DONE]`) or not; a prompt that does not fit answers 400 with
  vLLM's "This model's maximum context length is ..." error
- anything else → 404 `{"detail": "Not Found"}` (FastAPI's answer, e.g. to llama.cpp's `/props`)

Its tokenizer is a toy (words and punctuation) and its chat template a ChatML imitation: the tests check the
protocol and ctxpack's arithmetic, not a real model. `mode` makes it misbehave: "hang" never answers a
chat request, "drop" closes the stream after a few pieces, "error" answers 500.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_RE = re.compile(r"\w+|[^\w\s]|\s+")


def toy_tokens(text: str) -> list[int]:
    return [hash(piece) % 50_000 for piece in TOKEN_RE.findall(text)]


def chat_template(messages: list[dict[str, str]]) -> str:
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + "<|im_start|>assistant\n"


class VllmStub:
    def __init__(self, model: str = "stub/Qwen2.5-Coder-7B-Instruct", max_model_len: int = 4096) -> None:
        self.model = model
        self.max_model_len = max_model_len
        self.mode = "ok"
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stub.requests.append(("GET", self.path, {}))
                if self.path == "/v1/models":
                    self._json(200, stub.models())
                elif self.path == "/health":
                    self._json(200, None)
                else:
                    self._json(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                stub.requests.append(("POST", self.path, body))
                if self.path == "/tokenize":
                    self._json(200, stub.tokenize(body))
                elif self.path == "/v1/chat/completions":
                    stub.chat(self, body)
                else:
                    self._json(404, {"detail": "Not Found"})

            def _json(self, status: int, data: Any) -> None:
                payload = b"" if data is None else json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.Handler = Handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> VllmStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def models(self) -> dict[str, Any]:
        card = {"id": self.model, "object": "model", "created": 1735142223, "owned_by": "vllm", "root": self.model,
                "parent": None, "max_model_len": self.max_model_len,
                "permission": [{"id": "modelperm-stub", "object": "model_permission", "created": 1735142223,
                                "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                                "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                                "organization": "*", "group": None, "is_blocking": False}]}
        return {"object": "list", "data": [card]}

    def prompt_tokens(self, body: dict[str, Any]) -> list[int]:
        if "messages" in body:
            return toy_tokens(chat_template(body["messages"]))
        return toy_tokens(body.get("prompt", ""))

    def tokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        tokens = self.prompt_tokens(body)
        return {"count": len(tokens), "max_model_len": self.max_model_len, "tokens": tokens}

    def chat(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        send = handler._json  # type: ignore[attr-defined]
        if self.mode == "hang":
            time.sleep(30)
            return
        if self.mode == "error":
            send(500, {"object": "error", "message": "stub: engine crashed", "type": "InternalServerError",
                       "param": None, "code": 500})
            return
        prompt = len(self.prompt_tokens(body))
        wanted = prompt + int(body.get("max_tokens") or 16)
        if wanted > self.max_model_len:
            send(400, {"object": "error", "type": "BadRequestError", "param": None, "code": 400,
                       "message": f"This model's maximum context length is {self.max_model_len} tokens. However, "
                                  f"you requested {wanted} tokens ({prompt} in the messages, "
                                  f"{body.get('max_tokens')} in the completion). Please reduce the length of the "
                                  "messages or completion."})
            return
        pieces = ["The ", "answer ", "is ", "in ", "stub.py", "."]
        usage = {"prompt_tokens": prompt, "completion_tokens": len(pieces), "total_tokens": prompt + len(pieces),
                 "prompt_tokens_details": None}
        if not body.get("stream"):
            send(200, {"id": "chatcmpl-stub", "object": "chat.completion", "created": 1735142223,
                       "model": self.model, "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                                          "message": {"role": "assistant",
                                                                      "content": "".join(pieces)}}],
                       "usage": usage})
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        handler.end_headers()

        def event(data: dict[str, Any] | str) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            handler.wfile.write(f"data: {text}\n\n".encode())
            handler.wfile.flush()

        base = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 1735142223, "model": self.model}
        event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                    "finish_reason": None}]})
        for number, piece in enumerate(pieces):
            if self.mode == "drop" and number == 2:
                handler.wfile.flush()
                handler.connection.shutdown(2)  # the server "dies" mid-answer
                return
            event({**base, "choices": [{"index": 0, "delta": {"content": piece}, "logprobs": None,
                                        "finish_reason": None}]})
        event({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop",
                                    "stop_reason": None}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            event({**base, "choices": [], "usage": usage})
        event("[DONE]")
        handler.close_connection = True

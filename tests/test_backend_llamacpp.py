"""`ctxpack ask` against a real llama.cpp `llama-server` (built from the llama-cpp-python sdist, see
scripts/llama_server.sh) serving a tiny random-weight model with the real qwen2 vocabulary. Its answers are
gibberish: what is tested is the whole path — window discovery, counting, packing, streaming, the prefix
cache and the errors."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

import context_pack
from conftest import run_cli
from context_pack.backends import ContextExceededError, LlamaCppBackend, connect
from context_pack.model import DEFAULT_SYSTEM_PROMPT
from context_pack.tokens import get_tokenizer
from llama_server import LlamaServer, free_port, start_llama_server

QUESTIONS = ("How does the JSON decoder report the position of a syntax error?",
             "Where does the email package fold long header lines?")


def server_tokens(server: LlamaServer, text: str) -> int:
    return len(httpx.post(f"{server.url}/tokenize", json={"content": text}, timeout=30).json()["tokens"])


def fresh_system() -> str:
    """A system prompt no earlier request used, so the server's cache holds nothing of the next prompt."""
    return f"[run {uuid.uuid4().hex[:8]}] {DEFAULT_SYSTEM_PROMPT}"


def test_window_from_props_and_the_servers_tokenizer(llama_server: LlamaServer) -> None:
    backend = connect(llama_server.url)
    assert isinstance(backend, LlamaCppBackend)
    info = backend.info()
    assert (info.kind, info.window, info.window_source) == ("llamacpp", llama_server.n_ctx, "/props n_ctx")
    tokenizer = get_tokenizer(f"backend:{llama_server.url}")
    text = "def bulk_discount(item: Item, count: int) -> int:\n    return item.price_cents * count  # ¢\n"
    assert tokenizer.count(text) == server_tokens(llama_server, text) == backend.count(text)
    assert tokenizer.name == f"backend:{llama_server.url}"


def test_ask_end_to_end_streams_an_answer_within_the_window(llama_server: LlamaServer, stdlib_part: Path) -> None:
    result = run_cli("ask", str(stdlib_part), QUESTIONS[0], "--backend", llama_server.url, "--max-tokens", "48",
                     "-v")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # gibberish, but streamed
    assert f"window {llama_server.n_ctx} tokens from /props n_ctx" in result.stderr
    counted = re.search(r"server counted: prompt (\d+) tokens", result.stderr)
    assert counted and int(counted.group(1)) <= llama_server.n_ctx - 48, result.stderr

    pieces: list[str] = []
    answer = context_pack.ask(stdlib_part, QUESTIONS[0], llama_server.url, max_tokens=48, on_text=pieces.append)
    plan = answer.plan
    assert answer.sent and answer.text == "".join(pieces) and len(pieces) > 1
    assert plan.budget_source.startswith(f"auto: {llama_server.n_ctx} (/props n_ctx) - 48 max-tokens")
    # What the server counted is what ctxpack counted (apply-template + tokenize), and it fits with the answer.
    assert answer.usage["prompt_tokens"] == plan.prompt_tokens
    assert answer.timings["prompt_n"] + answer.timings["cache_n"] == plan.prompt_tokens
    assert plan.prompt_tokens + 48 <= llama_server.n_ctx
    assert plan.prompt_tokens >= 0.95 * (llama_server.n_ctx - 48)  # and the window is used
    assert plan.pack.tokens == server_tokens(llama_server, plan.pack.text) <= plan.budget
    assert plan.tokenize_calls <= 30
    assert plan.request["cache_prompt"] is True and plan.request["stream"] is True


def test_non_streaming_answer(llama_server: LlamaServer, example_repo: Path) -> None:
    answer = context_pack.ask(example_repo, "what is BULK_THRESHOLD?", llama_server.url, max_tokens=8,
                              stream=False, budget=500)
    assert answer.sent and answer.usage["completion_tokens"] <= 8 and answer.text
    assert answer.plan.pack.tokens <= 500 and "stream_options" not in answer.plan.request


def test_second_question_reuses_the_prefix_cache(llama_server: LlamaServer, stdlib_part: Path) -> None:
    system = fresh_system()
    first = context_pack.ask(stdlib_part, QUESTIONS[0], llama_server.url, max_tokens=8, system=system)
    second = context_pack.ask(stdlib_part, QUESTIONS[1], llama_server.url, max_tokens=8, system=system)
    assert first.prompt_evaluated is not None and second.prompt_evaluated is not None
    assert first.prompt_cached is not None and first.prompt_cached < 50  # nothing of this prompt was cached
    ratio = second.prompt_evaluated / first.prompt_evaluated
    # The stable half of the pack (and the system prompt before it) came from the slot's cache.
    assert ratio < 0.65, (first.timings, second.timings)
    assert second.prompt_cached is not None and second.prompt_cached >= 0.4 * second.plan.prompt_tokens

    # Control: a query-only pack shares little more than the system prompt between the two questions.
    system = fresh_system()
    first = context_pack.ask(stdlib_part, QUESTIONS[0], llama_server.url, max_tokens=8, system=system,
                             stable_share=0)
    second = context_pack.ask(stdlib_part, QUESTIONS[1], llama_server.url, max_tokens=8, system=system,
                              stable_share=0)
    assert second.prompt_evaluated / first.prompt_evaluated > 0.8  # type: ignore[operator]


def test_a_prompt_over_the_window_is_a_clear_error(llama_server: LlamaServer) -> None:
    backend = connect(llama_server.url, kind="llamacpp")
    messages = [{"role": "user", "content": "lorem ipsum " * 3000}]
    for stream in (True, False):
        with pytest.raises(ContextExceededError, match="does not fit the server's context window"):
            backend.chat(backend.chat_body("m", messages, 8, stream=stream))


def test_budget_flag_is_counted_by_the_server(llama_server: LlamaServer, stdlib_part: Path) -> None:
    result = run_cli("ask", str(stdlib_part), QUESTIONS[1], "--backend", llama_server.url, "--budget", "1000",
                     "--dry-run")
    assert result.returncode == 0, result.stderr
    assert '"cache_prompt": true' in result.stdout and '"stream": true' in result.stdout
    pack = context_pack.build(stdlib_part, budget=1000, config={"tokenizer": f"backend:{llama_server.url}"})
    assert pack.tokenizer == f"backend:{llama_server.url}"
    assert pack.tokens == server_tokens(llama_server, pack.text) <= 1000 and pack.tokens > 900


def test_server_stopped_mid_answer_and_nothing_listening(tmp_path: Path, example_repo: Path) -> None:
    server = start_llama_server(tmp_path, n_ctx=4096)
    try:
        started = time.monotonic()
        ask = subprocess.Popen([sys.executable, "-m", "context_pack", "ask", str(example_repo), "what is Stock?",
                                "--backend", server.url, "--max-tokens", "3000", "--timeout", "20"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert ask.stdout is not None
        first = ask.stdout.read(1)  # the answer has started streaming
        server.process.kill()  # the server dies mid-answer
        _, stderr = ask.communicate(timeout=30)
        assert first and ask.returncode == 1, stderr
        message = stderr.decode()
        assert message.startswith("ctxpack: error: ") and len(message.strip().splitlines()) == 1, message
        assert "dropped the connection" in message or "before it was complete" in message, message
        assert time.monotonic() - started < 25
    finally:
        server.stop()

    for url in (server.url, f"http://127.0.0.1:{free_port()}"):  # stopped, and never anything there
        started = time.monotonic()
        result = run_cli("ask", str(example_repo), "what is Stock?", "--backend", url, "--timeout", "5")
        assert result.returncode == 1
        assert result.stderr == f"ctxpack: error: cannot connect to {url}: connection refused (is the server " \
                                "running?)\n"
        assert time.monotonic() - started < 15

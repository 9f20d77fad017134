"""The vLLM adapter against a STUB that returns vLLM's documented responses (tests/vllm_stub.py).

vLLM needs a GPU and cannot run here; the llama.cpp tests (test_backend_llamacpp.py) use a real server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import context_pack
from conftest import run_cli
from context_pack.backends import BackendError, ContextExceededError, VllmBackend, connect
from vllm_stub import VllmStub, chat_template, toy_tokens


@pytest.fixture
def stub() -> Iterator[VllmStub]:
    with VllmStub(max_model_len=2048) as server:
        yield server


def test_auto_detects_vllm_and_reads_max_model_len(stub: VllmStub) -> None:
    backend = connect(stub.url + "/v1/")  # an OpenAI-style base URL works too
    assert isinstance(backend, VllmBackend)
    info = backend.info()
    assert (info.kind, info.window, info.model) == ("vllm", 2048, stub.model)
    assert info.window_source == "/v1/models max_model_len"
    assert backend.count("def f(x): return x") == len(toy_tokens("def f(x): return x"))
    messages = [{"role": "user", "content": "hi"}]
    assert backend.count_prompt(messages) == len(toy_tokens(chat_template(messages)))
    tokenize_bodies = [body for method, path, body in stub.requests if path == "/tokenize"]
    assert tokenize_bodies[0] == {"model": stub.model, "prompt": "def f(x): return x", "add_special_tokens": False}
    assert tokenize_bodies[1] == {"model": stub.model, "messages": messages, "add_generation_prompt": True}


def test_ask_streams_the_answer_and_fits_max_model_len(stub: VllmStub, example_repo: Path) -> None:
    pieces: list[str] = []
    answer = context_pack.ask(example_repo, "how is the bulk discount computed?", stub.url, max_tokens=256,
                              on_text=pieces.append)
    plan = answer.plan
    assert answer.sent and answer.text == "The answer is in stub.py." == "".join(pieces)
    assert plan.server.window == 2048 and plan.server.kind == "vllm"
    # The prompt the server counted equals ctxpack's own count through /tokenize, and leaves max_tokens free.
    assert answer.usage["prompt_tokens"] == plan.prompt_tokens <= 2048 - 256
    assert plan.pack.tokens <= plan.budget
    assert plan.prompt_tokens >= 0.9 * (2048 - 256)  # the window is used, not wasted
    chat = [body for method, path, body in stub.requests if path == "/v1/chat/completions"]
    assert len(chat) == 1
    assert chat[0]["model"] == stub.model and chat[0]["stream"] is True and chat[0]["max_tokens"] == 256
    assert chat[0]["stream_options"] == {"include_usage": True} and "cache_prompt" not in chat[0]
    sections = [packed.section for packed in plan.pack.chunks]
    assert sections == sorted(sections, key=["stable", "query"].index) and set(sections) == {"stable", "query"}


def test_cli_ask_and_dry_run(stub: VllmStub, example_repo: Path) -> None:
    result = run_cli("ask", str(example_repo), "where is Stock.remove?", "--backend", stub.url, "--kind", "vllm",
                     "--max-tokens", "100", "-v")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The answer is in stub.py.\n"
    assert "window 2048 tokens from /v1/models max_model_len" in result.stderr

    before = len(stub.requests)
    result = run_cli("ask", str(example_repo), "where is Stock.remove?", "--backend", stub.url, "--dry-run",
                     "--budget", "600", "--max-tokens", "100")
    assert result.returncode == 0, result.stderr
    request = json.loads(result.stdout)
    assert request["method"] == "POST" and request["url"] == f"{stub.url}/v1/chat/completions"
    body = request["body"]
    assert body["messages"][0]["role"] == "system" and body["messages"][1]["content"].endswith(
        "## Question\n\nwhere is Stock.remove?\n")
    assert not any(path == "/v1/chat/completions" for _, path, _ in stub.requests[before:])
    assert stub.tokenize({"prompt": body["messages"][1]["content"]})["count"] <= 600 + 20


def test_budget_takes_the_smaller_of_the_flag_and_the_window(stub: VllmStub, example_repo: Path) -> None:
    small = context_pack.ask(example_repo, "pricing", stub.url, budget=300, max_tokens=64, dry_run=True)
    assert small.plan.budget == 300 and small.plan.pack.tokens <= 300 and not small.sent
    large = context_pack.ask(example_repo, "pricing", stub.url, budget="64k", max_tokens=64, dry_run=True)
    assert large.plan.budget < 2048 and large.plan.prompt_tokens <= 2048 - 64


def test_context_exceeded_is_one_clear_line(stub: VllmStub, example_repo: Path) -> None:
    backend = connect(stub.url)
    body = backend.chat_body(stub.model, [{"role": "user", "content": "word " * 3000}], 10)
    with pytest.raises(ContextExceededError, match="does not fit the server's context window: This model's maxim"):
        backend.chat(body)


def test_server_errors_exit_1_with_one_line(stub: VllmStub, example_repo: Path) -> None:
    stub.mode = "error"
    result = run_cli("ask", str(example_repo), "q", "--backend", stub.url)
    assert result.returncode == 1
    assert result.stderr == f"ctxpack: error: {stub.url}/v1/chat/completions failed with HTTP 500: stub: engine " \
                            "crashed\n"
    stub.mode = "drop"
    result = run_cli("ask", str(example_repo), "q", "--backend", stub.url)
    assert result.returncode == 1 and result.stdout.startswith("The answer ")
    assert "ended the answer stream before it was complete" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_hanging_server_times_out(stub: VllmStub, example_repo: Path) -> None:
    stub.mode = "hang"
    started = time.monotonic()
    result = run_cli("ask", str(example_repo), "q", "--backend", stub.url, "--timeout", "1")
    assert result.returncode == 1
    assert result.stderr == f"ctxpack: error: {stub.url}/v1/chat/completions did not answer within 1s " \
                            "(see --timeout)\n"
    assert time.monotonic() - started < 20


def test_an_unknown_server_is_named_as_such(tmp_path: Path, example_repo: Path) -> None:
    with VllmStub() as other:
        other.models = lambda: {"object": "list", "data": [{"id": "x", "object": "model", "owned_by": "someone"}]}
        with pytest.raises(BackendError, match=r"cannot tell what server answers at .*pass --kind"):
            connect(other.url)
        result = run_cli("ask", str(example_repo), "q", "--backend", other.url, "--kind", "vllm")
        assert result.returncode == 1 and "gives no max_model_len" in result.stderr


def test_unknown_model_name(stub: VllmStub) -> None:
    with pytest.raises(BackendError, match="does not serve model 'other'"):
        connect(stub.url, model="other").info()


def test_ask_usage_errors_exit_2_before_any_request(stub: VllmStub, example_repo: Path, tmp_path: Path) -> None:
    cases = [
        ("ask", str(example_repo), "q"),  # no --backend
        ("ask", str(example_repo), "q", "--backend", stub.url, "--budget", "lots"),
        ("ask", str(example_repo), "q", "--backend", stub.url, "--kind", "tgi"),
        ("ask", str(example_repo), "q", "--backend", stub.url, "--max-tokens", "0"),
        ("ask", str(example_repo), "q", "--backend", stub.url, "--stable-share", "1.5"),
        ("ask", str(tmp_path / "missing"), "q", "--backend", stub.url),
    ]
    for args in cases:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("ctxpack: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert stub.requests == []
    help_text = run_cli("ask", "--help").stdout
    assert "Examples:" in help_text and "ctxpack ask" in help_text and "--dry-run" in help_text

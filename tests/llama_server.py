"""A real llama.cpp `llama-server` for the tests: built from the llama-cpp-python sdist by
scripts/llama_server.sh (cached), serving the tiny random-weight model of fixtures/tiny_model.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "fixtures"))

from tiny_model import tiny_model  # noqa: E402

STARTUP_SECONDS = 120


def llama_server_binary() -> Path:
    """$CTXPACK_LLAMA_SERVER, else the cached build (scripts/llama_server.sh builds it on first use, ~6 min)."""
    given = os.environ.get("CTXPACK_LLAMA_SERVER")
    if given:
        return Path(given)
    result = subprocess.run(["bash", str(REPO / "scripts" / "llama_server.sh")], check=True, capture_output=True,
                            text=True)
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LlamaServer:
    url: str
    n_ctx: int
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_llama_server(log_dir: Path, n_ctx: int = 4096) -> LlamaServer:
    """`llama-server -m tiny.gguf -c N -np 1` on 127.0.0.1: one slot, so consecutive requests share its cache.

    One thread: the model is tiny, and on two shared cores two spinning threads made it ten times slower."""
    binary = llama_server_binary()
    port = free_port()
    log = log_dir / f"llama-server-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(binary), "-m", str(tiny_model()), "-c", str(n_ctx), "-np", "1", "--host", "127.0.0.1",
             "--port", str(port), "-t", "1", "--seed", "7"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LlamaServer(url=f"http://127.0.0.1:{port}", n_ctx=n_ctx, process=process, log=log)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama-server exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"llama-server did not become healthy in {STARTUP_SECONDS}s:\n{server.log_tail()}")

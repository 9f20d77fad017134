from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "fixtures"))

from make_repo import make_repo  # noqa: E402

# A slice of the standard library: packages and modules of very different shapes.
STDLIB_PART = ("json", "email", "http", "logging", "argparse.py", "dataclasses.py", "textwrap.py",
               "functools.py", "unittest", "xml/dom", "tomllib", "wsgiref")


def git(repo: Path, *args: str, date: str = "2024-01-01T00:00:00+00:00") -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    result = subprocess.run(["git", "-C", str(repo), *args], check=True, env=env, capture_output=True, text=True)
    return result.stdout


def init_repo(path: Path, files: dict[str, str | bytes]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for rel, content in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture(scope="session")
def example_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("example") / "repo")


@pytest.fixture(scope="session")
def stdlib_part(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Part of the Python standard library, committed into a git repo."""
    source = Path(sysconfig.get_paths()["stdlib"])
    dest = tmp_path_factory.mktemp("stdlib") / "lib"
    dest.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "test", "tests")
    for name in STDLIB_PART:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / name)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "stdlib part")
    return dest


@pytest.fixture(scope="session")
def tokenizer():
    from context_pack.tokens import get_tokenizer

    return get_tokenizer("tiktoken:cl100k_base")


# One of each kind of tokenizer, all real: tiktoken's cl100k, Qwen2's tokenizer.json (derived from llama.cpp's
# copy of its vocabulary, see fixtures/hf_vocab.py), and llama.cpp's own vocabularies, a SentencePiece one
# (llama-spm) and a byte-level BPE one (deepseek-coder), counted by llama-cpp-python.
TOKENIZER_KINDS = ("tiktoken", "hf", "gguf-spm", "gguf-bpe")


def tokenizer_spec(kind: str) -> str:
    from hf_vocab import qwen2_tokenizer_json
    from llama_sdist import vocab

    specs = {
        "tiktoken": lambda: "tiktoken:cl100k_base",
        "hf": lambda: f"hf:{qwen2_tokenizer_json()}",
        "gguf-spm": lambda: f"gguf:{vocab('llama-spm')}",
        "gguf-bpe": lambda: f"gguf:{vocab('deepseek-coder')}",
    }
    return specs[kind]()


def run_cli(*args: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "context_pack", *args], capture_output=True, text=True,
                          cwd=cwd, input=stdin, encoding="utf-8", env={**os.environ})


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory):
    """One real llama-server (tiny random-weight model, 4096-token window, one slot) for the whole session."""
    from llama_server import start_llama_server

    server = start_llama_server(tmp_path_factory.mktemp("llama-server"))
    yield server
    server.stop()

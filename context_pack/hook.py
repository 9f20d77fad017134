"""Git hooks: the pre-commit pack of the staged change, and a plain `.git/hooks/pre-commit` that runs it.

Used by the pre-commit framework (`.pre-commit-hooks.yaml` at the repository's top) and by
`ctxpack hook install` for people who do not use it. A hook must never lose a commit to ctxpack's own
failure, so failures are warnings unless `strict`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .errors import CtxpackError, UsageError
from .model import Pack

HOOK_MARKER = "# installed by `ctxpack hook install`"


@dataclass
class HookPack:
    pack: Pack | None  # None when nothing is staged
    path: Path | None
    seconds: float


def write_staged_pack(root: Path, config: Config, output: str | None = None, fmt: str = "md") -> HookPack:
    """Refresh the index and write the pack of the staged change to `output` (default `config.pack_file`,
    relative to the root); nothing is written when nothing is staged."""
    from . import pipeline
    from .staged import read_staged

    started = time.perf_counter()
    change = read_staged(root)
    if change.empty:
        return HookPack(pack=None, path=None, seconds=time.perf_counter() - started)
    pack, _ = pipeline.build_with_corpus(root, config, fmt=fmt, staged=change)
    target = Path(output or config.pack_file)
    if not target.is_absolute():
        target = root / target
    write_atomically(target, pack.text)
    return HookPack(pack=pack, path=target, seconds=time.perf_counter() - started)


def write_atomically(target: Path, text: str) -> None:
    """Write through a temporary file and a rename, so a killed hook never leaves half a pack."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.replace(temporary, target)
        except BaseException:
            with suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise CtxpackError(f"cannot write {target}: {exc.strerror or exc}") from None


def git_hook_path(root: Path, name: str = "pre-commit") -> Path:
    """Where git looks for a hook (honours core.hooksPath and worktrees)."""
    try:
        result = subprocess.run(["git", "-C", str(root), "rev-parse", "--git-path", f"hooks/{name}"],
                                capture_output=True, text=True, check=False)
    except OSError as exc:
        raise CtxpackError(f"cannot run git: {exc.strerror or exc}") from None
    if result.returncode != 0:
        raise UsageError(f"not a git repository: {root}")
    path = Path(result.stdout.strip())
    return path if path.is_absolute() else (root / path)


def install_git_hook(root: Path, arguments: list[str], force: bool = False) -> Path:
    """Write a plain `pre-commit` hook that runs `ctxpack hook run` with `arguments`."""
    target = git_hook_path(root)
    if target.exists() and not force:
        raise CtxpackError(f"a pre-commit hook already exists at {target}; use --force to replace it")
    command = shlex.join([*_ctxpack_command(), "hook", "run", *arguments])
    script = f"#!/bin/sh\n{HOOK_MARKER}: writes the staged change's pack; never blocks a commit.\nexec {command}\n"
    write_atomically(target, script)
    target.chmod(0o755)
    return target


def _ctxpack_command() -> list[str]:
    """This ctxpack, by absolute path: git runs hooks with a PATH that may not hold it. Run as
    `python -m context_pack`, it is this Python with `-m context_pack`."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "ctxpack" and argv0.exists():
        return [str(argv0.absolute())]
    found = shutil.which("ctxpack")
    if found:
        return [str(Path(found).absolute())]
    return [sys.executable, "-m", "context_pack"]


REVIEW_SYSTEM_PROMPT = (
    "You are a careful code reviewer. The user message holds a staged change (a unified diff) and the code "
    "around it. Review only the change: point out bugs, unsafe or breaking edits, missing tests. Quote file "
    "and line. Start a line with BLOCKER: only for a problem that must be fixed before the commit."
)
REVIEW_REQUEST = "Review the staged change above."
REVIEW_MAX_TOKENS = 512
SAFETY_TOKENS = 8
FIT_ATTEMPTS = 3


@dataclass
class Review:
    text: str
    pack: Pack | None  # None when nothing is staged
    prompt_tokens: int
    window: int
    seconds: float


def review_staged(root: Path, config: Config, backend: str, *, kind: str = "auto", model: str | None = None,
                  max_tokens: int = REVIEW_MAX_TOKENS, timeout: float = 120.0,
                  on_text: Callable[[str], None] | None = None) -> Review:
    """Send the staged change's pack to the model server and return its review (streamed to `on_text`).

    The pack's budget is the server's window less the review's `max_tokens` and the rest of the prompt,
    counted by the server; the pack text itself is counted by the server's tokenizer (`backend:URL`).
    """
    from . import pipeline
    from .backends import connect
    from .backends.client import BackendError
    from .staged import read_staged

    started = time.perf_counter()
    change = read_staged(root)
    if change.empty:
        return Review(text="", pack=None, prompt_tokens=0, window=0, seconds=time.perf_counter() - started)
    server = connect(backend, kind=kind, model=model, timeout=timeout)
    try:
        info = server.info()
        model_name = model or info.model
        probe = Pack(root=str(root), budget=0, tokens=0, tokenizer="", query=None, format="md", text="", chunks=[],
                     files_considered=0, chunks_considered=0)
        overhead = server.count_prompt(probe.to_messages(REVIEW_REQUEST, REVIEW_SYSTEM_PROMPT), model_name)
        budget = min(config.budget, info.window - max_tokens - overhead - SAFETY_TOKENS)
        if budget < 64:
            raise BackendError(f"no room for the change in the server's window of {info.window} tokens "
                               f"(max tokens {max_tokens}, prompt {overhead})")
        counted = config.with_overrides(tokenizer=f"backend:{server.url}")
        corpus, ranked = pipeline.collect_and_rank(root, counted, staged=change)  # once; only the packing retries
        try:
            for _ in range(FIT_ATTEMPTS):
                pack = pipeline.pack_corpus(corpus, ranked, budget, counted, staged=change)
                messages = pack.to_messages(REVIEW_REQUEST, REVIEW_SYSTEM_PROMPT)
                prompt_tokens = server.count_prompt(messages, model_name)
                over = prompt_tokens + max_tokens - info.window
                if over <= 0:
                    break
                budget -= over + SAFETY_TOKENS  # the pack met the request at a token boundary: shrink, retry
            else:
                raise BackendError(f"could not fit the review prompt in the window of {info.window} tokens")
        finally:
            corpus.close()
        result = server.chat(server.chat_body(model_name, messages, max_tokens, stream=True), on_text)
        return Review(text=result.text, pack=pack, prompt_tokens=prompt_tokens, window=info.window,
                      seconds=time.perf_counter() - started)
    finally:
        server.close()

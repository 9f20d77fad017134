"""`ask`: pack a repository for a question within a model server's window, and send it.

The budget (with `budget="auto"`) is the server's window minus the answer's `max_tokens` minus everything in
the prompt that is not the pack — system prompt, question, chat template — counted by the server itself.
The pack has a query-independent `stable` section first and the `query` section after it, so the prompt
of a second question about the same repo starts with the same tokens as the first one's: llama.cpp's
`cache_prompt` and vLLM's prefix caching then skip evaluating them again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import pipeline
from .backends import DEFAULT_TIMEOUT, Backend, BackendError, ServerInfo, connect
from .backends.client import ChatResult
from .backends.tokenizer import BackendTokenizer
from .config import Config, parse_budget
from .errors import UsageError
from .model import Pack
from .pack import pack_split
from .render import normalise_format

log = logging.getLogger("context_pack")

DEFAULT_MAX_TOKENS = 1024
DEFAULT_STABLE_SHARE = 0.5  # of the room for context: query-independent, shared by every question
SAFETY_TOKENS = 4  # where the pack text meets the question, the tokenizer may merge differently than apart
MIN_CONTEXT_TOKENS = 64  # less room than this for the pack: the question cannot be asked usefully
FIT_ATTEMPTS = 3


@dataclass
class Plan:
    """What `ask` decided before sending: the server, the budget and why, the pack and the request."""

    url: str
    server: ServerInfo
    model: str
    max_tokens: int
    overhead: int  # prompt tokens that are not the pack: system prompt, question, chat template
    budget: int  # the pack's budget, counted by the server's tokenizer
    budget_source: str  # "auto (...)" or "--budget N"
    stable_budget: int
    pack: Pack
    messages: list[dict[str, str]]
    prompt_tokens: int  # the whole templated prompt, counted by the server: ≤ window - max_tokens
    request: dict[str, Any]
    tokenize_calls: int = 0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Answer:
    plan: Plan
    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)  # llama.cpp: prompt_n (evaluated), cache_n (reused)
    sent: bool = False  # False for a dry run

    @property
    def prompt_evaluated(self) -> int | None:
        """Prompt tokens the server had to evaluate (the rest came from its prefix cache), when it says."""
        if "prompt_n" in self.timings:
            return int(self.timings["prompt_n"])
        details = self.usage.get("prompt_tokens_details") or {}
        if "prompt_tokens" in self.usage and details.get("cached_tokens") is not None:
            return int(self.usage["prompt_tokens"]) - int(details["cached_tokens"])
        return None

    @property
    def prompt_cached(self) -> int | None:
        if "cache_n" in self.timings:
            return int(self.timings["cache_n"])
        cached = (self.usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        return None if cached is None else int(cached)


def ask(
    root: str | Path,
    question: str,
    backend: str | Backend,
    *,
    kind: str = "auto",
    model: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    budget: int | str = "auto",
    system: str | None = None,
    config: Config | Mapping[str, Any] | None = None,
    stable_share: float = DEFAULT_STABLE_SHARE,
    format: str = "md",
    timeout: float = DEFAULT_TIMEOUT,
    dry_run: bool = False,
    stream: bool = True,
    on_text: Callable[[str], None] | None = None,
    use_cache: bool = True,
) -> Answer:
    """Ask a llama.cpp or vLLM server `question` about the repository at `root`, with the best pack that fits.

    `backend` is the server's URL (or a connected `Backend`). `on_text` gets each piece of the answer as it
    streams. `dry_run` does everything but send the chat request (the server is still asked for its window
    and token counts); `Answer.plan.request` is the request that would have been sent.
    """
    root_path = Path(root)
    if not root_path.exists():
        raise UsageError(f"path does not exist: {root}")
    if not question.strip():
        raise UsageError("the question is empty")
    if max_tokens < 1:
        raise UsageError("max_tokens must be at least 1")
    if not 0.0 <= stable_share <= 1.0:
        raise UsageError("stable_share must be between 0 and 1")
    fixed_budget = None if str(budget).strip().lower() == "auto" else parse_budget(budget)
    server = connect(backend, kind=kind, model=model, timeout=timeout) if isinstance(backend, str) else backend
    try:
        plan = plan_request(root_path, question, server, model=model, max_tokens=max_tokens, budget=fixed_budget,
                            system=system, config=config, stable_share=stable_share, fmt=format, stream=stream,
                            use_cache=use_cache)
        if dry_run:
            return Answer(plan=plan)
        started = time.perf_counter()
        result: ChatResult = server.chat(plan.request, on_text)
        plan.timings["answer"] = time.perf_counter() - started
        return Answer(plan=plan, text=result.text, finish_reason=result.finish_reason, usage=result.usage,
                      timings=result.timings, sent=True)
    finally:
        if isinstance(backend, str):
            server.close()


def plan_request(root: Path, question: str, server: Backend, *, model: str | None, max_tokens: int,
                 budget: int | None, system: str | None, config: Config | Mapping[str, Any] | None,
                 stable_share: float, fmt: str, stream: bool, use_cache: bool) -> Plan:
    """Discover the window, size the budget, build the two-part pack and check the whole prompt fits."""
    fmt = normalise_format(fmt)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    info = server.info()
    model_name = model or info.model
    tokenizer = BackendTokenizer(server)

    def empty_pack(text: str = "") -> Pack:
        return Pack(root=str(root), budget=0, tokens=0, tokenizer=tokenizer.name, query=question, format=fmt,
                    text=text, chunks=[], files_considered=0, chunks_considered=0)

    # Everything in the prompt but the pack, with and without the question (the stable part must not
    # depend on the question, or its text — the shared prefix — would change from one question to the next).
    overhead = server.count_prompt(empty_pack().to_messages(question, system), model_name)
    base = server.count_prompt(empty_pack().to_messages("", system), model_name)
    room = info.window - max_tokens - overhead - SAFETY_TOKENS
    if room < MIN_CONTEXT_TOKENS:
        raise BackendError(f"no room for context: window {info.window} - max-tokens {max_tokens} - question and "
                           f"template {overhead} leaves {max(room, 0)} tokens (lower --max-tokens)")
    if budget is None:
        pack_budget = room
        budget_source = f"auto: {info.window} ({info.window_source}) - {max_tokens} max-tokens - {overhead} prompt"
        stable_room = info.window - max_tokens - base - SAFETY_TOKENS
    else:
        pack_budget = min(budget, room)
        budget_source = f"--budget {budget}"
        if budget > room:
            log.warning("--budget %d does not fit the server's window %d with --max-tokens %d: using %d",
                        budget, info.window, max_tokens, room)
            budget_source += f" (clamped to {room})"
        stable_room = budget
    stable_budget = int(stable_share * stable_room)
    timings["server"] = time.perf_counter() - started

    started = time.perf_counter()
    resolved = pipeline.resolve_config(root, config)
    corpus, ranked = pipeline.collect_and_rank(root, resolved, query=question, use_cache=use_cache)
    try:
        stable_ranked = pipeline.rank(corpus, resolved)  # the same chunks with no query: the stable part's order
        timings["rank"] = time.perf_counter() - started

        started = time.perf_counter()
        for _ in range(FIT_ATTEMPTS):
            result = pack_split(stable_ranked, ranked, pack_budget, stable_budget, tokenizer, fmt, corpus.root.name,
                                corpus.line_counts)
            pack = Pack(root=str(corpus.root), budget=pack_budget, tokens=result.tokens, tokenizer=tokenizer.name,
                        query=question, format=fmt, text=result.text, chunks=result.chunks,
                        files_considered=len(corpus.files), chunks_considered=len(corpus.chunks))
            messages = pack.to_messages(question, system)
            prompt_tokens = server.count_prompt(messages, model_name)
            over = prompt_tokens + max_tokens - info.window
            if over <= 0:
                break
            # The pack and the question met at a token boundary the separate counts did not see: shrink, retry.
            pack_budget -= over + SAFETY_TOKENS
        else:
            raise BackendError(f"could not fit the prompt in the window of {info.window} tokens "
                               f"({prompt_tokens} prompt + {max_tokens} max-tokens)")
    finally:
        corpus.close()
    timings["pack"] = time.perf_counter() - started
    request = server.chat_body(model_name, messages, max_tokens, stream=stream)
    return Plan(url=server.url, server=info, model=model_name, max_tokens=max_tokens, overhead=overhead,
                budget=pack_budget, budget_source=budget_source, stable_budget=stable_budget, pack=pack,
                messages=messages, prompt_tokens=prompt_tokens, request=request, tokenize_calls=tokenizer.calls,
                timings=timings)

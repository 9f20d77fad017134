"""The `ctxpack` command: a thin shell over the library. Parses arguments, calls, prints."""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from . import pipeline
from .config import parse_budget
from .errors import CtxpackError, UsageError
from .model import FEATURE_NAMES, ScoredChunk
from .staged import read_staged
from .tokens import Tokenizer, get_tokenizer
from .walk import WARN_REASONS

log = logging.getLogger("context_pack")


class _State:
    debug = False


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("ctxpack: %(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False


def _read_query(query: str | None, query_file: str | None) -> str | None:
    if query is not None and query_file is not None:
        raise UsageError("give --query or --query-file, not both")
    if query_file is not None:
        try:
            return Path(query_file).read_text("utf-8", errors="replace")
        except FileNotFoundError:
            raise UsageError(f"query file does not exist: {query_file}") from None
        except OSError as exc:
            raise CtxpackError(f"cannot read query file {query_file}: {exc.strerror}") from None
    return query


def _overrides(budget: str | None, include: tuple[str, ...], exclude: tuple[str, ...],
               tokenizer: str | None = None, no_redact: bool = False) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if no_redact:
        values["redact"] = False
    if budget is not None:
        values["budget"] = parse_budget(budget)
    if tokenizer is not None:
        values["tokenizer"] = tokenizer
    if include:
        values["include"] = include
    if exclude:
        values["exclude"] = exclude
    return values


def _common_options(function: Any) -> Any:
    options = [
        click.argument("path", type=click.Path(file_okay=False, path_type=Path)),
        click.option("--query", "-q", help="What the pack is for: a question, an issue, a traceback."),
        click.option("--query-file", type=click.Path(dir_okay=False), help="Read the query from a file."),
        click.option("--focus", multiple=True, metavar="PATH", help="A file to centre the pack on (repeat)."),
        click.option("--staged", is_flag=True,
                     help="Centre the pack on the staged change (git diff --cached), whose diff goes first."),
        click.option("--include", multiple=True, metavar="GLOB", help="Only files matching (repeat)."),
        click.option("--exclude", multiple=True, metavar="GLOB", help="Leave out files matching (repeat)."),
        click.option("--tokenizer", "-t", metavar="SPEC",
                     help="Count tokens as the model does: tiktoken:cl100k_base (default), tiktoken:o200k_base, "
                          "hf:PATH (tokenizer.json or a model folder), gguf:PATH (a GGUF model)."),
        click.option("--no-cache", is_flag=True, help="Keep the index in memory; write nothing to .ctxpack/."),
        click.option("--no-redact", is_flag=True,
                     help="Read secret files (.env, keys) and leave secrets in the text. Dangerous."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
        click.option("--verbose", "-v", is_flag=True, help="Timings and skipped files on stderr."),
        click.option("--debug", is_flag=True, help="Show tracebacks on errors."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="context-pack", prog_name="ctxpack")
def cli() -> None:
    """ctxpack — pack the code that matters into a model's token budget.

    \b
    Examples:
      ctxpack build . --budget 32k > pack.md
      ctxpack build repo/ --budget 16k --query "why does URLField raise ValueError" --format json
      ctxpack explain repo/ --query-file issue.txt --top 20
      ctxpack ask repo/ "where is the retry policy?" --backend http://127.0.0.1:8080
    """


@cli.command()
@_common_options
@click.option("--budget", "-b", help="Token budget: 8000, 32k (×1024), 1m. Default 32k or the config's.")
@click.option("--format", "-f", "fmt", default="md", show_default=True,
              type=click.Choice(["md", "markdown", "xml", "plain", "json"], case_sensitive=False),
              help="Pack text format; json is a report on the markdown pack.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of stdout.")
def build(path: Path, query: str | None, query_file: str | None, focus: tuple[str, ...], staged: bool,
          include: tuple[str, ...], exclude: tuple[str, ...], tokenizer: str | None, no_cache: bool, no_redact: bool,
          quiet: bool,
          verbose: bool, debug: bool, budget: str | None, fmt: str, output: Path | None) -> None:
    """Build a pack of PATH that fits the budget, counted with the tokenizer (cl100k by default).

    \b
    Examples:
      ctxpack build . --budget 32k
      ctxpack build repo/ -b 8000 --query "KeyError in parse_header" --format json
      ctxpack build repo/ --query-file traceback.txt --focus src/app.py -o pack.md
      ctxpack build repo/ --include 'src/**' --exclude '*.md' --format xml
      ctxpack build . --staged --budget 16k -o .ctxpack/pack.md
      ctxpack build repo/ -b 32k --tokenizer gguf:models/qwen2.5-coder-32b-q4_k_m.gguf
    """
    _State.debug = debug
    _setup_logging(verbose)
    started = time.perf_counter()
    text_query = _read_query(query, query_file)
    if not path.exists():
        raise UsageError(f"path does not exist: {path}")
    config = pipeline.resolve_config(path, _overrides(budget, include, exclude, tokenizer, no_redact))
    text_format = "md" if fmt.lower() == "json" else fmt
    with _progress(quiet) as progress:
        pack, corpus = pipeline.build_with_corpus(path, config, query=text_query, focus=focus, fmt=text_format,
                                                  use_cache=not no_cache, progress=progress, staged=staged)
    out = json.dumps(pack.to_json_dict(), ensure_ascii=False, indent=2) + "\n" if fmt.lower() == "json" else pack.text
    _emit(out, output)
    _report_skips(corpus.skipped)
    if verbose:
        redactions = pack.redactions
        if redactions:
            log.info("redacted %d secret(s) in the pack: %s", len(redactions),
                     ", ".join(f"{r.path}:{r.line} ({r.kind})" for r in redactions))
        timings = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in corpus.timings.items())
        log.info("%d files, %d chunks; %s; total %.2fs; pack %d/%d tokens, %d chunks",
                 pack.files_considered, pack.chunks_considered, timings, time.perf_counter() - started,
                 pack.tokens, pack.budget, len(pack.chunks))


@cli.command()
@_common_options
@click.option("--top", default=30, show_default=True, type=click.IntRange(min=1), help="How many chunks.")
def explain(path: Path, query: str | None, query_file: str | None, focus: tuple[str, ...], staged: bool,
            include: tuple[str, ...], exclude: tuple[str, ...], tokenizer: str | None, no_cache: bool,
            no_redact: bool, quiet: bool, verbose: bool, debug: bool, top: int) -> None:
    """Show the top-ranked chunks of PATH with every feature, the final score and the size in tokens.

    \b
    Examples:
      ctxpack explain .
      ctxpack explain repo/ --query "retry policy" --top 10
    """
    _State.debug = debug
    _setup_logging(verbose)
    text_query = _read_query(query, query_file)
    if not path.exists():
        raise UsageError(f"path does not exist: {path}")
    config = pipeline.resolve_config(path, _overrides(None, include, exclude, tokenizer, no_redact))
    counter = get_tokenizer(config.tokenizer)
    with _progress(quiet) as progress:
        change = read_staged(path) if staged else None
        corpus, ranked = pipeline.collect_and_rank(path, config, text_query, focus, not no_cache, progress, change)
    _report_skips(corpus.skipped)
    try:
        _print_ranking(corpus, ranked, top, counter)
    finally:
        corpus.close()


def _print_ranking(corpus: pipeline.Corpus, ranked: Sequence[ScoredChunk], top: int, counter: Tokenizer) -> None:
    shown = ranked[:top]
    sizes = counter.count_many([item.chunk.text for item in shown])

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Top {len(shown)} of {len(ranked)} chunks in {corpus.root.name} "
                        f"(tokens: {counter.name})")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("chunk", overflow="fold")
    table.add_column("kind")
    table.add_column("tokens", justify="right")
    for name in FEATURE_NAMES:
        table.add_column(name[:6], justify="right")
    for position, (item, size) in enumerate(zip(shown, sizes, strict=True), start=1):
        chunk = item.chunk
        where = f"{chunk.path}:{chunk.start_line}-{chunk.end_line}"
        label = f"{where} {chunk.name}" if chunk.name else where
        table.add_row(str(position), f"{item.score:.3f}", label, chunk.kind, str(size),
                      *(f"{item.features.get(name, 0.0):.2f}" for name in FEATURE_NAMES))
    Console(file=sys.stdout, width=160 if not sys.stdout.isatty() else None).print(table)


@cli.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-redact", is_flag=True,
              help="Read secret files (.env, keys) and leave secrets in the text. Dangerous.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--verbose", "-v", is_flag=True, help="Timings and skipped files on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def index(path: Path, no_redact: bool, quiet: bool, verbose: bool, debug: bool) -> None:
    """Parse PATH into its index (.ctxpack/index.db) so the next build is quick.

    \b
    Examples:
      ctxpack index .
      ctxpack index repo/ --quiet && ctxpack build repo/ -b 16k
    """
    _State.debug = debug
    _setup_logging(verbose)
    if not path.exists():
        raise UsageError(f"path does not exist: {path}")
    config = pipeline.resolve_config(path, _overrides(None, (), (), no_redact=no_redact))
    started = time.perf_counter()
    with _progress(quiet) as progress:
        corpus = pipeline.collect(path, config, progress=progress)
    _report_skips(corpus.skipped)
    try:
        corpus.centrality()  # computed and cached now, so its cost shows here and not in the next build
    finally:
        corpus.close()
    click.echo(f"indexed {len(corpus.files)} files, {len(corpus.chunks)} chunks "
               f"({corpus.parsed_files} parsed, {len(corpus.files) - corpus.parsed_files} unchanged) "
               f"in {time.perf_counter() - started:.2f}s")


@cli.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def stats(path: Path, as_json: bool, debug: bool) -> None:
    """Show what the index of PATH holds, and what the walk skips and why.

    \b
    Examples:
      ctxpack stats .
      ctxpack stats repo/ --json
    """
    _State.debug = debug
    _setup_logging(False)
    if not path.exists():
        raise UsageError(f"path does not exist: {path}")
    figures = pipeline.index_stats(path)
    if as_json:
        click.echo(json.dumps(figures, indent=2, sort_keys=True))
        return
    click.echo(f"index:     {figures['location']} (schema {figures['schema']}, {figures['db_bytes']:,} bytes)")
    click.echo(f"state:     {figures['state']}" + (" (made by other code or settings: the next build parses "
                                                   "every file again)" if figures["state"] == "stale" else ""))
    click.echo(f"files:     {figures['files']:,} indexed, {figures['walked']:,} walked")
    click.echo("languages: " + ", ".join(f"{k} {v}" for k, v in figures["languages"].items()))
    for reason, count in sorted(figures["skipped"].items()):
        click.echo(f"skipped:   {count:,} {reason}")


@cli.group()
def hook() -> None:
    """Git hooks: the staged change's pack before each commit.

    \b
    With the pre-commit framework (.pre-commit-config.yaml):
      - repo: https://github.com/<owner>/ctxpack
        rev: <tag or sha>
        hooks:
          - id: ctxpack
            args: [--budget, 16k]
    Without it:
      ctxpack hook install
    """


@hook.command("run")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--budget", "-b", help="Token budget: 16000, 16k (×1024) or 1m. Default: config, else 32k.")
@click.option("--output", "-o", help="Where to write the pack, relative to PATH. Default: .ctxpack/pack.md.")
@click.option("--format", "-f", "fmt", default="md", show_default=True,
              type=click.Choice(["md", "markdown", "xml", "plain"], case_sensitive=False))
@click.option("--strict", is_flag=True, help="Fail (and so block the commit) when the pack cannot be built.")
@click.option("--quiet", is_flag=True, help="Print nothing when all goes well.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def hook_run(path: Path, budget: str | None, output: str | None, fmt: str, strict: bool, quiet: bool,
             debug: bool) -> None:
    """Write the pack of the staged change (what `git commit` is about to record) to a file.

    The diff goes first, then the changed functions whole, their callers and callees, the tests that
    cover them and the modules around them. Never blocks a commit unless --strict.

    \b
    Examples:
      ctxpack hook run
      ctxpack hook run --budget 16k --output .ctxpack/review.md --strict
    """
    from .hook import write_staged_pack

    _State.debug = debug
    _setup_logging(False)
    try:
        if not path.exists():
            raise UsageError(f"path does not exist: {path}")
        config = pipeline.resolve_config(path, _overrides(budget, (), ()))
        result = write_staged_pack(path, config, output, fmt=fmt)
    except (CtxpackError, UsageError, OSError) as exc:
        if strict:
            raise
        sys.stderr.write(f"ctxpack: warning: no pack for this commit ({exc}); the commit goes on\n")
        return
    if quiet:
        return
    if result.pack is None:
        click.echo("ctxpack: nothing staged; no pack written")
        return
    click.echo(f"ctxpack: wrote {result.path} ({result.pack.tokens}/{result.pack.budget} tokens, "
               f"{len(result.pack.chunks)} chunks) in {result.seconds:.2f}s")


@hook.command("review")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--backend", metavar="URL", help="The model server (llama.cpp or vLLM). Default: `backend` in config.")
@click.option("--kind", type=click.Choice(["auto", "llamacpp", "vllm"]), help="Which server it is (default auto).")
@click.option("--model", help="Model name to send (default: the one the server serves).")
@click.option("--max-tokens", default=512, show_default=True, type=click.IntRange(min=1), help="Room for the review.")
@click.option("--budget", "-b", help="At most this many pack tokens (default: config; always within the window).")
@click.option("--fail-on", metavar="REGEX", help="Block the commit when the review matches (e.g. '^BLOCKER:').")
@click.option("--timeout", default=120.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds to wait for any answer from the server.")
@click.option("--strict", is_flag=True, help="Fail when the review cannot be had (server down, ...).")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def hook_review(path: Path, backend: str | None, kind: str | None, model: str | None, max_tokens: int,
                budget: str | None, fail_on: str | None, timeout: float, strict: bool, debug: bool) -> None:
    """Ask the local model to review the staged change, with the code around it, and print the review.

    Never blocks a commit by default: an unreachable server is a warning (unless --strict), and only
    --fail-on REGEX turns a review into a refusal.

    \b
    Examples:
      ctxpack hook review --backend http://127.0.0.1:8080
      ctxpack hook review --backend http://gpu-box:8000 --kind vllm --fail-on '^BLOCKER:'
    """
    import re

    from .hook import review_staged

    _State.debug = debug
    _setup_logging(False)
    if not path.exists():
        raise UsageError(f"path does not exist: {path}")
    config = pipeline.resolve_config(path, _overrides(budget, (), ()))
    pattern_text = fail_on if fail_on is not None else config.review_fail_on
    try:
        pattern = re.compile(pattern_text, re.MULTILINE) if pattern_text else None
    except re.error as exc:
        raise UsageError(f"bad --fail-on pattern {pattern_text!r}: {exc}") from None
    url = backend or config.backend
    if not url:
        if strict:
            raise UsageError("no model server: give --backend URL or set `backend` in [tool.ctxpack]")
        sys.stderr.write("ctxpack: warning: no model server configured (--backend); no review\n")
        return
    sys.stdout.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]

    def show(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    click.echo(f"ctxpack review by {url}:")
    try:
        review = review_staged(path, config, url, kind=kind or config.backend_kind, model=model or config.model or None,
                               max_tokens=max_tokens, timeout=timeout, on_text=show)
    except (CtxpackError, UsageError, OSError) as exc:
        if strict:
            raise
        sys.stderr.write(f"ctxpack: warning: no review ({exc}); the commit goes on\n")
        return
    if review.pack is None:
        click.echo("nothing staged; no review")
        return
    click.echo(f"\n[{review.prompt_tokens} prompt tokens of a {review.window}-token window, {review.seconds:.1f}s]")
    if pattern is not None and pattern.search(review.text):
        raise CtxpackError(f"the review matches --fail-on {pattern_text!r}: commit refused")


@hook.command("install")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Replace an existing pre-commit hook.")
@click.option("--budget", "-b", help="Passed to `ctxpack hook run`.")
@click.option("--output", "-o", help="Passed to `ctxpack hook run`.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def hook_install(path: Path, force: bool, budget: str | None, output: str | None, debug: bool) -> None:
    """Write a plain .git/hooks/pre-commit that runs `ctxpack hook run` (for repos without pre-commit).

    \b
    Examples:
      ctxpack hook install
      ctxpack hook install repo/ --budget 16k --force
    """
    from .hook import install_git_hook

    _State.debug = debug
    if not path.exists():
        raise UsageError(f"path does not exist: {path}")
    if budget is not None:
        parse_budget(budget)  # a bad budget fails now, not at every commit
    arguments = [*(["--budget", budget] if budget else []), *(["--output", output] if output else [])]
    target = install_git_hook(path, arguments, force=force)
    click.echo(f"ctxpack: installed {target}")


@cli.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.argument("question")
@click.option("--backend", required=True, metavar="URL",
              help="The model server: llama.cpp's llama-server or vLLM, e.g. http://127.0.0.1:8080.")
@click.option("--kind", default="auto", show_default=True, type=click.Choice(["auto", "llamacpp", "vllm"]),
              help="Which server it is; auto asks it.")
@click.option("--model", help="Model name to send (default: the one the server serves).")
@click.option("--max-tokens", default=1024, show_default=True, type=click.IntRange(min=1),
              help="Room kept for the answer.")
@click.option("--budget", "-b", default="auto", show_default=True,
              help="Pack budget: auto (the server's window minus question, template and --max-tokens) or N.")
@click.option("--system", help="System prompt (default: a fixed instruction to answer from the code).")
@click.option("--stable-share", default=0.5, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Share of the budget for the query-independent part that leads the prompt (prefix cache); "
                   "0 for a query-only pack.")
@click.option("--format", "-f", "fmt", default="md", show_default=True,
              type=click.Choice(["md", "markdown", "xml", "plain"], case_sensitive=False), help="Pack text format.")
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds to wait for any answer from the server (each streamed piece for the answer).")
@click.option("--dry-run", is_flag=True, help="Print the request (JSON) instead of sending it.")
@click.option("--include", multiple=True, metavar="GLOB", help="Only files matching (repeat).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Leave out files matching (repeat).")
@click.option("--no-cache", is_flag=True, help="Keep the index in memory; write nothing to .ctxpack/.")
@click.option("--verbose", "-v", is_flag=True, help="Window, budget, token counts and timings on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def ask(path: Path, question: str, backend: str, kind: str, model: str | None, max_tokens: int, budget: str,
        system: str | None, stable_share: float, fmt: str, timeout: float, dry_run: bool,
        include: tuple[str, ...], exclude: tuple[str, ...], no_cache: bool, verbose: bool, debug: bool) -> None:
    """Ask a local model server QUESTION about PATH: the pack that fits its window, the answer streamed.

    The question is also the pack's query. With --budget auto the pack gets the server's context window
    minus the question, the chat template and --max-tokens, counted with the server's own tokenizer.
    The query-independent part of the pack comes first, so the next question re-uses the server's prompt
    cache (llama.cpp cache_prompt, vLLM prefix caching).

    \b
    Examples:
      ctxpack ask . "where is the retry policy?" --backend http://127.0.0.1:8080
      ctxpack ask repo/ "why does parse_header raise KeyError?" --backend http://gpu-box:8000 --kind vllm
      ctxpack ask . "what does Stock.remove do?" --backend 127.0.0.1:8080 --max-tokens 256 --dry-run
    """
    _State.debug = debug
    _setup_logging(verbose)
    if not path.exists():
        raise UsageError(f"path does not exist: {path}")
    if budget.strip().lower() != "auto":
        parse_budget(budget)  # a bad budget is a usage error before any server is asked
    from .asking import ask as ask_server  # httpx only for this command

    sys.stdout.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    ended_with_newline = True

    def show(text: str) -> None:
        nonlocal ended_with_newline
        sys.stdout.write(text)
        sys.stdout.flush()
        ended_with_newline = text.endswith("\n")

    started = time.perf_counter()
    answer = ask_server(path, question, backend, kind=kind, model=model, max_tokens=max_tokens, budget=budget,
                        system=system, config=_overrides(None, include, exclude), stable_share=stable_share,
                        format=fmt, timeout=timeout, dry_run=dry_run, on_text=show, use_cache=not no_cache)
    plan = answer.plan
    if dry_run:
        request = {"method": "POST", "url": f"{plan.url}/v1/chat/completions", "body": plan.request}
        show(json.dumps(request, ensure_ascii=False, indent=2) + "\n")
    elif not ended_with_newline:
        show("\n")
    if verbose:
        log.info("server %s (%s, model %s): window %d tokens from %s", plan.url, plan.server.kind, plan.model,
                 plan.server.window, plan.server.window_source)
        log.info("budget %d (%s; stable part %d); pack %d tokens, %d chunks; prompt %d tokens by the server's "
                 "tokenizer (%d /tokenize calls)", plan.budget, plan.budget_source, plan.stable_budget,
                 plan.pack.tokens, len(plan.pack.chunks), plan.prompt_tokens, plan.tokenize_calls)
        if answer.sent:
            log.info("server counted: prompt %s tokens, evaluated %s, from cache %s; answer %s tokens (%s)",
                     answer.usage.get("prompt_tokens", "?"), _or_unknown(answer.prompt_evaluated),
                     _or_unknown(answer.prompt_cached), answer.usage.get("completion_tokens", "?"),
                     answer.finish_reason or "?")
        timings = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in plan.timings.items())
        log.info("%s; total %.2fs", timings, time.perf_counter() - started)


def _or_unknown(value: int | None) -> str:
    return "?" if value is None else str(value)


def _report_skips(skipped: dict[str, list[str]]) -> None:
    """Each skipped file once: unreadable ones as warnings, the rest with --verbose; then a count per reason."""
    for reason, paths in sorted(skipped.items()):
        level = logging.WARNING if reason in WARN_REASONS else logging.INFO
        for rel in sorted(paths):
            log.log(level, "skipped (%s): %s", reason, rel.encode("unicode_escape").decode("ascii")
                    if not rel.isprintable() else rel)
    for reason, paths in sorted(skipped.items()):
        log.info("skipped %d file(s): %s", len(paths), reason)


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise or with --quiet."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("parsing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task("parse", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CtxpackError(f"cannot write {output}: {exc.strerror}") from None


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors, exit 2 for bad usage and 1 for failed work."""
    try:
        _main(argv)
    finally:
        # The process ends here. Whatever is left (the corpus and its graph hold each other) is freed by
        # the OS: frozen, the interpreter's last collection does not walk it (measured ~0.2 s on exit).
        gc.freeze()


def run() -> None:
    """The `ctxpack` command: `main`, then the process ends at once (`os._exit`) with its output flushed.
    Tearing the interpreter down object by object (a build leaves ~10^6) took 0.03 s of a 0.7 s build after an
    edit on Django, and nothing needs it: the index is closed, the parse workers are gone, nothing is buffered."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # as the interpreter does with a message
            sys.stderr.write(f"{exc.code}\n")
            code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what was not written is lost either way
            if code == 0:
                code = 1
    os._exit(code)


def _main(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="ctxpack", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.stderr.write("ctxpack: aborted\n")
        sys.exit(1)
    except click.ClickException as exc:
        sys.stderr.write(f"ctxpack: error: {exc.format_message()}\n")
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except UsageError as exc:
        _fail(exc, 2)
    except CtxpackError as exc:
        _fail(exc, 1)
    except KeyboardInterrupt:
        sys.stderr.write("ctxpack: interrupted\n")
        sys.exit(130)
    except Exception as exc:  # a bug: one line unless --debug
        _fail(exc, 1, prefix=f"internal error ({type(exc).__name__}): ")


def _fail(exc: BaseException, code: int, prefix: str = "") -> None:
    if _State.debug or "--debug" in sys.argv:
        import traceback

        traceback.print_exception(exc)
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    sys.stderr.write(f"ctxpack: error: {prefix}{message}\n")
    sys.exit(code)

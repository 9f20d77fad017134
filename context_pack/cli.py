"""The `ctxpack` command: a thin shell over the library. Parses arguments, calls, prints."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from . import pipeline
from .config import parse_budget
from .errors import CtxpackError, UsageError
from .model import FEATURE_NAMES
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
               no_redact: bool = False) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if no_redact:
        values["redact"] = False
    if budget is not None:
        values["budget"] = parse_budget(budget)
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
        click.option("--include", multiple=True, metavar="GLOB", help="Only files matching (repeat)."),
        click.option("--exclude", multiple=True, metavar="GLOB", help="Leave out files matching (repeat)."),
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
    """


@cli.command()
@_common_options
@click.option("--budget", "-b", help="Token budget: 8000, 32k (×1024), 1m. Default 32k or the config's.")
@click.option("--format", "-f", "fmt", default="md", show_default=True,
              type=click.Choice(["md", "markdown", "xml", "plain", "json"], case_sensitive=False),
              help="Pack text format; json is a report on the markdown pack.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of stdout.")
def build(path: Path, query: str | None, query_file: str | None, focus: tuple[str, ...],
          include: tuple[str, ...], exclude: tuple[str, ...], no_cache: bool, no_redact: bool, quiet: bool,
          verbose: bool, debug: bool, budget: str | None, fmt: str, output: Path | None) -> None:
    """Build a pack of PATH that fits the budget, counted with the tokenizer (cl100k by default).

    \b
    Examples:
      ctxpack build . --budget 32k
      ctxpack build repo/ -b 8000 --query "KeyError in parse_header" --format json
      ctxpack build repo/ --query-file traceback.txt --focus src/app.py -o pack.md
      ctxpack build repo/ --include 'src/**' --exclude '*.md' --format xml
    """
    _State.debug = debug
    _setup_logging(verbose)
    started = time.perf_counter()
    text_query = _read_query(query, query_file)
    if not path.exists():
        raise UsageError(f"path does not exist: {path}")
    config = pipeline.resolve_config(path, _overrides(budget, include, exclude, no_redact))
    text_format = "md" if fmt.lower() == "json" else fmt
    with _progress(quiet) as progress:
        pack, corpus = pipeline.build_with_corpus(path, config, query=text_query, focus=focus, fmt=text_format,
                                                  use_cache=not no_cache, progress=progress)
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
                 len(corpus.files), len(corpus.chunks), timings, time.perf_counter() - started,
                 pack.tokens, pack.budget, len(pack.chunks))


@cli.command()
@_common_options
@click.option("--top", default=30, show_default=True, type=click.IntRange(min=1), help="How many chunks.")
def explain(path: Path, query: str | None, query_file: str | None, focus: tuple[str, ...],
            include: tuple[str, ...], exclude: tuple[str, ...], no_cache: bool, no_redact: bool, quiet: bool,
            verbose: bool, debug: bool, top: int) -> None:
    """Show the top-ranked chunks of PATH with every feature and the final score.

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
    config = pipeline.resolve_config(path, _overrides(None, include, exclude, no_redact))
    with _progress(quiet) as progress:
        corpus, ranked = pipeline.collect_and_rank(path, config, text_query, focus, not no_cache, progress)
    _report_skips(corpus.skipped)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Top {min(top, len(ranked))} of {len(ranked)} chunks in {corpus.root.name}")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("chunk", overflow="fold")
    table.add_column("kind")
    for name in FEATURE_NAMES:
        table.add_column(name[:6], justify="right")
    for position, item in enumerate(ranked[:top], start=1):
        chunk = item.chunk
        where = f"{chunk.path}:{chunk.start_line}-{chunk.end_line}"
        label = f"{where} {chunk.name}" if chunk.name else where
        table.add_row(str(position), f"{item.score:.3f}", label, chunk.kind,
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
    config = pipeline.resolve_config(path, _overrides(None, (), (), no_redact))
    started = time.perf_counter()
    with _progress(quiet) as progress:
        corpus = pipeline.collect(path, config, progress=progress)
    _report_skips(corpus.skipped)
    corpus.graph  # noqa: B018 - built now, so its cost shows here
    if corpus.index is not None:
        corpus.index.close()
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
    click.echo(f"files:     {figures['files']:,} indexed, {figures['walked']:,} walked")
    click.echo("languages: " + ", ".join(f"{k} {v}" for k, v in figures["languages"].items()))
    for reason, count in sorted(figures["skipped"].items()):
        click.echo(f"skipped:   {count:,} {reason}")


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

"""Reliability figures: a long fuzz run and a kill -9 loop, for bench/RELIABILITY.md.

    .venv/bin/python bench/fuzz.py --examples 3000 --kills 60            # both parts, figures as markdown
    .venv/bin/python bench/fuzz.py --examples 200 --kills 0               # a quick fuzz only

Fuzz: the strategy of `tests/test_fuzz.py` (`fixtures/fuzz_trees.py`: real code damaged every way, random
bytes, deep nesting, long lines, odd names, links, FIFOs, planted secrets) for N examples. Each tree is
built fresh and cached at a random budget; counted: crashes (any exception), budget overruns, miscounted
packs, leaked secrets, cached builds that differ from fresh ones, and the slowest single file to parse.

Kill loop: a git copy of part of the standard library; each round maybe edits files or deletes the index,
starts `ctxpack build --format json`, SIGKILLs it at a random moment, then checks that the index passes
`PRAGMA integrity_check` and opens without being rebuilt, and that the next build's stdout equals a
`--no-cache` build's byte for byte.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "fixtures"))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import context_pack  # noqa: E402
from context_pack.config import load_config  # noqa: E402
from context_pack.index import Index  # noqa: E402
from context_pack.lang import GRAMMARS  # noqa: E402
from context_pack.parallel import iter_parse, parse_with_terms  # noqa: E402
from context_pack.pipeline import parse_fingerprint  # noqa: E402
from context_pack.tokens import get_tokenizer  # noqa: E402
from context_pack.walk import walk  # noqa: E402
from fuzz_trees import Tree, trees, write_tree  # noqa: E402

KILL_REPO_PARTS = ("json", "email", "http", "logging", "unittest", "xml", "argparse.py", "dataclasses.py",
                   "textwrap.py", "functools.py", "tomllib", "wsgiref", "importlib", "asyncio")


@dataclass
class FuzzFigures:
    inputs: int = 0
    files: int = 0
    bytes: int = 0
    crashes: list[str] = field(default_factory=list)
    overruns: int = 0
    miscounted: int = 0
    leaks: int = 0
    cache_mismatches: int = 0
    parser_crashes: int = 0  # files whose grammar killed its worker process (read as blocks instead)
    too_damaged: int = 0  # files read as blocks because querying their tree would take quadratic time
    slowest_file: tuple[float, str] = (0.0, "")
    slowest_build: float = 0.0
    seconds: float = 0.0


def fuzz(examples: int, random_seed: int) -> FuzzFigures:
    figures = FuzzFigures()
    tokenizer = get_tokenizer()
    for language in GRAMMARS:  # load detectors, grammars and queries first: the timings are per file
        parse_with_terms(("warm", language, b"x = 1\n"), 60, 40)
    started = time.perf_counter()

    @seed(random_seed)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(tree=trees(max_files=12), budget=st.sampled_from([1, 40, 300, 2000, 8000, 32768]),
           query=st.none() | st.text(max_size=40))
    def run(tree: Tree, budget: int, query: str | None) -> None:
        figures.inputs += 1
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder) / "repo"
            write_tree(root, tree)
            try:
                for file in walk(root).files:  # every file the build will parse, timed alone
                    source = (root / file.path).read_bytes()
                    figures.files += 1
                    figures.bytes += len(source)
                    job = (file.path, file.language or "text", source)
                    warning, _ = dict(iter_parse([job], 60, 40))[file.path]  # in a worker first: a grammar may crash
                    crashed = "parser crashed" in (warning or "")
                    figures.parser_crashes += crashed
                    figures.too_damaged += "too damaged" in (warning or "")
                    began = time.perf_counter()  # then timed here, where it is known not to crash
                    parse_with_terms(job, 60, 40, use_grammar=not crashed)
                    elapsed = time.perf_counter() - began
                    if elapsed > figures.slowest_file[0]:
                        figures.slowest_file = (elapsed, f"{len(source):,} bytes, {file.language}: {describe(source)}")
                began = time.perf_counter()
                fresh = context_pack.build(root, budget=budget, query=query, use_cache=False)
                figures.slowest_build = max(figures.slowest_build, time.perf_counter() - began)
                figures.overruns += fresh.tokens > budget
                figures.miscounted += fresh.tokens != tokenizer.count(fresh.text)
                figures.leaks += sum(secret in fresh.text for secret in tree.secrets)
                cached = context_pack.build(root, budget=budget, query=query)
                figures.cache_mismatches += cached.to_json_dict() != fresh.to_json_dict()
            except Exception:  # every crash is counted, with its traceback
                figures.crashes.append(traceback.format_exc(limit=6))

    run()
    figures.seconds = time.perf_counter() - started
    return figures


def describe(source: bytes) -> str:
    head = source[:40].decode("utf-8", "replace").replace("\n", "\\n")
    return repr(head[:40])


@dataclass
class KillFigures:
    kills: int = 0
    killed_while_running: int = 0
    corrupt: int = 0
    rebuilt: int = 0
    wrong: int = 0
    orphans: int = 0  # parse workers still alive 5 s after their build was killed
    seconds: float = 0.0
    phases: dict[str, int] = field(default_factory=dict)


def kill_loop(rounds: int, seed: int, workdir: Path) -> KillFigures:
    figures = KillFigures()
    started = time.perf_counter()
    rng = random.Random(seed)
    repo = make_kill_repo(workdir / "kill-repo")
    command = [sys.executable, "-m", "context_pack", "build", str(repo), "-b", "8000", "-f", "json", "--quiet",
               "-q", "decode json headers"]
    expected = run([*command, "--no-cache"])
    began = time.perf_counter()
    run(command)
    cold = time.perf_counter() - began
    sources = sorted(repo.rglob("*.py"))
    for round_number in range(rounds):
        action = rng.choice(["warm", "edit", "edit-many", "cold"])
        if action == "cold":
            shutil.rmtree(repo / ".ctxpack", ignore_errors=True)
        elif action.startswith("edit"):
            for path in rng.sample(sources, 1 if action == "edit" else 25):
                path.write_text(path.read_text() + f"\n# round {round_number}\n")
            expected = run([*command, "--no-cache"])
        figures.phases[action] = figures.phases.get(action, 0) + 1
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, cold * 1.1))
        figures.killed_while_running += process.poll() is None
        workers = parsers_of(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()
        figures.kills += 1
        figures.orphans += len(survivors(workers))
        db = repo / ".ctxpack" / "index.db"
        if db.exists():
            figures.corrupt += not integrity_ok(db)
            figures.rebuilt += opens_without_rebuild(repo) is False
        figures.wrong += run(command) != expected
    figures.seconds = time.perf_counter() - started
    return figures


def parsers_of(pid: int) -> set[int]:
    """The build's parse workers: its child processes running context_pack (not git)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) if entry.name.isdigit() else 0
            if parent == pid and b"context_pack" in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def survivors(workers: set[int]) -> set[int]:
    """Workers still running 5 s after their build died; ended here (they are this script's own)."""
    deadline = time.monotonic() + 5
    alive = set(workers)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _running(pid)}
        time.sleep(0.05)
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return alive


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def make_kill_repo(dest: Path) -> Path:
    source = Path(sysconfig.get_paths()["stdlib"])
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "test", "tests")
    for name in KILL_REPO_PARTS:
        if (source / name).is_dir():
            shutil.copytree(source / name, dest / name, ignore=ignore)
        elif (source / name).is_file():
            shutil.copyfile(source / name, dest / name)
    date = "2024-01-01T00:00:00+00:00"
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_NAME": "b",
           "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@example.com"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "stdlib part"]):
        subprocess.run(["git", "-C", str(dest), *args], check=True, env=env, capture_output=True)
    return dest


def run(command: list[str]) -> bytes:
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        return b"exit %d: " % result.returncode + result.stderr
    return result.stdout


def integrity_ok(db: Path) -> bool:
    try:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            connection.close()
    except sqlite3.Error:
        return False


def opens_without_rebuild(repo: Path) -> bool:
    """Index.open on the killed index: False when ctxpack had to discard it as unusable."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("context_pack")
    logger.addHandler(handler)
    try:
        Index.open(repo, parse_fingerprint(load_config(repo))).close()
    finally:
        logger.removeHandler(handler)
    return not any("rebuilding" in message for message in messages)


def worst_cases(size: int) -> list[str]:
    """Each grammar on pathological files of `size` bytes that the walk keeps (short lines, no NUL), each
    parsed as a build parses: in a worker process, redaction included. The slowest, and any survived crash."""
    rng = random.Random(3)
    punctuation = b"(){}[];:,.'\"<>=+-*/ \nabcdefXYZ0123456789#\\$@!?&|"
    shapes = {
        "random punctuation": bytes(rng.choice(punctuation) for _ in range(size)),
        "stray brackets": b"(\n" * (size // 2),
        "nested braces": b"{\n" * (size // 4) + b"}\n" * (size // 4),
        "quotes": b"'\"\n" * (size // 3),
        "keyword soup": b"if else for while class def fn func { } ( ) ; <<EOF\n" * (size // 52),
    }
    rows = []
    for name, data in shapes.items():
        for language in sorted(GRAMMARS):
            began = time.perf_counter()
            warning, _ = dict(iter_parse([(f"worst.{language}", language, data)], 60, 40))[f"worst.{language}"]
            rows.append((time.perf_counter() - began, name, language, warning or ""))
    rows.sort(reverse=True)
    lines = [f"| {size / 1e6:g} MB file, grammar | seconds (in a worker, as a build parses) | outcome |",
             "| --- | --- | --- |"]
    for seconds, name, language, warning in rows[:8]:
        outcome = ("parser crashed: blocks" if "crashed" in warning else "too damaged: blocks"
                   if "damaged" in warning else "parsed")
        lines.append(f"| {name}, {language} | {seconds:.2f} | {outcome} |")
    crashes = [f"{name} ({language})" for _, name, language, warning in rows if "crashed" in warning]
    lines += ["", f"{len(rows)} parses, total {sum(r[0] for r in rows):.0f} s; grammar crashes survived: "
              + (", ".join(crashes) or "none") + "."]
    return lines


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown"
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def report(fuzzed: FuzzFigures | None, killed: KillFigures | None, command: str) -> str:
    lines = [f"### Run of {time.strftime('%Y-%m-%d')}", "", f"- machine: {machine()}", f"- command: `{command}`", ""]
    if fuzzed is not None:
        lines += [
            "| fuzz | figure |", "| --- | --- |",
            f"| inputs tried (random trees) | {fuzzed.inputs:,} |",
            f"| files parsed alone | {fuzzed.files:,} ({fuzzed.bytes / 1e6:.1f} MB) |",
            f"| crashes | {len(fuzzed.crashes)} |",
            f"| budget overruns | {fuzzed.overruns} |",
            f"| packs whose `tokens` is not the text's count | {fuzzed.miscounted} |",
            f"| planted secrets that reached a pack | {fuzzed.leaks} |",
            f"| cached builds that differ from fresh ones | {fuzzed.cache_mismatches} |",
            f"| grammar crashes survived (worker died; file read as blocks) | {fuzzed.parser_crashes} |",
            f"| files too damaged to query (read as blocks) | {fuzzed.too_damaged} |",
            f"| slowest file (redact + parse + terms) | {fuzzed.slowest_file[0]:.3f} s — "
            f"{fuzzed.slowest_file[1]} |",
            f"| slowest build of one tree | {fuzzed.slowest_build:.2f} s |",
            f"| wall time | {fuzzed.seconds:.0f} s |", "",
        ]
        for crash in fuzzed.crashes[:5]:
            lines += ["```", crash.rstrip(), "```", ""]
    if killed is not None:
        phases = ", ".join(f"{name} {count}" for name, count in sorted(killed.phases.items()))
        lines += [
            "| kill -9 loop | figure |", "| --- | --- |",
            f"| SIGKILLs | {killed.kills} ({killed.killed_while_running} while the build was still running;"
            f" rounds: {phases}) |",
            f"| corrupt indexes (`PRAGMA integrity_check`) | {killed.corrupt} |",
            f"| indexes ctxpack had to discard and rebuild | {killed.rebuilt} |",
            f"| wrong packs (next build ≠ `--no-cache` build, byte for byte) | {killed.wrong} |",
            f"| parse workers left running after their build was killed | {killed.orphans} |",
            f"| wall time | {killed.seconds:.0f} s |", "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=3000, help="fuzz inputs (0: skip)")
    parser.add_argument("--kills", type=int, default=60, help="kill -9 rounds (0: skip)")
    parser.add_argument("--worst", type=int, default=0, metavar="BYTES",
                        help="also time every grammar on pathological files of this size (e.g. 1000000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ctxpack-reliability")
    args = parser.parse_args()
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared" / "tiktoken"))
    logging.getLogger("context_pack").setLevel(logging.ERROR)  # damaged files warn by design
    fuzzed = fuzz(args.examples, args.seed) if args.examples else None
    killed = kill_loop(args.kills, args.seed, args.workdir) if args.kills else None
    print(report(fuzzed, killed, "python bench/fuzz.py " + " ".join(sys.argv[1:])))
    if args.worst:
        print("\n".join(worst_cases(args.worst)))
    failed = (fuzzed is not None and (fuzzed.crashes or fuzzed.overruns or fuzzed.leaks or fuzzed.miscounted
                                      or fuzzed.cache_mismatches)) or \
             (killed is not None and (killed.corrupt or killed.wrong or killed.orphans))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

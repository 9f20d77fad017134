"""Speed benchmark: ctxpack against the floor of reading, parsing and counting the same files.

    python bench/speed.py                      # stdlib copy and Django 5.1.4, 3 runs each, a table on stdout
    python bench/speed.py --codebases stdlib --runs 1
    python bench/speed.py --write-results      # also append the table to bench/RESULTS.md

For each codebase, in one run:
- floor: one process reads every file ctxpack would read, parses those with a grammar with tree-sitter
  (the same grammar wheels), and counts every file with cl100k — no ctxpack code;
- cold: `ctxpack build ROOT --budget 32k` with no `.ctxpack/` index;
- warm: the same build again, nothing changed;
- one file changed: a line appended to one source file, then the build;
- new query: a build with a query not asked before, on the warm index;
- hook: `ctxpack hook run` (the pre-commit hook) with one file's edit staged, on the warm index: it refreshes
  the index for that file and packs the staged change;
- peak RSS of the ctxpack process itself (its parse workers are separate, smaller processes).
Times are wall-clock seconds of the whole `ctxpack` process as a user runs it (import time included);
the median of `--runs` runs. ctxpack's own modules are byte-compiled first, as `pip install` does: an editable
install run with PYTHONDONTWRITEBYTECODE=1 (as here) would otherwise compile them in every process (~0.1 s).
Codebases are made under `--workdir` (default ~/.cache/ctxpack-bench/speed): the standard library
(`sysconfig.get_paths()["stdlib"]` without site-packages/, __pycache__/ and config-*/) and the Django 5.1.4
sdist from PyPI, each committed into a git repo.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

from retrieval import byte_compile  # bench/ is on the path: this script's folder

REPO = Path(__file__).resolve().parent.parent
VENV_CTXPACK = REPO / ".venv" / "bin" / "ctxpack"
DJANGO_SDIST = "Django==5.1.4"
QUERIES = ("why does the header parser drop folded continuation lines", "retry with exponential backoff on timeout",
           "where are template variables resolved", "thread pool shutdown waits forever")

FLOOR_SCRIPT = r"""
import json, sys, time, importlib
start = time.perf_counter()
from tree_sitter import Language, Parser
import tiktoken
grammars = json.loads(sys.argv[2])
encoding = tiktoken.get_encoding("cl100k_base")
parsers = {}
tokens = 0
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.strip():
        continue
    path, language = line.rstrip("\n").rsplit("\t", 1)
    data = open(path, "rb").read()
    if language in grammars:
        if language not in parsers:
            module, function = grammars[language]
            parsers[language] = Parser(Language(getattr(importlib.import_module(module), function)()))
        parsers[language].parse(data)
    tokens += len(encoding.encode_ordinary(data.decode("utf-8", "replace")))
print(json.dumps({"seconds": time.perf_counter() - start, "tokens": tokens}))
"""


def run(command: list[str], cwd: Path | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KB) of the process, and stdout, measured by GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        result = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *command], cwd=cwd,
                                capture_output=True, text=True, env={**os.environ})
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr[-2000:]}")
        peak = int(report.read().strip().splitlines()[-1])
    return seconds, peak, result.stdout


def git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_DATE": "2025-01-01T00:00:00+00:00", "GIT_COMMITTER_DATE":
           "2025-01-01T00:00:00+00:00", "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def commit_tree(repo: Path) -> None:
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "snapshot")


def prepare_stdlib(workdir: Path) -> Path:
    dest = workdir / "stdlib"
    if (dest / ".git").is_dir():
        return dest
    source = Path(sysconfig.get_paths()["stdlib"])
    shutil.copytree(source, dest, symlinks=True,
                    ignore=shutil.ignore_patterns("site-packages", "__pycache__", "config-*"))
    commit_tree(dest)
    return dest


def prepare_django(workdir: Path) -> Path:
    dest = workdir / "django-5.1.4"
    if (dest / ".git").is_dir():
        return dest
    downloads = workdir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", DJANGO_SDIST,
                    "-d", str(downloads), "--quiet"], check=True)
    archive = next(downloads.glob("[Dd]jango-5.1.4.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    (workdir / archive.name.removesuffix(".tar.gz")).rename(dest)
    commit_tree(dest)
    return dest


def file_list(root: Path, ctxpack: Path, target: Path) -> int:
    """The files ctxpack reads (its walk), written as `path<TAB>language` lines for the floor."""
    code = ("import sys; from pathlib import Path; from context_pack.walk import walk\n"
            "w = walk(Path(sys.argv[1]))\n"
            "print('\\n'.join(f'{w.root / f.path}\\t{f.language}' for f in w.files))")
    python = ctxpack.parent / "python"
    output = subprocess.run([str(python), "-c", code, str(root)], check=True, capture_output=True, text=True)
    target.write_text(output.stdout, encoding="utf-8")
    return len(output.stdout.splitlines())


def measure(root: Path, ctxpack: Path, runs: int, workdir: Path) -> dict[str, object]:
    python = ctxpack.parent / "python"
    grammars = json.loads(subprocess.run(
        [str(python), "-c", "import json; from context_pack.lang import GRAMMARS; print(json.dumps(GRAMMARS))"],
        check=True, capture_output=True, text=True).stdout)
    listing = workdir / f"{root.name}.files"
    files = file_list(root, ctxpack, listing)
    build = [str(ctxpack), "build", str(root), "--budget", "32k", "--quiet", "-o", os.devnull]
    figures: dict[str, list[float]] = {name: [] for name in ("floor", "cold", "warm", "changed", "query", "hook")}
    peaks: dict[str, list[int]] = {name: [] for name in figures}
    target = next(p for p in sorted(root.rglob("*.py")) if ".git" not in p.parts and p.stat().st_size > 2000)
    original = target.read_bytes()
    try:
        for number in range(runs):
            seconds, peak, _ = run([str(python), "-c", FLOOR_SCRIPT, str(listing), json.dumps(grammars)])
            figures["floor"].append(seconds)
            peaks["floor"].append(peak)
            shutil.rmtree(root / ".ctxpack", ignore_errors=True)
            for name, command in (("cold", build), ("warm", build)):
                seconds, peak, _ = run(command)
                figures[name].append(seconds)
                peaks[name].append(peak)
            target.write_bytes(original + f"\n# bench edit {number}\n".encode())
            seconds, peak, _ = run(build)
            figures["changed"].append(seconds)
            peaks["changed"].append(peak)
            seconds, peak, _ = run([*build, "--query", QUERIES[number % len(QUERIES)] + f" {number}"])
            figures["query"].append(seconds)
            peaks["query"].append(peak)
            # A real edit inside a function body, staged, as a commit would see it.
            target.write_bytes(original.replace(b"    return ", b"    return  ", 1))
            git(root, "add", str(target.relative_to(root)))
            try:
                seconds, peak, _ = run([str(ctxpack), "hook", "run", str(root), "--budget", "32k", "--quiet",
                                        "--output", str(workdir / "hook-pack.md"), "--strict"])
            finally:
                git(root, "reset", "-q")
            figures["hook"].append(seconds)
            peaks["hook"].append(peak)
    finally:
        target.write_bytes(original)
    medians = {name: statistics.median(values) for name, values in figures.items()}
    return {"files": files, "seconds": medians, "peak_kb": {k: max(v) for k, v in peaks.items()},
            "all": figures}


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kb = int(Path("/proc/meminfo").read_text(encoding="utf-8").split()[1])
    return f"{os.cpu_count()} cores ({cpu}), {memory_kb / 1024 / 1024:.0f} GiB RAM, Python {platform.python_version()}"


def table(results: dict[str, dict[str, object]]) -> str:
    lines = ["| codebase | files | floor s | cold s (× floor) | warm s | one file changed s | new query s | "
             "hook, one file staged s | peak RSS MB (cold / warm) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, result in results.items():
        s = result["seconds"]
        peak = result["peak_kb"]
        assert isinstance(s, dict) and isinstance(peak, dict)
        lines.append(f"| {name} | {result['files']} | {s['floor']:.2f} | {s['cold']:.2f} "
                     f"({s['cold'] / s['floor']:.2f}) | {s['warm']:.2f} | {s['changed']:.2f} | {s['query']:.2f} | "
                     f"{s['hook']:.2f} | "
                     f"{peak['cold'] / 1024:.0f} / {peak['warm'] / 1024:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codebases", default="stdlib,django", help="comma-separated: stdlib, django")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "ctxpack-bench" / "speed")
    parser.add_argument("--ctxpack", type=Path, default=VENV_CTXPACK)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    byte_compile(args.ctxpack.parent / "python")
    prepare = {"stdlib": prepare_stdlib, "django": prepare_django}
    results = {}
    for name in args.codebases.split(","):
        root = prepare[name](args.workdir)
        print(f"measuring {name} ({root}) ...", file=sys.stderr)
        results[name] = measure(root, args.ctxpack, args.runs, args.workdir)
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    report = (f"\n## Speed — {dt.date.today().isoformat()} (ctxpack {commit})\n\n"
              f"Machine: {machine()}.\n\n"
              f"Command: `python bench/speed.py --codebases {args.codebases} --runs {args.runs}` "
              f"(median of {args.runs} runs; wall time of the whole process; peak RSS of the ctxpack process "
              f"— parse workers are separate processes).\n\n{table(results)}\n\n"
              f"Raw seconds per run: `{json.dumps({k: v['all'] for k, v in results.items()})}`\n")
    print(report)
    if args.write_results:
        with (REPO / "bench" / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write(report)


if __name__ == "__main__":
    main()

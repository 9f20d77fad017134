#!/usr/bin/env python3
"""Retrieval benchmark: does a B-token ctxpack pack hold every source line the real fix touched?

For each real GitHub issue of a split (SWE-bench Verified dev for Python, Multi-SWE-bench dev for C, C++,
Go, Java, JavaScript and Rust), check the repository out at the issue's base commit, run
``ctxpack build CHECKOUT --budget B --query-file ISSUE.txt --format json`` as a user would, and score the
chunks against the gold lines of the real fix. SWE-bench's BM25 baseline (whole files ranked by BM25 on
the issue text, each added while it fits) is computed in the same run on the same instances.
See bench/README.md for the data, the gold and the metrics.

Examples (from the repository root; the repositories come from the search tool's ``fetch``):

    export TIKTOKEN_CACHE_DIR=/work/shared/tiktoken
    .venv/bin/python bench/retrieval.py --split python --n 60                # fixed ablation subset (seed 0)
    .venv/bin/python bench/retrieval.py --split multi --write-results        # all instances, to RESULTS.md
    .venv/bin/python bench/retrieval.py --split python --repos psf/requests,flask --budgets 8000
    .venv/bin/python bench/retrieval.py --split python --n 60 --tag no-graph  # name an ablation
    .venv/bin/python bench/retrieval.py --split python --compare 84fd282,no-graph
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import math
import os
import random
import re
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "bench"
DEFAULT_MIRRORS = Path("/work/.mirror")
DEFAULT_WORKDIR = Path.home() / ".cache" / "ctxpack-bench"
DEFAULT_RESULTS_MD = REPO_ROOT / "bench" / "RESULTS.md"
SPLIT_FILES = {"python": "swebench_verified_dev.jsonl", "multi": "multi_dev.jsonl"}
DEFAULT_BUDGETS = (8000, 16000, 32000)
GOLD_VERSION = 2  # bump when the gold's definition changes: stored results of another version are redone
BM25_VERSION = "bm25-v1"  # bump when the baseline's definition changes: its disk cache is keyed by it
BM25_K1, BM25_B = 0.9, 0.4  # Pyserini's defaults, as SWE-bench's retrieval used

LANGUAGE_EXTENSIONS: dict[str, frozenset[str]] = {
    "Python": frozenset({".py"}),
    "C": frozenset({".c", ".h"}),
    "C++": frozenset({".cc", ".cpp", ".cxx", ".hpp", ".hh", ".h", ".c"}),
    "Go": frozenset({".go"}),
    "Java": frozenset({".java"}),
    "JavaScript": frozenset({".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx"}),
    "Rust": frozenset({".rs"}),
}


# --------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Instance:
    instance_id: str
    repo: str
    source_repo: str
    base_commit: str
    problem_statement: str
    patch: str
    language: str

    @property
    def extensions(self) -> frozenset[str]:
        return LANGUAGE_EXTENSIONS[self.language]


@dataclass(frozen=True)
class Hunk:
    """One hunk of a gold file: where the patch says its base side starts, that side's text, its gold lines."""

    start: int
    source: tuple[str, ...]
    gold: frozenset[int]


@dataclass
class Gold:
    """Gold lines per base-side path (relocated by `check_gold_at_base`), with the hunks they come from."""

    lines: dict[str, set[int]] = field(default_factory=dict)
    hunks: dict[str, list[Hunk]] = field(default_factory=dict)

    @property
    def n_lines(self) -> int:
        return sum(len(v) for v in self.lines.values())


@dataclass(frozen=True)
class Span:
    path: str
    start: int
    end: int
    full: bool


@dataclass(frozen=True)
class Metrics:
    file_all: bool
    line_all: bool
    line_recall: float
    missed_files: tuple[str, ...]


def load_instances(data_dir: Path, split: str) -> list[Instance]:
    out = []
    with (data_dir / SPLIT_FILES[split]).open(encoding="utf-8") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            row = json.loads(raw)
            out.append(
                Instance(
                    instance_id=row["instance_id"],
                    repo=row["repo"],
                    source_repo=row["source_repo"],
                    base_commit=row["base_commit"],
                    problem_statement=row["problem_statement"],
                    patch=row["patch"],
                    language=row.get("language", "Python"),
                )
            )
    return out


def repo_matches(repo: str, wanted: Iterable[str]) -> bool:
    repo_l = repo.lower()
    return any(w.lower() in (repo_l, repo_l.split("/")[-1]) for w in wanted)


def select_instances(usable: list[Instance], n: int | None, seed: int, repos: list[str] | None) -> list[Instance]:
    """Filter by repo, then take a fixed pseudo-random subset (the same for the same arguments)."""
    chosen = sorted(usable, key=lambda i: i.instance_id)
    if repos:
        chosen = [i for i in chosen if repo_matches(i.repo, repos)]
    if n is not None and n < len(chosen):
        chosen = random.Random(seed).sample(chosen, n)
    return sorted(chosen, key=lambda i: i.instance_id)


# --------------------------------------------------------------------------------------------- gold


def strip_prefix(path: str) -> str:
    return path[2:] if path.startswith(("a/", "b/")) else path


def hunk_gold_lines(hunk: Any) -> set[int]:
    """Removed base lines; for a hunk that only adds, the base line each added run follows (1 at the top)."""
    removed = {ln.source_line_no for ln in hunk if ln.is_removed}
    if removed:
        return removed
    anchors: set[int] = set()
    prev = hunk.source_start if hunk.source_length == 0 else hunk.source_start - 1
    in_run = False
    for ln in hunk:
        if ln.is_context:
            prev, in_run = ln.source_line_no, False
        elif ln.is_added and not in_run:
            anchors.add(max(prev, 1))
            in_run = True
    return anchors


def parse_gold(patch: str, extensions: frozenset[str]) -> Gold:
    from unidiff import PatchSet  # benchmark-only dependency

    gold = Gold()
    for pf in PatchSet(patch):
        path = strip_prefix(pf.source_file)
        if pf.is_added_file or os.path.splitext(path)[1] not in extensions:
            continue
        hunks = []
        for h in pf:
            source = [ln for ln in h if ln.is_context or ln.is_removed]
            start = int(source[0].source_line_no or 0) if source else int(h.source_start)
            text = tuple(ln.value.rstrip("\r\n") for ln in source)
            hunks.append(Hunk(start, text, frozenset(hunk_gold_lines(h))))
        lines: set[int] = set().union(*(h.gold for h in hunks))
        if lines:
            gold.lines[path] = lines
            gold.hunks[path] = hunks
    return gold


def hunk_offset(hunk: Hunk, base: list[str]) -> int | None:
    """Where the hunk's base side really is, as `patch` finds it: the nearest exact match (None if nowhere)."""
    size = len(hunk.source)
    if not size:
        return 0
    first = hunk.start - 1
    for dist in range(len(base) + 1):
        for at in (first - dist, first + dist):
            if 0 <= at <= len(base) - size and base[at] == hunk.source[0] and base[at : at + size] == list(hunk.source):
                return at - first
    return None


def check_gold_at_base(checkout: Path, gold: Gold) -> Counter[str]:
    """Drop gold files absent at base; move hunks found at an offset; count hunks that do not match the base."""
    problems: Counter[str] = Counter()
    for path in list(gold.lines):
        file = checkout / path
        if not file.is_file():
            del gold.lines[path]
            problems["gold files absent at base (dropped)"] += 1
            continue
        base = [ln.rstrip("\r") for ln in file.read_bytes().decode("utf-8", errors="replace").split("\n")]
        lines: set[int] = set()
        for hunk in gold.hunks[path]:
            offset = hunk_offset(hunk, base)
            if offset is None:
                problems["hunks that do not match the base (kept where the patch says)"] += 1
                offset = 0
            elif offset:
                problems["hunks found at an offset (moved)"] += 1
            lines |= {ln + offset for ln in hunk.gold}
        gold.lines[path] = lines
    return problems


def score(gold: dict[str, set[int]], spans: Sequence[Span]) -> Metrics:
    by_path: dict[str, list[Span]] = defaultdict(list)
    for s in spans:
        by_path[s.path].append(s)
    total = covered = 0
    missed = []
    for path, lines in gold.items():
        full = [s for s in by_path.get(path, ()) if s.full]
        hit = sum(1 for ln in lines if any(s.start <= ln <= s.end for s in full))
        total += len(lines)
        covered += hit
        if path not in by_path:
            missed.append(path)
    return Metrics(
        file_all=not missed,
        line_all=covered == total,
        line_recall=covered / total if total else 0.0,
        missed_files=tuple(sorted(missed)),
    )


# ------------------------------------------------------------------------------------------- repos


def git(*args: str | Path, cwd: Path | None = None) -> str:
    argv = ["git", *map(str, args)]
    # Own session: a Ctrl-C stops the benchmark between steps, never a git command halfway (no stale index.lock).
    out = subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True, start_new_session=True)
    return out.stdout


def is_git_dir(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def find_mirror(mirrors: Path, source_repo: str) -> Path | None:
    """The git dir of a fetched repository: MIRRORS/owner+name[/repo|/.git|.git] (name matched exactly first)."""
    flat = source_repo.replace("/", "+")
    candidates = [mirrors / flat]
    if mirrors.is_dir():
        candidates += [p for p in mirrors.iterdir() if p.name.lower() == flat.lower() and p.name != flat]
    for base in candidates:
        for gitdir in (base / "repo", base, base / ".git", base.with_name(base.name + ".git")):
            if gitdir.is_dir() and is_git_dir(gitdir):
                return gitdir
    return None


def checkout_dir(workdir: Path, repo: str) -> Path:
    return workdir / "checkouts" / repo.replace("/", "__")


def prepare_checkout(mirror: Path, dest: Path, base_commit: str) -> None:
    if not (dest / ".git").is_dir():
        dest.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "-q", "--shared", "--no-checkout", mirror, dest)
    git("-C", dest, "checkout", "-q", "-f", base_commit)
    git("-C", dest, "clean", "-q", "-fdx", "-e", ".ctxpack")


def commit_time(mirror: Path, commit: str) -> int:
    return int(git("--git-dir", mirror, "show", "-s", "--format=%ct", commit).strip())


# -------------------------------------------------------------------------------------------- ctxpack


@dataclass(frozen=True)
class CtxpackRun:
    spans: tuple[Span, ...]
    tokens: int
    seconds: float
    exit: int
    error: str | None
    warm: bool


class Interrupted(Exception):
    """The run was stopped (Ctrl-C): whatever was under way is dropped, not recorded as a failure."""


class Children:
    """The ctxpack processes under way, so that a Ctrl-C can end them (they run in their own session)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen[str]] = set()
        self.stop = threading.Event()

    def run(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        """Exit status, stdout, stderr; -9 on timeout; raises Interrupted once stopped."""
        with self.lock:
            if self.stop.is_set():
                raise Interrupted
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
            )
            self.procs.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return -9, out, f"timeout after {timeout:.0f}s"
        finally:
            with self.lock:
                self.procs.discard(proc)
        if self.stop.is_set():
            raise Interrupted
        return proc.returncode, out, err

    def kill_all(self) -> None:
        with self.lock:
            self.stop.set()
            for proc in self.procs:
                proc.kill()


def run_ctxpack(
    children: Children, cmd: list[str], checkout: Path, budget: int, query_file: Path, timeout: float
) -> CtxpackRun:
    argv = [*cmd, "build", str(checkout), "--budget", str(budget), "--query-file", str(query_file)]
    argv += ["--format", "json"]
    warm = (checkout / ".ctxpack").exists()
    start = time.perf_counter()
    code, out, err = children.run(argv, timeout)
    seconds = time.perf_counter() - start
    if code != 0:
        last = (err.strip().splitlines() or ["(no stderr)"])[-1][:300]
        return CtxpackRun((), 0, seconds, code, last, warm)
    try:
        report = json.loads(out)
        spans = tuple(
            Span(c["path"], int(c["start_line"]), int(c["end_line"]), c["mode"] == "full") for c in report["chunks"]
        )
        return CtxpackRun(spans, int(report["tokens"]), seconds, 0, None, warm)
    except (ValueError, KeyError, TypeError) as exc:
        return CtxpackRun((), 0, seconds, 1, f"bad JSON report: {exc}"[:300], warm)


# ------------------------------------------------------------------------------------------ BM25 baseline

_WORD = re.compile(r"[A-Za-z0-9_]+")
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def code_tokens(text: str) -> list[str]:
    """Lowercase alphanumeric words, plus their snake_case and camelCase parts (single characters dropped)."""
    out: list[str] = []
    for m in _WORD.finditer(text):
        word = m.group()
        whole = word.strip("_").lower()
        if len(whole) > 1:
            out.append(whole)
        parts = _PART.findall(word)
        if len(parts) > 1:
            out.extend(p.lower() for p in parts if len(p) > 1)
    return out


class RepoCorpus:
    """Per-repository caches for the baseline, keyed by (path, blob id): tokens and pack cost of each file."""

    def __init__(self) -> None:
        import tiktoken

        self.encoding = tiktoken.get_encoding("cl100k_base")
        self.tokens: dict[tuple[str, str], list[str]] = {}
        self.costs: dict[tuple[str, str], int] = {}
        self.texts: dict[tuple[str, str], str] = {}

    def files(self, checkout: Path, extensions: frozenset[str]) -> list[tuple[str, str]]:
        """(path, blob) of the tracked regular files with the language's extensions, in git's order."""
        out = []
        for entry in git("-C", checkout, "ls-files", "-s", "-z").split("\0"):
            if not entry:
                continue
            meta, path = entry.split("\t", 1)
            mode, blob, _stage = meta.split()
            if mode.startswith("100") and os.path.splitext(path)[1] in extensions:
                out.append((path, blob))
        return out

    def text(self, checkout: Path, key: tuple[str, str]) -> str:
        if key not in self.texts:
            self.texts[key] = (checkout / key[0]).read_bytes().decode("utf-8", errors="replace")
        return self.texts[key]

    def doc_tokens(self, checkout: Path, key: tuple[str, str]) -> list[str]:
        if key not in self.tokens:
            self.tokens[key] = code_tokens(key[0] + "\n" + self.text(checkout, key))
        return self.tokens[key]

    def cost(self, checkout: Path, key: tuple[str, str]) -> int:
        if key not in self.costs:
            path = key[0]
            block = f"[start of {path}]\n" + self.text(checkout, key) + f"[end of {path}]\n"
            self.costs[key] = len(self.encoding.encode_ordinary(block))
        return self.costs[key]


def bm25_rank(corpus: RepoCorpus, checkout: Path, files: list[tuple[str, str]], query: str) -> list[int]:
    import bm25s
    import numpy as np

    docs = [corpus.doc_tokens(checkout, key) for key in files]
    q = code_tokens(query)
    retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    retriever.index(docs, show_progress=False)
    q = [t for t in q if t in retriever.vocab_dict]
    scores = retriever.get_scores(q) if q else np.zeros(len(files))
    return [int(i) for i in np.argsort(-scores, kind="stable")]


def bm25_select(
    corpus: RepoCorpus, checkout: Path, inst: Instance, budgets: Sequence[int]
) -> dict[int, tuple[list[str], int]]:
    """Walk the ranking once; at each budget add each whole file that still fits."""
    files = corpus.files(checkout, inst.extensions)
    order = bm25_rank(corpus, checkout, files, inst.problem_statement) if files else []
    chosen: dict[int, list[str]] = {b: [] for b in budgets}
    used = dict.fromkeys(budgets, 0)
    for idx in order:
        if all(used[b] >= b for b in budgets):
            break
        cost = corpus.cost(checkout, files[idx])
        for b in budgets:
            if used[b] + cost <= b:
                used[b] += cost
                chosen[b].append(files[idx][0])
    return {b: (chosen[b], used[b]) for b in budgets}


def bm25_cached(
    cache_dir: Path, corpus: RepoCorpus, checkout: Path, inst: Instance, budgets: Sequence[int], force: bool
) -> dict[int, tuple[list[str], int]]:
    path = cache_dir / f"{inst.instance_id}.json"
    if path.is_file() and not force:
        data = json.loads(path.read_text())
        have = {int(b): (v["files"], v["tokens"]) for b, v in data["budgets"].items()}
        if data.get("base_commit") == inst.base_commit and all(b in have for b in budgets):
            return have
    result = bm25_select(corpus, checkout, inst, budgets)
    cache_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": BM25_VERSION,
        "base_commit": inst.base_commit,
        "budgets": {str(b): {"files": f, "tokens": t} for b, (f, t) in result.items()},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)
    return result


def whole_file_spans(files: Iterable[str]) -> list[Span]:
    return [Span(p, 1, 10**9, True) for p in files]


# ----------------------------------------------------------------------------------------- results


class ResultStore:
    """JSON lines keyed by (tag, instance_id, budget); the last line for a key wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[tuple[str, str, int], dict[str, Any]] = {}
        self.lock = threading.Lock()
        if path.is_file():
            with path.open(encoding="utf-8") as fh:
                for raw in fh:
                    try:
                        row = json.loads(raw)
                    except ValueError:
                        continue  # a line cut by an interruption
                    self.rows[(row["tag"], row["instance_id"], int(row["budget"]))] = row

    def get(self, tag: str, instance_id: str, budget: int) -> dict[str, Any] | None:
        return self.rows.get((tag, instance_id, budget))

    def put(self, row: dict[str, Any]) -> None:
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, sort_keys=True) + "\n")
            self.rows[(row["tag"], row["instance_id"], int(row["budget"]))] = row

    def tags(self) -> set[str]:
        return {k[0] for k in self.rows}


def metrics_dict(m: Metrics) -> dict[str, Any]:
    return {
        "file_all": m.file_all,
        "line_all": m.line_all,
        "line_recall": round(m.line_recall, 6),
        "missed_files": list(m.missed_files),
    }


def default_tag() -> str:
    """Short commit of the ctxpack repo, plus -dirty-<digest of the changes outside bench/> when dirty."""
    try:
        sha = git("-C", REPO_ROOT, "rev-parse", "--short", "HEAD").strip()
        status = git("-C", REPO_ROOT, "status", "--porcelain", "--", ".", ":!bench")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "untagged"
    if not status.strip():
        return sha
    digest = hashlib.sha1(git("-C", REPO_ROOT, "diff", "HEAD", "--", ".", ":!bench").encode())
    untracked = git("-C", REPO_ROOT, "ls-files", "--others", "--exclude-standard", "-z", "--", ".", ":!bench")
    for rel in sorted(p for p in untracked.split("\0") if p):
        file = REPO_ROOT / rel
        digest.update(rel.encode() + b"\0" + (file.read_bytes() if file.is_file() else b""))
    return f"{sha}-dirty-{digest.hexdigest()[:6]}"


# ------------------------------------------------------------------------------------------ the run


@dataclass
class RunConfig:
    split: str
    tag: str
    budgets: tuple[int, ...]
    workdir: Path
    ctxpack: list[str]
    baseline: bool
    force: bool
    timeout: float
    store: ResultStore
    total: int
    done: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    children: Children = field(default_factory=Children)

    def log(self, msg: str) -> None:
        with self.lock:
            print(msg, file=sys.stderr, flush=True)

    def tick(self) -> int:
        with self.lock:
            self.done += 1
            return self.done


def reusable(cfg: RunConfig, row: dict[str, Any] | None) -> bool:
    """A stored ctxpack result still valid for this run (same gold definition; not --force; not a call that
    was killed by a signal, which measured nothing)."""
    return (row is not None and not cfg.force and row.get("gold_version") == GOLD_VERSION
            and row.get("ctxpack", {}).get("exit", 0) >= 0)


def needs_work(cfg: RunConfig, inst: Instance) -> bool:
    for b in cfg.budgets:
        row = cfg.store.get(cfg.tag, inst.instance_id, b)
        if not reusable(cfg, row) or (cfg.baseline and row is not None and row.get("bm25") is None):
            return True
    return False


def write_query(cfg: RunConfig, inst: Instance) -> Path:
    query = cfg.workdir / "queries" / f"{inst.instance_id}.txt"
    query.parent.mkdir(parents=True, exist_ok=True)
    query.write_text(inst.problem_statement, encoding="utf-8")
    return query


def ctxpack_result(cfg: RunConfig, checkout: Path, query: Path, gold: Gold, b: int, first: bool) -> dict[str, Any]:
    """Run ctxpack once and score it."""
    run = run_ctxpack(cfg.children, cfg.ctxpack, checkout, b, query, cfg.timeout)
    ctx = metrics_dict(score(gold.lines, run.spans))
    ctx.update(tokens=run.tokens, seconds=round(run.seconds, 3), exit=run.exit, error=run.error)
    ctx.update(warm=run.warm, after_checkout=first)
    return ctx


def bm25_result(gold: Gold, selection: tuple[list[str], int]) -> dict[str, Any]:
    files, tokens = selection
    base = metrics_dict(score(gold.lines, whole_file_spans(files)))
    base.update(tokens=tokens, files=len(files))
    return base


def run_instance(cfg: RunConfig, inst: Instance, mirror: Path, corpus: RepoCorpus | None) -> None:
    n = cfg.tick()
    if not needs_work(cfg, inst):
        return
    checkout = checkout_dir(cfg.workdir, inst.repo)
    prepare_checkout(mirror, checkout, inst.base_commit)
    gold = parse_gold(inst.patch, inst.extensions)
    notes = check_gold_at_base(checkout, gold)
    if not gold.lines:
        cfg.log(f"[{n}/{cfg.total}] {inst.instance_id}: no gold file exists at base; skipped")
        with cfg.lock:
            cfg.problems["instances left without gold at base (skipped)"] += 1
        return
    query = write_query(cfg, inst)
    bm25 = None
    if corpus is not None:
        bm25 = bm25_cached(cfg.workdir / "bm25" / BM25_VERSION, corpus, checkout, inst, cfg.budgets, cfg.force)
    first = True  # the first call after the checkout moved updates the index
    for b in cfg.budgets:
        old = cfg.store.get(cfg.tag, inst.instance_id, b)
        if reusable(cfg, old):
            assert old is not None
            ctx = old["ctxpack"]
        else:
            ctx = ctxpack_result(cfg, checkout, query, gold, b, first)
            first = False
        base = bm25_result(gold, bm25[b]) if bm25 is not None else None
        row = {
            "tag": cfg.tag,
            "split": cfg.split,
            "instance_id": inst.instance_id,
            "repo": inst.repo,
            "language": inst.language,
            "budget": b,
            "gold_version": GOLD_VERSION,
            "gold_files": len(gold.lines),
            "gold_lines": gold.n_lines,
            "gold_notes": dict(notes),
            "ctxpack": ctx,
            "bm25": base,
            "bm25_version": BM25_VERSION if base else None,
            "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        cfg.store.put(row)
        cfg.log(progress_line(n, cfg.total, inst.instance_id, b, ctx, base))


def progress_line(n: int, total: int, iid: str, b: int, ctx: dict[str, Any], base: dict[str, Any] | None) -> str:
    status = "ok" if ctx["exit"] == 0 else f"FAILED({ctx['exit']}: {ctx['error']})"
    msg = f"[{n}/{total}] {iid} B={b} ctxpack {ctx['seconds']:.2f}s {status} recall={ctx['line_recall']:.2f}"
    if base:
        msg += f" | bm25 recall={base['line_recall']:.2f}"
    return msg


def run_repo(cfg: RunConfig, mirror: Path, instances: list[Instance]) -> None:
    corpus = RepoCorpus() if cfg.baseline else None
    dated = sorted(instances, key=lambda i: (commit_time(mirror, i.base_commit), i.instance_id))
    for inst in dated:
        if cfg.children.stop.is_set():
            return
        try:
            run_instance(cfg, inst, mirror, corpus)
        except Interrupted:
            return
        except subprocess.CalledProcessError as exc:
            cfg.log(f"{inst.instance_id}: git failed: {' '.join(exc.cmd)}: {exc.stderr.strip()}")
            with cfg.lock:
                cfg.problems["instances whose checkout failed"] += 1


def add_subset_arguments(parser: argparse.ArgumentParser, n: int | None = None) -> None:
    """The options of the in-process bench tools (ablate, failures, train_ranker) that pick instances."""
    parser.add_argument("--split", choices=("python", "multi"), default="python")
    parser.add_argument("--n", type=int, default=n)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repos")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--mirrors", type=Path, default=DEFAULT_MIRRORS)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)


def chosen_instances(args: argparse.Namespace) -> list[Instance]:
    """The usable instances of `args.split`, narrowed by `--n`/`--seed`/`--repos`."""
    instances = load_instances(args.data_dir, args.split)
    usable = [i for i in instances if parse_gold(i.patch, i.extensions).lines]
    return select_instances(usable, args.n, args.seed, args.repos.split(",") if args.repos else None)


def checked_out(args: argparse.Namespace, chosen: list[Instance],
                skip: Callable[[Instance], bool] = lambda _: False) -> Iterator[tuple[Instance, Path, Gold]]:
    """Each instance not skipped, checked out at its base commit with its gold lines found there: repo by
    repo, in commit order (so an index moves forward). A checkout that fails is reported and passed over."""
    mirrors, missing = locate_mirrors(args.mirrors, chosen)
    if missing:
        sys.exit(f"missing mirrors: {', '.join(missing)}")
    by_repo: dict[str, list[Instance]] = defaultdict(list)
    for inst in chosen:
        by_repo[inst.source_repo].append(inst)
    for repo, group in sorted(by_repo.items()):
        mirror = mirrors[repo]
        for inst in sorted(group, key=lambda i: commit_time(mirror, i.base_commit)):
            if skip(inst):
                continue
            checkout = checkout_dir(args.workdir, inst.repo)
            try:
                prepare_checkout(mirror, checkout, inst.base_commit)
            except Exception as error:  # a mirror without some blob of the base commit
                print(f"{inst.instance_id}: checkout failed ({error})", file=sys.stderr)
                continue
            gold = parse_gold(inst.patch, inst.extensions)
            check_gold_at_base(checkout, gold)
            if gold.lines:
                yield inst, checkout, gold


def pack_metrics(gold: Gold, packed: Iterable[Any]) -> Metrics:
    """`score` of a library pack's chunks (`PackedChunk`s): a line counts in a `full` chunk only."""
    return score(gold.lines, [Span(p.chunk.path, p.chunk.start_line, p.chunk.end_line, p.mode == "full")
                              for p in packed])


def locate_mirrors(mirrors: Path, instances: list[Instance]) -> tuple[dict[str, Path], list[str]]:
    found: dict[str, Path] = {}
    missing: list[str] = []
    for src in sorted({i.source_repo for i in instances}):
        gitdir = find_mirror(mirrors, src)
        if gitdir is None:
            missing.append(src)
        else:
            found[src] = gitdir
    return found, missing


def run_all(cfg: RunConfig, instances: list[Instance], mirrors: dict[str, Path], jobs: int) -> None:
    groups: dict[str, list[Instance]] = defaultdict(list)
    for inst in instances:
        groups[inst.source_repo].append(inst)
    order = sorted(groups, key=lambda r: (-len(groups[r]), r))
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        for fut in [pool.submit(run_repo, cfg, mirrors[r], groups[r]) for r in order]:
            fut.result()
    except KeyboardInterrupt:
        cfg.children.kill_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------- reporting


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def p90(values: Sequence[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def summarize(rows: list[dict[str, Any]], system: str) -> dict[str, float]:
    ms = [r[system] for r in rows if r.get(system)]
    return {
        "n": len(ms),
        "file_all": mean([float(m["file_all"]) for m in ms]),
        "line_all": mean([float(m["line_all"]) for m in ms]),
        "line_recall": mean([m["line_recall"] for m in ms]),
    }


def fmt_pct(x: float) -> str:
    return "–" if math.isnan(x) else pct(x)


def budget_table(rows_by_budget: dict[int, list[dict[str, Any]]]) -> str:
    head = (
        "| budget | n | ctxpack file_all | line_all | line_recall | s mean | s p90 | failed "
        "| BM25 file_all | line_all | line_recall |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for b, rows in sorted(rows_by_budget.items()):
        c, k = summarize(rows, "ctxpack"), summarize(rows, "bm25")
        secs = [r["ctxpack"]["seconds"] for r in rows]
        failed = sum(1 for r in rows if r["ctxpack"]["exit"] != 0)
        lines.append(
            f"| {b} | {len(rows)} | {fmt_pct(c['file_all'])} | {fmt_pct(c['line_all'])} | "
            f"{fmt_pct(c['line_recall'])} | {mean(secs):.2f} | {p90(secs):.2f} | {failed} | "
            f"{fmt_pct(k['file_all'])} | {fmt_pct(k['line_all'])} | {fmt_pct(k['line_recall'])} |"
        )
    return "\n".join(lines)


def language_table(rows_by_budget: dict[int, list[dict[str, Any]]]) -> str:
    head = (
        "| language | n | budget | ctxpack file_all | line_all | line_recall | BM25 file_all | line_all | line_recall |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    languages = sorted({r["language"] for rows in rows_by_budget.values() for r in rows})
    for lang in languages:
        for b, rows in sorted(rows_by_budget.items()):
            sub = [r for r in rows if r["language"] == lang]
            c, k = summarize(sub, "ctxpack"), summarize(sub, "bm25")
            lines.append(
                f"| {lang} | {len(sub)} | {b} | {fmt_pct(c['file_all'])} | {fmt_pct(c['line_all'])} | "
                f"{fmt_pct(c['line_recall'])} | {fmt_pct(k['file_all'])} | {fmt_pct(k['line_all'])} | "
                f"{fmt_pct(k['line_recall'])} |"
            )
    return "\n".join(lines)


def collect_rows(store: ResultStore, tag: str, instances: list[Instance], budgets: Sequence[int]):
    out: dict[int, list[dict[str, Any]]] = {}
    for b in budgets:
        out[b] = [r for i in instances if (r := store.get(tag, i.instance_id, b)) is not None]
    return out


def timing_line(rows_by_budget: dict[int, list[dict[str, Any]]]) -> str:
    """ctxpack wall seconds by the state of the index: none yet, stale (first call after a checkout), warm."""
    runs = [r["ctxpack"] for rows in rows_by_budget.values() for r in rows]
    kinds = {
        "cold (no `.ctxpack/` yet)": [c for c in runs if not c.get("warm")],
        "first call after a checkout": [c for c in runs if c.get("warm") and c.get("after_checkout")],
        "later calls on the same checkout": [c for c in runs if c.get("warm") and not c.get("after_checkout")],
    }
    parts = []
    for label, calls in kinds.items():
        secs = [c["seconds"] for c in calls]
        if secs:
            parts.append(f"{label}: {len(secs)} calls, mean {mean(secs):.2f}s, p90 {p90(secs):.2f}s")
    return "ctxpack seconds — " + "; ".join(parts)


def data_notes(rows_by_budget: dict[int, list[dict[str, Any]]]) -> str:
    """Gold notes of the scored instances (each instance once)."""
    seen: dict[str, dict[str, int]] = {}
    for rows in rows_by_budget.values():
        for r in rows:
            seen.setdefault(r["instance_id"], r.get("gold_notes") or {})
    total: Counter[str] = Counter()
    for notes in seen.values():
        total.update(notes)
    return ", ".join(f"{v} {k}" for k, v in sorted(total.items()))


def machine_line() -> str:
    model = "unknown CPU"
    ram = "? GiB"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), {ram} RAM"


def write_csv(path: Path, rows_by_budget: dict[int, list[dict[str, Any]]]) -> None:
    cols = ["instance_id", "repo", "language", "budget", "gold_files", "gold_lines"]
    sys_cols = ["file_all", "line_all", "line_recall", "tokens"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols + [f"ctxpack_{c}" for c in [*sys_cols, "seconds", "exit"]] + [f"bm25_{c}" for c in sys_cols])
        for _, rows in sorted(rows_by_budget.items()):
            for r in sorted(rows, key=lambda r: r["instance_id"]):
                c, k = r["ctxpack"], r.get("bm25") or {}
                w.writerow(
                    [r[x] for x in cols]
                    + [int(c[x]) if isinstance(c[x], bool) else c[x] for x in [*sys_cols, "seconds", "exit"]]
                    + [int(k[x]) if isinstance(k.get(x), bool) else k.get(x, "") for x in sys_cols]
                )


def report(
    cfg: RunConfig, instances: list[Instance], usable: int, skipped: Counter[str], command: str
) -> tuple[str, dict[int, list[dict[str, Any]]]]:
    rows = collect_rows(cfg.store, cfg.tag, instances, cfg.budgets)
    today = dt.date.today().isoformat()
    out = [f"## {today} · {cfg.split} split · tag `{cfg.tag}`", ""]
    out.append(f"- machine: {machine_line()}")
    out.append(f"- command: `{command}`")
    skipped_s = ", ".join(f"{v} {k}" for k, v in sorted(skipped.items())) or "none"
    out.append(f"- instances: {len(instances)} scored of {usable} usable; skipped: {skipped_s}")
    notes = data_notes(rows)
    if notes:
        out.append(f"- gold notes: {notes}")
    problems = ", ".join(f"{v} {k}" for k, v in sorted(cfg.problems.items()))
    if problems:
        out.append(f"- problems in this run: {problems}")
    out.append(f"- {timing_line(rows)}")
    out += ["", budget_table(rows)]
    if cfg.split == "multi":
        out += ["", language_table(rows)]
    return "\n".join(out) + "\n", rows


def append_results_md(path: Path, section: str) -> None:
    if not path.exists():
        path.write_text("# Benchmark results\n\nAppended by `bench/retrieval.py --write-results`.\n")
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n" + section)


def compare_tags(store: ResultStore, tags: list[str], budgets: Sequence[int]) -> str:
    a, b = tags
    out = [f"line_all changes from `{a}` to `{b}`:"]
    for budget in budgets:
        ids_a = {k[1]: r for k, r in store.rows.items() if k[0] == a and k[2] == budget}
        ids_b = {k[1]: r for k, r in store.rows.items() if k[0] == b and k[2] == budget}
        both = sorted(set(ids_a) & set(ids_b))
        gained = [i for i in both if not ids_a[i]["ctxpack"]["line_all"] and ids_b[i]["ctxpack"]["line_all"]]
        lost = [i for i in both if ids_a[i]["ctxpack"]["line_all"] and not ids_b[i]["ctxpack"]["line_all"]]
        ra = mean([ids_a[i]["ctxpack"]["line_recall"] for i in both])
        rb = mean([ids_b[i]["ctxpack"]["line_recall"] for i in both])
        out.append(
            f"B={budget}: {len(both)} common instances, +{len(gained)} −{len(lost)}, "
            f"line_recall {fmt_pct(ra)} → {fmt_pct(rb)}"
        )
        out += [f"  + {i}" for i in gained] + [f"  - {i}" for i in lost]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--split", choices=sorted(SPLIT_FILES), required=True)
    p.add_argument("--n", type=int, help="a fixed pseudo-random subset of this many usable instances")
    p.add_argument("--seed", type=int, default=0, help="seed of the --n subset (default 0)")
    p.add_argument("--repos", help="comma-separated repos to keep (owner/name or name)")
    p.add_argument("--budgets", default=",".join(map(str, DEFAULT_BUDGETS)), help="default 8000,16000,32000")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help=f"default {DEFAULT_DATA}")
    p.add_argument(
        "--mirrors", type=Path, default=DEFAULT_MIRRORS, help=f"fetched git dirs (default {DEFAULT_MIRRORS})"
    )
    p.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"checkouts, caches (default {DEFAULT_WORKDIR})"
    )
    p.add_argument("--results", type=Path, help="results JSON lines (default WORKDIR/results/SPLIT.jsonl)")
    default_cmd = REPO_ROOT / ".venv" / "bin" / "ctxpack"
    p.add_argument("--ctxpack", default=str(default_cmd) if default_cmd.exists() else "ctxpack", help="command")
    p.add_argument("--tag", help="label of this ctxpack version (default: git commit, -dirty-<digest> if dirty)")
    p.add_argument("--jobs", type=int, default=1, help="repositories processed in parallel (default 1)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before a ctxpack call counts as failed")
    p.add_argument("--no-baseline", action="store_true", help="skip the BM25 baseline")
    p.add_argument("--force", action="store_true", help="redo instances already on disk for this tag")
    p.add_argument(
        "--write-results",
        nargs="?",
        const=DEFAULT_RESULTS_MD,
        type=Path,
        metavar="MD",
        help=f"append the report to MD (default {DEFAULT_RESULTS_MD.relative_to(REPO_ROOT)})",
    )
    p.add_argument("--compare", help="TAG1,TAG2: print the instances whose line_all changed, and exit")
    return p.parse_args(argv)


def usable_instances(instances: list[Instance]) -> tuple[list[Instance], Counter[str]]:
    usable, skipped = [], Counter[str]()
    for inst in instances:
        if parse_gold(inst.patch, inst.extensions).lines:
            usable.append(inst)
        else:
            skipped["without gold (fix touches no source file of the language)"] += 1
    return usable, skipped


def missing_message(missing: list[str], mirrors: Path) -> str:
    lines = [f"missing repositories: no git dir for these under {mirrors}:"]
    lines += [f"  {src:45} fetch source: github:{src}" for src in missing]
    lines.append("fetch them with the search tool's `fetch` (they land in /work/.mirror/OWNER+NAME/repo), then rerun")
    return "\n".join(lines)


def byte_compile(python: Path) -> None:
    """Byte-compile ctxpack's own modules for `python`, as `pip install` does: an editable install run with
    PYTHONDONTWRITEBYTECODE=1 would otherwise compile them in every ctxpack process (~0.1-0.3 s a call)."""
    if not python.exists():
        return
    where = "import context_pack, os; print(os.path.dirname(context_pack.__file__))"
    package = subprocess.run([str(python), "-c", where], check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([str(python), "-m", "compileall", "-q", package], check=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tiktoken_dir = args.data_dir.parent / "tiktoken"
    if "TIKTOKEN_CACHE_DIR" not in os.environ and tiktoken_dir.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(tiktoken_dir.resolve())
    budgets = tuple(int(b) for b in args.budgets.split(","))
    results = args.results or args.workdir / "results" / f"{args.split}.jsonl"
    store = ResultStore(results)
    if args.compare:
        tags = args.compare.split(",")
        if len(tags) != 2:
            print("--compare takes TAG1,TAG2", file=sys.stderr)
            return 2
        unknown = [t for t in tags if t not in store.tags()]
        if unknown:
            print(f"no results for {', '.join(unknown)} in {results}; known tags: {', '.join(sorted(store.tags()))}")
            return 2
        print(compare_tags(store, tags, budgets))
        return 0

    usable, skipped = usable_instances(load_instances(args.data_dir, args.split))
    repos = args.repos.split(",") if args.repos else None
    chosen = select_instances(usable, args.n, args.seed, repos)
    if not chosen:
        print("no instances selected", file=sys.stderr)
        return 2
    mirrors, missing = locate_mirrors(args.mirrors, chosen)
    if missing:
        print(missing_message(missing, args.mirrors), file=sys.stderr)
        return 2

    cfg = RunConfig(
        split=args.split,
        tag=args.tag or default_tag(),
        budgets=budgets,
        workdir=args.workdir.expanduser(),
        ctxpack=shlex.split(args.ctxpack),
        baseline=not args.no_baseline,
        force=args.force,
        timeout=args.timeout,
        store=store,
        total=len(chosen),
    )
    print(f"{len(chosen)} instances, tag {cfg.tag}, results {results}", file=sys.stderr)
    byte_compile(Path(cfg.ctxpack[0]).parent / "python")
    try:
        run_all(cfg, chosen, mirrors, args.jobs)
    except KeyboardInterrupt:
        print("\ninterrupted: finished instances are saved; run the same command to go on", file=sys.stderr)
        return 130

    command = shlex.join(["python", "bench/retrieval.py", *(sys.argv[1:] if argv is None else argv)])
    section, rows = report(cfg, chosen, len(usable), skipped, command)
    print(section)
    csv_path = results.with_name(f"{args.split}-{cfg.tag}.csv")
    write_csv(csv_path, rows)
    print(f"per-instance CSV: {csv_path}", file=sys.stderr)
    if args.write_results:
        append_results_md(args.write_results, section)
        print(f"appended to {args.write_results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

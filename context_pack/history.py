"""Git facts for the recency signal: one `git log` pass and one `git status`, never a process per file."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

MAX_COMMITS = 2000  # how far back recency, churn and co-change look
MAX_COCHANGE_FILES = 20  # a commit touching more files (a reformat, a rename sweep) says little of what goes together


@dataclass
class FileHistory:
    """Per file (relative to the root): last commit time and how many of the last commits touched it."""

    available: bool = False  # False outside a git repo or before the first commit
    newest: int = 0  # time of the newest commit: ages are measured from it, never from the clock
    last_commit: dict[str, int] = field(default_factory=dict)
    touches: dict[str, int] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)  # modified, staged or untracked: the newest of all
    # The files of each commit that touched at most MAX_COCHANGE_FILES, newest first: what changes together.
    commits: list[tuple[str, ...]] = field(default_factory=list)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes] | None:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    except OSError:
        return None


def read_history(root: Path, max_commits: int = MAX_COMMITS) -> FileHistory:
    history = FileHistory()
    log = _git(root, "-c", "core.quotepath=off", "log", f"-n{max_commits}", "--no-renames", "--relative",
               "--format=%x00%ct", "--name-only", "-z", "HEAD", "--")
    if log is None or log.returncode != 0:
        return history  # not a repo, or no commits yet: the signal stays neutral
    history.available = True
    # With -z the stream is: NUL, time, NUL, newline + path, NUL, path, ..., NUL, NUL, time, ...
    commit_time = 0
    expect_time = False
    current: list[str] = []  # the files of the commit being read

    def close_commit() -> None:
        if 0 < len(current) <= MAX_COCHANGE_FILES:
            history.commits.append(tuple(current))
        current.clear()

    for raw in log.stdout.split(b"\0"):
        if not raw:
            expect_time = True
            continue
        if expect_time:
            close_commit()
            commit_time = int(raw)
            history.newest = max(history.newest, commit_time)
            expect_time = False
            continue
        path = raw.removeprefix(b"\n").decode("utf-8", "surrogateescape")
        history.touches[path] = history.touches.get(path, 0) + 1
        history.last_commit.setdefault(path, commit_time)  # the log is newest first
        current.append(path)
    close_commit()
    history.dirty = _dirty(root)
    return history


def _dirty(root: Path) -> set[str]:
    prefix_run = _git(root, "rev-parse", "--show-prefix")
    status = _git(root, "-c", "core.quotepath=off", "status", "--porcelain=v1", "-z", "--untracked-files=all",
                  "--no-renames", ".")
    if prefix_run is None or status is None or status.returncode != 0:
        return set()
    prefix = prefix_run.stdout.decode("utf-8", "surrogateescape").strip()
    dirty = set()
    for entry in status.stdout.split(b"\0"):
        if len(entry) < 4:
            continue
        path = entry[3:].decode("utf-8", "surrogateescape")  # porcelain paths are relative to the top level
        if path.startswith(prefix):
            dirty.add(path[len(prefix):])
    return dirty


def tracked_blobs(root: Path) -> dict[str, str]:
    """Git's blob id of every tracked file under root (relative paths): the content hash of clean files."""
    listing = _git(root, "-c", "core.quotepath=off", "ls-files", "-s", "-z")
    if listing is None or listing.returncode != 0:
        return {}
    blobs = {}
    for entry in listing.stdout.split(b"\0"):
        meta, _, path = entry.partition(b"\t")
        parts = meta.split()
        if len(parts) == 3 and parts[2] == b"0":  # stage 0: not in a merge conflict
            blobs[path.decode("utf-8", "surrogateescape")] = parts[1].decode("ascii")
    return blobs

"""The staged change: `git diff --cached`, its files and the lines it touches (for `--staged` and the hook).

Paths are relative to the build root (`--relative`), so a root below the repository's top works too; a
change outside the root is not in this root's diff.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CtxpackError

DIFF_CONTEXT_LINES = 3


@dataclass
class StagedChange:
    diff: str  # the unified diff as git prints it
    files: list[str]  # paths the change leaves in place (added, modified, renamed-to), relative to the root
    deleted: list[str] = field(default_factory=list)
    # path -> line ranges (1-based, inclusive) of the new file that the change adds or that border a removal
    lines: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.diff.strip()


def read_staged(root: Path) -> StagedChange:
    """The staged change under `root`. Raises CtxpackError outside a git work tree."""
    command = ["git", "-C", str(root), "-c", "core.quotepath=off", "diff", "--cached", "--no-color", "--no-ext-diff",
               f"--unified={DIFF_CONTEXT_LINES}", "--relative", "--find-renames"]
    try:
        result = subprocess.run(command, capture_output=True, check=False)
    except OSError as exc:
        raise CtxpackError(f"cannot run git: {exc.strerror or exc}") from None
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CtxpackError(f"--staged needs a git work tree: {message[0] if message else 'git diff failed'}")
    return parse_diff(result.stdout.decode("utf-8", "replace"))


def parse_diff(diff: str) -> StagedChange:
    """Files and touched lines of a unified diff (git's), parsed with unidiff."""
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError

    try:
        patch = PatchSet(diff)
    except UnidiffParseError as exc:
        raise CtxpackError(f"cannot parse the staged diff: {exc}") from None
    files: list[str] = []
    deleted: list[str] = []
    lines: dict[str, list[tuple[int, int]]] = {}
    for patched in patch:
        if patched.is_removed_file:
            deleted.append(_strip_prefix(patched.source_file))
            continue
        path = _strip_prefix(patched.target_file)
        files.append(path)
        ranges: list[tuple[int, int]] = []
        for hunk in patched:
            for line in hunk:
                if line.is_added and line.target_line_no:
                    ranges.append((line.target_line_no, line.target_line_no))
            if hunk.removed and not hunk.added:  # a pure removal: the lines around where it was
                start = hunk.target_start + max(0, min(DIFF_CONTEXT_LINES, hunk.target_length) - 1)
                ranges.append((max(1, start), max(1, start + 1)))
        lines[path] = _merge(ranges)
    return StagedChange(diff=diff, files=sorted(set(files)), deleted=sorted(deleted), lines=lines)


def without_files(diff: str, leave_out: Callable[[str], bool]) -> tuple[str, list[str]]:
    """The diff less the sections of files `leave_out` names (by new or old path), and those paths."""
    kept: list[str] = []
    dropped: list[str] = []
    for section in re.split(r"(?m)^(?=diff --git )", diff):
        if not section:
            continue
        change = parse_diff(section) if section.startswith("diff --git ") else None
        paths = [*change.files, *change.deleted] if change is not None else []
        if any(leave_out(path) for path in paths):
            dropped.extend(paths)
        else:
            kept.append(section)
    return "".join(kept), sorted(set(dropped))


def _strip_prefix(name: str) -> str:
    return name[2:] if name.startswith(("a/", "b/")) else name


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged

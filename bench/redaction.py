"""What redaction costs and what it catches on real code, for bench/RELIABILITY.md.

    .venv/bin/python bench/redaction.py ~/.cache/ctxpack-bench/speed/stdlib --rounds 3

1. Cost: cold builds (`ctxpack build ROOT --budget 32k --no-cache -o /dev/null`) with redaction (the
   default) and with `--no-redact`, alternating, ROUNDS each: median wall time and CPU time (user + sys of
   the process and its parse workers).
2. Findings: every file the walk keeps, redacted alone in this process; per kind, in test code or not, the
   files with the most. On a codebase without real secrets (the standard library), all are false positives.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

from context_pack.parse import is_test_path  # noqa: E402
from context_pack.secrets import redact, warm_up  # noqa: E402
from context_pack.walk import walk  # noqa: E402


def timed_build(root: Path, redact_flag: bool) -> tuple[float, float]:
    command = [sys.executable, "-m", "context_pack", "build", str(root), "--budget", "32k", "--no-cache", "-o",
               os.devnull, "--quiet"]
    if not redact_flag:
        command.append("--no-redact")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cost(root: Path, rounds: int) -> list[str]:
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(rounds):
        for flag in (True, False):
            runs[flag].append(timed_build(root, flag))
    lines = ["| cold build, `--no-cache` | wall (median) | CPU (median) | runs (wall s) |", "| --- | --- | --- | --- |"]
    for flag, label in ((False, "`--no-redact`"), (True, "redaction on (default)")):
        walls = [w for w, _ in runs[flag]]
        cpus = [c for _, c in runs[flag]]
        lines.append(f"| {label} | {statistics.median(walls):.2f} s | {statistics.median(cpus):.2f} s | "
                     f"{', '.join(f'{w:.2f}' for w in walls)} |")
    on = [statistics.median([w for w, _ in runs[True]]), statistics.median([c for _, c in runs[True]])]
    off = [statistics.median([w for w, _ in runs[False]]), statistics.median([c for _, c in runs[False]])]
    lines.append(f"| cost of redaction | {100 * (on[0] / off[0] - 1):+.1f} % | {100 * (on[1] / off[1] - 1):+.1f} % | |")
    return lines


def findings(root: Path) -> list[str]:
    warm_up()
    walked = walk(root)
    kinds: collections.Counter[tuple[str, bool]] = collections.Counter()
    per_file: collections.Counter[str] = collections.Counter()
    size = 0
    started = time.perf_counter()
    for file in walked.files:
        text = (walked.root / file.path).read_bytes().decode("utf-8", errors="replace")
        size += len(text)
        for finding in redact(text, file.path)[1]:
            kinds[(finding.kind, is_test_path(file.path))] += 1
            per_file[file.path] += 1
    seconds = time.perf_counter() - started
    total = sum(kinds.values())
    test_total = sum(count for (_, test), count in kinds.items() if test)
    lines = [f"{len(walked.files):,} files, {size / 1e6:.1f} MB of text scanned in {seconds:.2f} s (one core, "
             f"detection and redaction only); {len(walked.skipped.get('secret-file', []))} secret files skipped.",
             "", "| kind | in test code | elsewhere |", "| --- | --- | --- |"]
    for kind in sorted({kind for kind, _ in kinds}):
        lines.append(f"| {kind} | {kinds[(kind, True)]} | {kinds[(kind, False)]} |")
    lines += [f"| all | {test_total} | {total - test_total} |", "",
              "Files with the most: " + ", ".join(f"`{path}` {count}" for path, count in per_file.most_common(6)) + "."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared" / "tiktoken"))
    print("\n".join(findings(args.root)))
    print()
    if args.rounds:
        print("\n".join(cost(args.root, args.rounds)))


if __name__ == "__main__":
    main()

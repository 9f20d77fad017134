"""Prefix-cache reuse of `ctxpack ask`: how much of a second question's prompt a llama.cpp server re-uses.

    python bench/prefix_reuse.py REPO                         # starts the tiny test llama-server itself
    python bench/prefix_reuse.py REPO --backend http://127.0.0.1:8080 --max-tokens 256
    python bench/prefix_reuse.py REPO --ctx 8192 --shares 0 0.25 0.5 0.75

For each stable share, two questions about REPO are asked in a row through `context_pack.ask` with a system
prompt no earlier request used (so the first prompt is evaluated in full). llama.cpp's `timings` say how many
prompt tokens each request evaluated (`prompt_n`) and how many it took from the slot's cache (`cache_n`).
ratio = second prompt_n / first prompt_n: the share of the prompt the second question still had to evaluate.
Without --backend, the server is the tests' one: llama-server built from the llama-cpp-python sdist
(scripts/llama_server.sh) with the tiny random-weight model (fixtures/tiny_model.py), `-c CTX -np 1`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import context_pack  # noqa: E402
from context_pack.model import DEFAULT_SYSTEM_PROMPT  # noqa: E402

QUESTIONS = ("How does the JSON decoder report the position of a syntax error?",
             "Where does the email package fold long header lines?")


def measure(root: Path, url: str, share: float, max_tokens: int) -> dict[str, float]:
    system = f"[run {uuid.uuid4().hex[:8]}] {DEFAULT_SYSTEM_PROMPT}"  # nothing of it is cached yet
    answers = [context_pack.ask(root, question, url, max_tokens=max_tokens, system=system, stable_share=share)
               for question in QUESTIONS]
    first, second = answers
    return {
        "share": share,
        "window": first.plan.server.window,
        "prompt_1": first.plan.prompt_tokens, "eval_1": first.timings["prompt_n"],
        "cache_1": first.timings["cache_n"],
        "prompt_2": second.plan.prompt_tokens, "eval_2": second.timings["prompt_n"],
        "cache_2": second.timings["cache_n"],
        "stable": first.plan.stable_budget,
        "ratio": second.timings["prompt_n"] / first.timings["prompt_n"],
        "ms_1": first.timings.get("prompt_ms", 0.0), "ms_2": second.timings.get("prompt_ms", 0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--backend", help="a running llama.cpp server (default: start the tiny test server)")
    parser.add_argument("--ctx", type=int, default=8192, help="window of the server this script starts")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75])
    args = parser.parse_args()

    server = None
    url = args.backend
    if url is None:
        from llama_server import start_llama_server

        server = start_llama_server(Path(tempfile.mkdtemp(prefix="prefix-reuse-")), n_ctx=args.ctx)
        url = server.url
    try:
        rows = [measure(args.root, url, share, args.max_tokens) for share in args.shares]
    finally:
        if server is not None:
            server.stop()

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"{dt.date.today()} · {platform.machine()} · {platform.node()} · ctxpack {commit} · "
          f"`python bench/prefix_reuse.py {' '.join(sys.argv[1:])}`")
    print()
    print("| stable share | window | 1st prompt | 1st evaluated / cached | 2nd prompt | 2nd evaluated / cached "
          "| ratio 2nd/1st evaluated | prompt ms 1st → 2nd |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['share']:.2f} | {row['window']} | {row['prompt_1']} | {row['eval_1']} / {row['cache_1']} "
              f"| {row['prompt_2']} | {row['eval_2']} / {row['cache_2']} | {row['ratio']:.3f} "
              f"| {row['ms_1']:.0f} → {row['ms_2']:.0f} |")


if __name__ == "__main__":
    main()

"""How far a cl100k count is from a local model's own count, and how fast each kind of tokenizer counts.

    python bench/tokenizer_counts.py                    # stdlib copy and Django 5.1.4, a report on stdout
    python bench/tokenizer_counts.py --codebases stdlib --write-results   # also append it to bench/RESULTS.md

Not named `tokenizers.py`: run as a script, bench/ comes first on sys.path and would shadow the library.

For each codebase (made as bench/speed.py makes them) and every file ctxpack's walk reads:
- ratio per language: the model's tokens / cl100k's tokens, summed over the files of that language, for the
  real vocabularies llama.cpp ships (qwen2, deepseek-coder, llama-bpe), counted by llama.cpp itself (gguf);
- packs: `ctxpack build ROOT --budget 32768` counted with cl100k (the default), with no query and with each
  of bench/speed.py's queries; each pack text is then counted with every model vocabulary: how far over
  32768 it would be for that model;
- throughput: one thread calling `count()` file by file over the whole codebase, MB/s and tokens/s, for
  tiktoken cl100k, hf (Qwen2's tokenizer.json, derived in fixtures/hf_vocab.py) and gguf (qwen2).
The vocabularies come from the llama-cpp-python sdist (fixtures/llama_sdist.py); gguf needs llama-cpp-python
(`bash scripts/ci_deps.sh .venv/bin/python`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "fixtures"))

from speed import QUERIES, machine, prepare_django, prepare_stdlib  # noqa: E402

import context_pack  # noqa: E402
from context_pack.tokens import Tokenizer, get_tokenizer  # noqa: E402
from context_pack.walk import walk  # noqa: E402
from hf_vocab import qwen2_tokenizer_json  # noqa: E402
from llama_sdist import vocab  # noqa: E402

MODELS = ("qwen2", "deepseek-coder", "llama-bpe")
BASE = "tiktoken:cl100k_base"
BUDGET = 32768
MIN_LANGUAGE_TOKENS = 20_000  # languages with fewer cl100k tokens than this are folded into "other"


def read_files(root: Path) -> list[tuple[str, str]]:
    """(language, text) of every file ctxpack's walk reads."""
    walked = walk(root)
    files = []
    for file in walked.files:
        data = (walked.root / file.path).read_bytes()
        files.append((file.language or "text", data.decode("utf-8", "replace")))
    return files


def timed_counts(tokenizer: Tokenizer, texts: list[str]) -> tuple[list[int], float]:
    started = time.perf_counter()
    counts = [tokenizer.count(text) for text in texts]
    return counts, time.perf_counter() - started


def measure(root: Path, tokenizers: dict[str, Tokenizer]) -> dict[str, object]:
    files = read_files(root)
    texts = [text for _, text in files]
    megabytes = sum(len(text.encode("utf-8")) for text in texts) / 1e6
    counts: dict[str, list[int]] = {}
    speed: dict[str, tuple[float, float]] = {}
    for label, tokenizer in tokenizers.items():
        print(f"  counting {len(texts)} files with {label} ...", file=sys.stderr)
        counts[label], seconds = timed_counts(tokenizer, texts)
        speed[label] = (megabytes / seconds, sum(counts[label]) / seconds)

    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    base = counts["cl100k"]
    by_language: dict[str, int] = defaultdict(int)
    for (language, _), n in zip(files, base, strict=True):
        by_language[language] += n
    for i, (language, _) in enumerate(files):
        group = language if by_language[language] >= MIN_LANGUAGE_TOKENS else "other"
        for label in counts:
            totals[group][label] += counts[label][i]
            totals["all"][label] += counts[label][i]

    packs = []
    for query in (None, *QUERIES):
        # In memory: the codebases are shared with bench/speed.py, whose index timings a write here would upset.
        pack = context_pack.build(root, budget=BUDGET, query=query, tokenizer=BASE, use_cache=False)
        packs.append({label: tokenizers[label].count(pack.text) for label in ("cl100k", *MODELS)})
    return {"files": len(files), "megabytes": megabytes, "totals": totals, "speed": speed, "packs": packs}


def report(results: dict[str, dict[str, object]], command: str) -> str:
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines = [f"\n## Tokenizers — {dt.date.today().isoformat()} (ctxpack {commit})\n",
             f"Machine: {machine()}.\n", f"Command: `{command}`.\n",
             "Vocabularies: llama.cpp's `ggml-vocab-{qwen2,deepseek-coder,llama-bpe}.gguf` (llama-cpp-python "
             "0.3.36 sdist), counted by llama.cpp (`gguf:`), no BOS, special tokens as text. "
             "`tiktoken:o200k_base` is not measured: its data is not on this offline machine.\n"]
    for name, result in results.items():
        totals = result["totals"]
        assert isinstance(totals, dict)
        lines.append(f"### {name}: {result['files']} files, {result['megabytes']:.1f} MB\n")
        lines.append("Model tokens ÷ cl100k tokens, over all files of the language:\n")
        lines.append("| language | cl100k tokens | " + " | ".join(MODELS) + " |")
        lines.append("| --- | ---: | " + " | ".join("---:" for _ in MODELS) + " |")
        order = sorted((k for k in totals if k not in ("all", "other")), key=lambda k: -totals[k]["cl100k"])
        for language in [*order, *(k for k in ("other", "all") if k in totals)]:
            row = totals[language]
            cells = " | ".join(f"{row[m] / row['cl100k']:.3f}" for m in MODELS)
            label = f"**{language}**" if language == "all" else language
            lines.append(f"| {label} | {row['cl100k']:,} | {cells} |")
        packs = result["packs"]
        assert isinstance(packs, list)
        lines.append(f"\nPacks built with the default cl100k at `--budget {BUDGET}` (no query, then "
                     f"{len(QUERIES)} queries), counted with each model vocabulary:\n")
        lines.append("| pack | cl100k | " + " | ".join(MODELS) + " |")
        lines.append("| --- | ---: | " + " | ".join("---:" for _ in MODELS) + " |")
        for number, pack in enumerate(packs):
            cells = " | ".join(f"{pack[m]:,} ({pack[m] / BUDGET:.3f})" for m in MODELS)
            lines.append(f"| {'no query' if number == 0 else f'query {number}'} | {pack['cl100k']:,} | {cells} |")
        speed = result["speed"]
        assert isinstance(speed, dict)
        lines.append("\nCounting throughput, one thread, `count()` file by file:\n")
        lines.append("| tokenizer | MB/s | tokens/s |")
        lines.append("| --- | ---: | ---: |")
        for label, (mb_per_s, tokens_per_s) in speed.items():
            kind = "gguf " if label in MODELS else "tiktoken " if label == "cl100k" else ""
            lines.append(f"| {kind}{label} | {mb_per_s:.2f} | {tokens_per_s:,.0f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codebases", default="stdlib,django", help="comma-separated: stdlib, django")
    parser.add_argument("--workdir", type=Path, default=Path.home() / ".cache" / "ctxpack-bench" / "speed")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    tokenizers: dict[str, Tokenizer] = {"cl100k": get_tokenizer(BASE)}
    tokenizers["hf qwen2"] = get_tokenizer(f"hf:{qwen2_tokenizer_json()}")
    for model in MODELS:
        tokenizers[model] = get_tokenizer(f"gguf:{vocab(model)}")
    prepare = {"stdlib": prepare_stdlib, "django": prepare_django}
    results = {}
    for name in args.codebases.split(","):
        root = prepare[name](args.workdir)
        print(f"measuring {name} ({root}) ...", file=sys.stderr)
        results[name] = measure(root, tokenizers)
    command = "python bench/tokenizer_counts.py" + (f" --codebases {args.codebases}"
                                                    if args.codebases != "stdlib,django" else "")
    text = report(results, command)
    print(text)
    if args.write_results:
        with (REPO / "bench" / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write(text)


if __name__ == "__main__":
    main()

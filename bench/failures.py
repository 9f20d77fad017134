"""Why a pack misses the fix: for each instance, where the chunks holding the gold lines rank, what they cost,
and how much of the budget the chunks ranked above them take. In one process, like `ablate.py`.

    python bench/failures.py --split python --n 60            # per-instance lines, then the failure classes
    python bench/failures.py --split python --n 60 --json out.jsonl

Failure classes at each budget (an instance whose gold lines are not all in `full` chunks):
- `file-missed`: some gold file has no chunk in the pack;
- `too-big`: a gold chunk is larger than one chunk may be in full (`pack.MAX_FULL_SHARE` of the budget);
- `too-deep`: the gold chunks are each small enough, but the chunks ranked above them fill the budget.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import retrieval as rt

from context_pack import pack as pack_module
from context_pack.config import load_config
from context_pack.pipeline import collect, pack_corpus, rank
from context_pack.tokens import get_tokenizer


def diagnose(checkout: Path, corpus: Any, query: str, gold: rt.Gold, budgets: list[int]) -> dict[str, Any]:
    config = load_config(checkout)
    ranked = rank(corpus, config, query=query)
    tokenizer = get_tokenizer("tiktoken:cl100k_base")
    needed = {(path, line) for path, lines in gold.lines.items() for line in lines}
    gold_chunks: list[dict[str, Any]] = []
    file_rank: dict[str, int] = {}
    spent = 0  # tokens of the chunks ranked above, each as the packer would take it at the largest budget
    cap = int(max(budgets) * pack_module.MAX_FULL_SHARE)
    for position, item in enumerate(ranked):
        chunk = item.chunk
        if chunk.path in gold.lines and chunk.path not in file_rank:
            file_rank[chunk.path] = position
        hits = {(p, ln) for p, ln in needed if p == chunk.path and chunk.start_line <= ln <= chunk.end_line}
        tokens = tokenizer.count(chunk.text) if (hits or spent < 4 * max(budgets)) else len(chunk.text) // 4
        if hits:
            needed -= hits
            gold_chunks.append({"path": chunk.path, "start": chunk.start_line, "end": chunk.end_line,
                                "kind": chunk.kind, "rank": position, "tokens": tokens, "before": spent,
                                "score": round(item.score, 4), "features": {k: round(v, 3) for k, v in
                                                                            item.features.items() if v}})
        if not needed:
            break
        spent += tokens if tokens <= cap else tokenizer.count(chunk.signature or "") + 8
    outcome = {}
    for budget in budgets:
        result = pack_corpus(corpus, ranked, budget, config, fmt="md", query=query)
        metrics = rt.pack_metrics(gold, result.chunks)
        verdict = "ok"
        if not metrics.line_all:
            limit = int(budget * pack_module.MAX_FULL_SHARE)
            if not metrics.file_all:
                verdict = "file-missed"
            elif any(g["tokens"] > limit for g in gold_chunks):
                verdict = "too-big"
            else:
                verdict = "too-deep"
        outcome[str(budget)] = {"line_all": metrics.line_all, "file_all": metrics.file_all, "verdict": verdict}
    return {"gold_chunks": gold_chunks, "file_rank": file_rank, "outcome": outcome,
            "gold_tokens": sum(g["tokens"] for g in gold_chunks),
            "depth": max((g["before"] + g["tokens"] for g in gold_chunks), default=None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rt.add_subset_arguments(parser, n=60)
    parser.add_argument("--budgets", default="8000,16000,32000")
    parser.add_argument("--json", type=Path, help="write one JSON line per instance here")
    args = parser.parse_args()

    budgets = [int(b) for b in args.budgets.split(",")]
    verdicts: dict[int, Counter[str]] = {b: Counter() for b in budgets}
    out = args.json.open("w", encoding="utf-8") if args.json else None
    for inst, checkout, gold in rt.checked_out(args, rt.chosen_instances(args)):
        corpus = collect(checkout, load_config(checkout))
        try:
            row = diagnose(checkout, corpus, inst.problem_statement, gold, budgets)
        finally:
            corpus.close()
        row.update(instance_id=inst.instance_id, language=inst.language)
        for b in budgets:
            verdicts[b][row["outcome"][str(b)]["verdict"]] += 1
        if out:
            out.write(json.dumps(row) + "\n")
            out.flush()
        worst = max(row["gold_chunks"], key=lambda g: g["rank"], default=None)
        print(f"{inst.instance_id}: " + " ".join(row["outcome"][str(b)]["verdict"] for b in budgets)
              + f" | depth {row['depth']} gold {row['gold_tokens']} tok in {len(row['gold_chunks'])} chunks"
              + (f"; deepest rank {worst['rank']} {worst['path']}:{worst['start']} ({worst['kind']}, "
                 f"{worst['tokens']} tok)" if worst else ""), file=sys.stderr, flush=True)
    print("\n| budget | " + " | ".join(sorted({v for c in verdicts.values() for v in c})) + " |")
    names = sorted({v for c in verdicts.values() for v in c})
    for b in budgets:
        print(f"| {b} | " + " | ".join(str(verdicts[b][v]) for v in names) + " |")


if __name__ == "__main__":
    main()

"""Ranking ablations in one process: each instance is checked out and indexed once, then every variant is
ranked and packed on the same corpus. For deciding defaults quickly; `retrieval.py` (the CLI, as a user
runs it) gives the reported figures.

    python bench/ablate.py --split python --n 60 --variants baseline,no-proximity
    python bench/ablate.py --split multi --n 40 --variants all

A variant is a name in VARIANTS: config overrides plus module constants to set while it runs.
Results per instance, variant and budget go to WORKDIR/ablate/<split>.jsonl (resumable, keyed by the
ctxpack commit too); the summary table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import retrieval as rt

from context_pack.config import load_config
from context_pack.pipeline import collect, pack_corpus, rank

Variant = dict[str, Any]  # "weights.query": 3.0, "context_pack.signals.query.BM25_SHARE": 0.5, ...

Q = "context_pack.signals.query."
P = "context_pack.pack."
C = "context_pack.signals.centrality."
VARIANTS: dict[str, Variant] = {
    "baseline": {},
    "top1-0.5": {Q + "TOP_FILES": 1, Q + "TOP_FILE_SHARE": 0.5},
    "top1-0.8": {Q + "TOP_FILE_SHARE": 0.8},
    "top2-0.7": {Q + "TOP_FILES": 2, Q + "TOP_FILE_SHARE": 0.7},
    "top1-0.8-ident": {Q + "TOP_FILE_SHARE": 0.8, Q + "BM25_SHARE": 0.5, Q + "IDENT_SHARE": 0.4},
    "file-0.6-top1-0.8": {Q + "FILE_SHARE": 0.6, Q + "TOP_FILE_SHARE": 0.8},
    "no-partial": {Q + "PARTIAL_SHARE": 0.0},
    "prior-0": {"weights.centrality": 0.0, "weights.definitions": 0.0, "weights.recency": 0.0},
    "full-cap-0.3": {P + "MAX_FULL_SHARE": 0.3},
    "centrality-files": {C + "FILE_SHARE": 1.0},
    "centrality-chunks": {C + "FILE_SHARE": 0.0},
    "centrality-0.8-files": {"weights.centrality": 0.8, C + "FILE_SHARE": 1.0},
    "centrality-0.8-mixed": {"weights.centrality": 0.8},
    "centrality-0.8-chunks": {"weights.centrality": 0.8, C + "FILE_SHARE": 0.0},
}


@contextmanager
def patched(variant: Variant) -> Iterator[dict[str, Any]]:
    """Set module constants for the variant; yield the config overrides."""
    import importlib

    saved: list[tuple[Any, str, Any]] = []
    overrides: dict[str, Any] = {}
    weights: dict[str, float] = {}
    for key, value in variant.items():
        if key.startswith("weights."):
            weights[key.split(".", 1)[1]] = value
        elif key.startswith("config."):
            overrides[key.split(".", 1)[1]] = value
        else:
            module_name, attribute = key.rsplit(".", 1)
            module = importlib.import_module(module_name)
            saved.append((module, attribute, getattr(module, attribute)))
            setattr(module, attribute, value)
    if weights:
        overrides["weights"] = weights
    try:
        yield overrides
    finally:
        for module, attribute, value in reversed(saved):
            setattr(module, attribute, value)


def evaluate(checkout: Path, corpus: Any, query: str, gold: rt.Gold, budgets: list[int],
             variant: Variant) -> dict[int, dict[str, Any]]:
    results = {}
    with patched(variant) as overrides:
        config = load_config(checkout, overrides)
        started = time.perf_counter()
        ranked = rank(corpus, config, query=query)
        rank_seconds = time.perf_counter() - started
        # How deep the ranking must go to hold every gold line: chars of the chunks up to the last gold one.
        needed = {(path, line) for path, lines in gold.lines.items() for line in lines}
        depth_chars = 0
        for item in ranked:
            if not needed:
                break
            c = item.chunk
            depth_chars += len(c.text)
            needed -= {(p, ln) for p, ln in needed if p == c.path and c.start_line <= ln <= c.end_line}
        for budget in budgets:
            pack = pack_corpus(corpus, ranked, budget, config, fmt="md", query=query)
            metrics = rt.pack_metrics(gold, pack.chunks)
            results[budget] = {"file_all": metrics.file_all, "line_all": metrics.line_all,
                               "line_recall": metrics.line_recall, "rank_seconds": rank_seconds,
                               "gold_depth_tokens": depth_chars // 4 if not needed else None}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rt.add_subset_arguments(parser, n=60)
    parser.add_argument("--variants", default="baseline")
    parser.add_argument("--budgets", default="8000,16000,32000")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()

    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s): {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    budgets = [int(b) for b in args.budgets.split(",")]
    chosen = rt.chosen_instances(args)
    commit = rt.default_tag()
    out_path = args.workdir / "ablate" / f"{args.split}.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done: dict[tuple[str, str, str], dict[str, Any]] = {}
    if out_path.exists() and not args.force:
        for line in out_path.read_text().splitlines():
            row = json.loads(line)
            done[(row["commit"], row["variant"], row["instance_id"])] = row
    def finished(inst: rt.Instance) -> bool:
        return all((commit, v, inst.instance_id) in done for v in names)

    with out_path.open("a", encoding="utf-8") as out:
        for inst, checkout, gold in rt.checked_out(args, chosen, skip=finished):
            todo = [v for v in names if (commit, v, inst.instance_id) not in done]
            started = time.perf_counter()
            corpus = collect(checkout, load_config(checkout))
            collect_seconds = time.perf_counter() - started
            for name in todo:
                results = evaluate(checkout, corpus, inst.problem_statement, gold, budgets, VARIANTS[name])
                row = {"commit": commit, "variant": name, "instance_id": inst.instance_id, "repo": inst.source_repo,
                       "language": inst.language, "collect_seconds": collect_seconds,
                       "results": {str(b): r for b, r in results.items()}}
                done[(commit, name, inst.instance_id)] = row
                out.write(json.dumps(row) + "\n")
                out.flush()
            corpus.close()
            summary = " ".join(
                f"{n}:" + "".join("1" if done[(commit, n, inst.instance_id)]["results"][str(b)]["line_all"]
                                  else "0" for b in budgets) for n in names)
            print(f"{inst.instance_id} ({collect_seconds:.1f}s) {summary}", file=sys.stderr, flush=True)

    ids = {i.instance_id for i in chosen}
    print(f"\n{len(ids)} instances, commit {commit}; line_all / file_all / line_recall per budget\n")
    print("| variant | " + " | ".join(str(b) for b in budgets) + " |")
    print("| --- | " + " | ".join("---" for _ in budgets) + " |")
    for name in names:
        rows = [done[k] for k in done if k[0] == commit and k[1] == name and k[2] in ids]
        cells = []
        for b in budgets:
            values = [r["results"][str(b)] for r in rows]
            if not values:
                cells.append("-")
                continue
            line_all = 100 * sum(v["line_all"] for v in values) / len(values)
            file_all = 100 * sum(v["file_all"] for v in values) / len(values)
            recall = 100 * sum(v["line_recall"] for v in values) / len(values)
            cells.append(f"{line_all:.1f} / {file_all:.1f} / {recall:.1f}")
        print(f"| {name} ({len(rows)}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Where do the gold chunks of one instance rank, and why? For reading failures of the ranking.

    python bench/diagnose.py django__django-14725 [--split python] [--top 15]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import retrieval as rt

from context_pack.config import load_config
from context_pack.pipeline import collect, rank


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("instance")
    parser.add_argument("--split", default="python")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    inst = next(i for i in rt.load_instances(rt.DEFAULT_DATA, args.split) if i.instance_id == args.instance)
    mirrors, _ = rt.locate_mirrors(rt.DEFAULT_MIRRORS, [inst])
    checkout = rt.checkout_dir(rt.DEFAULT_WORKDIR, inst.repo)
    rt.prepare_checkout(mirrors[inst.source_repo], checkout, inst.base_commit)
    gold = rt.parse_gold(inst.patch, inst.extensions)
    rt.check_gold_at_base(checkout, gold)
    config = load_config(checkout)
    corpus = collect(checkout, config)
    ranked = rank(corpus, config, query=inst.problem_statement)
    print(inst.problem_statement[:600].replace("\n", " "), "\n")
    tokens = 0
    for position, item in enumerate(ranked, 1):
        c = item.chunk
        hit = c.path in gold.lines and any(c.start_line <= ln <= c.end_line for ln in gold.lines[c.path])
        tokens += len(c.text) // 4
        if position <= args.top or hit:
            feats = " ".join(f"{k[:4]}={v:.2f}" for k, v in item.features.items() if v)
            mark = "GOLD" if hit else "    "
            print(f"{mark} #{position:<6} ~{tokens:>7} tok {item.score:.3f} {c.path}:{c.start_line}-{c.end_line} "
                  f"{c.kind} {c.name} [{feats}]")


if __name__ == "__main__":
    main()

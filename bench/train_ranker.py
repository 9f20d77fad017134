"""Fit the query ranking's weights on the dev splits: dump every chunk's query features and gold label per
instance, then fit a logistic model and judge it by packing, cross-validated by repository.

    python bench/train_ranker.py dump --split python --n 150      # features to WORKDIR/ranker/<split>/
    python bench/train_ranker.py dump --split multi
    python bench/train_ranker.py fit --splits python,multi        # CV table; the weights to paste

`fit` scores a model the way the benchmark does: each held-out instance's chunks are ordered by the model
and packed greedily (full when a chunk fits and is at most half the budget, else its signature), with
sizes estimated from characters; `line_all` is the share of instances whose gold chunks all went in full.
A repository is never in its own training fold. Needs scikit-learn (a benchmark-only dependency).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import retrieval as rt

from context_pack.signals.query import (
    CHARS_PER_TOKEN,  # the size estimate the shipped penalty uses
    pulled_by_neighbours,
)
from context_pack.signals.query import TOKEN_OVERHEAD as CHUNK_OVERHEAD

FILE_OVERHEAD = 20
BUDGETS = (8000, 16000, 32000)


# ------------------------------------------------------------------------------------------------ dump

def dump_instance(checkout: Path, inst: rt.Instance, gold: rt.Gold, out: Path) -> None:
    from context_pack.config import load_config
    from context_pack.pipeline import collect
    from context_pack.signals import query as query_signal
    from context_pack.signals import recency
    from context_pack.signals.definitions import compute as definitions
    from context_pack.signals.query_features import compute_features, title_of

    config = load_config(checkout)
    corpus = collect(checkout, config)
    try:
        chunks = corpus.chunks
        graph = corpus.graph
        query = inst.problem_statement
        bm25 = corpus.bm25(query)
        match = query_signal.direct_match(chunks, graph, query, bm25)
        current = query_signal.compute(chunks, graph, query, bm25)
        sizes = corpus.chunk_sizes()
        priors = {"centrality": corpus.centrality(), "recency": np.asarray(recency.compute(chunks, corpus.history)),
                  "definitions": np.asarray(definitions(list(chunks)))}
        matrix = compute_features(chunks, graph, match.bm25, match.ident, match.path, match.trace, match.direct,
                                  match.mentions.identifiers, sizes, priors, corpus.bm25(title_of(query)), query,
                                  commits=corpus.history.commits)
        # The second pass's columns, from the shipped first pass (as query.learned_relevance makes them).
        expansion = query_signal.expansion_from_first_pass(
            chunks, graph, matrix, sizes, query_signal.start_lines(chunks), corpus.bm25_terms)
        matrix = np.column_stack([matrix, expansion])
        label = np.zeros(len(chunks), dtype=bool)
        for i, chunk in enumerate(chunks):
            lines = gold.lines.get(chunk.path)
            if lines and any(chunk.start_line <= ln <= chunk.end_line for ln in lines):
                label[i] = True
        signature = np.fromiter((len(c.signature) for c in chunks), dtype=np.int32, count=len(chunks))
        baseline = config.weights
        prior_score = (baseline.get("centrality", 0) * priors["centrality"]
                       + baseline.get("recency", 0) * priors["recency"]
                       + baseline.get("definitions", 0) * priors["definitions"]
                       + baseline.get("tests", 0) * np.fromiter((c.is_test for c in chunks), dtype=np.float64,
                                                                count=len(chunks)))
        partial = out.with_name(out.stem + ".partial.npz")  # renamed when whole: a run may stop anywhere
        np.savez_compressed(partial, X=matrix.astype(np.float32), y=label, sizes=np.asarray(sizes, dtype=np.int32),
                            signature=signature, file_of_chunk=graph.file_of_chunk.astype(np.int32),
                            current=(baseline.get("query", 3.0) * current + prior_score).astype(np.float32),
                            paths=np.array([c.path for c in chunks]), starts=np.array([c.start_line for c in chunks],
                                                                                        dtype=np.int32))
        partial.replace(out)
    finally:
        corpus.close()


def dump(args: argparse.Namespace) -> None:
    out_dir = args.workdir / "ranker" / args.split
    out_dir.mkdir(parents=True, exist_ok=True)

    def target(inst: rt.Instance) -> Path:
        return out_dir / f"{inst.instance_id}.npz"

    for inst, checkout, gold in rt.checked_out(args, rt.chosen_instances(args),
                                                skip=lambda i: target(i).exists() and not args.force):
        started = time.perf_counter()
        dump_instance(checkout, inst, gold, target(inst))
        meta = {"instance_id": inst.instance_id, "repo": inst.source_repo, "language": inst.language,
                "gold": {p: sorted(v) for p, v in gold.lines.items()}}
        target(inst).with_suffix(".json").write_text(json.dumps(meta))
        print(f"{inst.instance_id} {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------- fit

class Instance:
    def __init__(self, npz: Path) -> None:
        data = np.load(npz)
        meta = json.loads(npz.with_suffix(".json").read_text())
        self.id: str = meta["instance_id"]
        self.repo: str = meta["repo"]
        self.language: str = meta["language"]
        self.X = data["X"].astype(np.float64)
        self.y = data["y"]
        self.tokens = data["sizes"] / CHARS_PER_TOKEN + CHUNK_OVERHEAD
        self.signature_tokens = np.where(data["signature"] > 0, data["signature"] / CHARS_PER_TOKEN + 8, np.inf)
        self.file = data["file_of_chunk"]
        self.starts = data["starts"]
        self.current = data["current"].astype(np.float64)
        self.gold_files = set(meta["gold"])
        paths = data["paths"]
        self.gold_file_chunks = {p: np.flatnonzero(paths == p) for p in self.gold_files}


def pack_hits(inst: Instance, scores: np.ndarray, budget: int) -> tuple[bool, bool]:
    """(line_all, file_all) of a greedy pack in score order."""
    order = np.argsort(-scores, kind="stable")
    room = float(budget - 60)
    cap = budget * 0.5
    full = np.zeros(len(scores), dtype=bool)
    shown = np.zeros(len(scores), dtype=bool)
    opened: set[int] = set()
    gold = set(np.flatnonzero(inst.y).tolist())
    for i in order[:20000]:
        if room < 12 or (not gold and room < 12):
            break
        overhead = 0 if inst.file[i] in opened else FILE_OVERHEAD
        cost = inst.tokens[i]
        if cost <= cap and cost + overhead <= room:
            full[i] = shown[i] = True
        elif inst.signature_tokens[i] + overhead <= room:
            shown[i] = True
            cost = inst.signature_tokens[i]
        else:
            continue
        room -= cost + overhead
        opened.add(int(inst.file[i]))
    line_all = bool(full[inst.y].all())
    file_all = all(shown[idx].any() for idx in inst.gold_file_chunks.values())
    return line_all, file_all


def rank_in_file(scores: np.ndarray, file_of_chunk: np.ndarray) -> np.ndarray:
    """Each chunk's place among its file's chunks by score (0 = the file's best)."""
    order = np.lexsort((-scores, file_of_chunk))
    sorted_files = file_of_chunk[order]
    starts = np.flatnonzero(np.r_[True, sorted_files[1:] != sorted_files[:-1]])
    lengths = np.diff(np.r_[starts, len(order)])
    within = np.arange(len(order)) - np.repeat(starts, lengths)
    out = np.empty(len(order), dtype=np.int64)
    out[order] = within
    return out


def diversified(scores: np.ndarray, file_of_chunk: np.ndarray, delta: float) -> np.ndarray:
    """Scores less delta × log(1 + each chunk's rank within its file): later chunks of a file wait."""
    return scores - delta * np.log1p(rank_in_file(scores, file_of_chunk))


def evaluate(instances: list[Instance], scorer: Any) -> dict[int, tuple[float, float]]:
    results: dict[int, list[tuple[bool, bool]]] = {b: [] for b in BUDGETS}
    for inst in instances:
        scores = scorer(inst)
        for b in BUDGETS:
            results[b].append(pack_hits(inst, scores, b))
    return {b: (100 * np.mean([r[0] for r in v]), 100 * np.mean([r[1] for r in v])) for b, v in results.items()}


def training_rows(instances: list[Instance], negatives: int, rng: np.random.Generator,
                  mined: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All gold chunks, the hardest negatives (ranked high by the current ranking, and by a first model
    when `mined` gives its top chunks per instance) and random ones; each instance weighs the same in total."""
    xs, ys, ws = [], [], []
    for inst in instances:
        positive = np.flatnonzero(inst.y)
        if positive.size == 0:
            continue
        hard = np.argsort(-inst.current, kind="stable")[:negatives]
        if mined is not None:
            hard = np.union1d(hard, mined[inst.id])
        rand = rng.choice(len(inst.y), size=min(negatives, len(inst.y)), replace=False)
        negative = np.setdiff1d(np.union1d(hard, rand), positive)
        rows = np.concatenate([positive, negative])
        xs.append(inst.X[rows])
        ys.append(inst.y[rows])
        weight = np.concatenate([np.full(positive.size, 1.0 / positive.size),
                                 np.full(negative.size, 1.0 / max(1, negative.size))])
        ws.append(weight)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def fit_model(instances: list[Instance], features: list[int], c: float, negatives: int, kind: str = "logistic",
              mine: int = 0) -> Any:
    """`mine` > 0: fit once, then again with each instance's `mine` top chunks by that first model added to
    the hard negatives (the packer decides at the top of the ranking, so the model should learn there)."""
    if mine > 0:
        first = fit_model(instances, features, c, negatives, kind)
        mined = {inst.id: np.argsort(-first.decision_function(inst.X[:, features]), kind="stable")[:mine]
                 for inst in instances}
        X, y, w = training_rows(instances, negatives, np.random.default_rng(0), mined)
    else:
        X, y, w = training_rows(instances, negatives, np.random.default_rng(0))
    if kind == "trees":  # an upper bound on what interactions between the features could add
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                               l2_regularization=c, random_state=0)
        model.fit(X[:, features], y, sample_weight=w * len(instances))
        model.decision_function = lambda Z: model.predict_proba(Z)[:, 1]  # type: ignore[method-assign]
        return model
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(X[:, features], y, sample_weight=w * len(instances))
    return model


def file_aggregates(inst: Instance, logit: np.ndarray) -> np.ndarray:
    """Stage-two columns: the file's best first-pass probability, the file's rank by it, the chunk's share."""
    p = 1.0 / (1.0 + np.exp(-logit))
    files = int(inst.file.max()) + 1 if inst.file.size else 0
    best = np.zeros(files)
    np.maximum.at(best, inst.file, p)
    total = np.zeros(files)
    np.add.at(total, inst.file, p)
    order = np.argsort(-best, kind="stable")
    rank = np.zeros(files)
    rank[order] = 1.0 / (1.0 + np.arange(files))
    top = p.max() if p.size else 1.0
    return np.column_stack([best[inst.file] / top, rank[inst.file], total[inst.file] / max(total.max(), 1e-9),
                            p / np.maximum(best[inst.file], 1e-9), p / top])


def second_pass(instances: list[Instance], logits: dict[str, np.ndarray], repos: list[str], c: float,
                negatives: int) -> dict[str, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    stacked = {inst.id: np.column_stack([inst.X, file_aggregates(inst, logits[inst.id])]) for inst in instances}
    out = {}
    for repo in repos:
        xs, ys, ws = [], [], []
        for inst in instances:
            if inst.repo == repo or not inst.y.any():
                continue
            positive = np.flatnonzero(inst.y)
            hard = np.argsort(-logits[inst.id], kind="stable")[:negatives]
            negative = np.setdiff1d(hard, positive)
            rows = np.concatenate([positive, negative])
            xs.append(stacked[inst.id][rows])
            ys.append(inst.y[rows])
            ws.append(np.concatenate([np.full(positive.size, 1.0 / positive.size),
                                      np.full(negative.size, 1.0 / max(1, negative.size))]))
        model = LogisticRegression(C=c, max_iter=3000)
        model.fit(np.concatenate(xs), np.concatenate(ys), sample_weight=np.concatenate(ws) * len(xs))
        for inst in instances:
            if inst.repo == repo:
                out[inst.id] = model.decision_function(stacked[inst.id])
    return out


def shipped_score(logit: np.ndarray, inst: Instance, prior_weights: dict[str, float]) -> np.ndarray:
    """The score rank() makes: weights.query × the model's probability, plus the weighted priors."""
    from context_pack.signals.query_features import FEATURES

    column = {name: j for j, name in enumerate(FEATURES)}
    score = prior_weights["query"] / (1.0 + np.exp(-logit))
    for name in ("centrality", "recency", "definitions", "tests"):
        values = inst.X[:, column["is_test" if name == "tests" else name]]
        score = score + prior_weights[name] * values
    return score


def fit(args: argparse.Namespace) -> None:
    from context_pack.config import DEFAULT_WEIGHTS
    from context_pack.signals.query_features import EXPANSION_FEATURES
    from context_pack.signals.query_features import FEATURES as FIRST_PASS

    FEATURES = FIRST_PASS + EXPANSION_FEATURES  # the dump's columns; --drop expansion,expansion_rank: the first pass

    instances: list[Instance] = []
    for split in args.splits.split(","):
        for npz in sorted((args.workdir / "ranker" / split).glob("*.npz")):
            if npz.name.endswith(".partial.npz") or not npz.with_suffix(".json").exists():
                continue
            instance = Instance(npz)
            if instance.X.shape[1] == len(FEATURES):  # else dumped before a feature was added: dump again
                instances.append(instance)
    repos = sorted({i.repo for i in instances})
    print(f"{len(instances)} instances, {len(repos)} repositories")
    dropped = set(args.drop.split(",")) if args.drop else set()
    features = [j for j, name in enumerate(FEATURES) if name not in dropped]
    groups = {"all": instances}
    if args.by_language:
        for language in sorted({i.language for i in instances}):
            groups[language] = [i for i in instances if i.language == language]
    print("| model | group (n) | " + " | ".join(f"{b} line_all / file_all" for b in BUDGETS) + " |")
    print("| --- | --- | --- | --- | --- |")

    def row(name: str, scorer: Any) -> None:
        for group, members in groups.items():
            table = evaluate(members, scorer)
            print(f"| {name} | {group} ({len(members)}) | "
                  + " | ".join(f"{table[b][0]:.1f} / {table[b][1]:.1f}" for b in BUDGETS) + " |", flush=True)

    if not args.no_cv:
        row("current ranking", lambda inst: inst.current)
    for c in [] if args.no_cv else [float(v) for v in args.c.split(",")]:
        models = {repo: fit_model([i for i in instances if i.repo != repo], features, c, args.negatives, args.model,
                                  args.mine) for repo in repos}
        logits = {inst.id: models[inst.repo].decision_function(inst.X[:, features]) for inst in instances}
        row(f"{args.model} C={c}, CV by repo", lambda inst, logits=logits: logits[inst.id])
        row("  as shipped (× query weight + priors)",
            lambda inst, logits=logits: shipped_score(logits[inst.id], inst, DEFAULT_WEIGHTS))
        if args.second_pass:
            second = second_pass(instances, logits, repos, c, args.negatives)
            row("  second pass (file aggregates of the first)", lambda inst, second=second: second[inst.id])
            for gamma in [float(v) for v in args.gamma.split(",")] if args.gamma else []:
                row(f"  second pass − {gamma} × log tokens", lambda inst, second=second, gamma=gamma:
                    second[inst.id] - gamma * np.log(inst.tokens))
        for gamma in [float(v) for v in args.gamma.split(",")] if args.gamma else []:
            row(f"  − {gamma} × log tokens", lambda inst, logits=logits, gamma=gamma:
                logits[inst.id] - gamma * np.log(inst.tokens))
            for pull in [float(v) for v in args.pull.split(",")] if args.pull else []:
                row(f"    pulled {pull} towards the better neighbour",
                    lambda inst, logits=logits, gamma=gamma, pull=pull: pulled_by_neighbours(
                        logits[inst.id] - gamma * np.log(inst.tokens), inst.file, inst.starts, pull))
            for delta in [float(v) for v in args.diversity.split(",")] if args.diversity else []:
                row(f"    − {delta} × log(1 + rank in file)", lambda inst, logits=logits, gamma=gamma, delta=delta:
                    diversified(logits[inst.id] - gamma * np.log(inst.tokens), inst.file, delta))
    final = fit_model(instances, features, float(args.c.split(",")[-1]), args.negatives, mine=args.mine)
    stage = "FIRST_PASS" if dropped >= set(EXPANSION_FEATURES) else "LEARNED"
    print("\nweights fitted on all instances (paste into context_pack/signals/query.py):")
    print(f"{stage}_INTERCEPT = {final.intercept_[0]:.4f}")
    print(f"{stage}_WEIGHTS: dict[str, float] = {{")
    weights = dict(zip([FEATURES[j] for j in features], final.coef_[0], strict=True))
    for name in FIRST_PASS if stage == "FIRST_PASS" else FEATURES:
        print(f'    "{name}": {weights.get(name, 0.0):.4f},')
    print("}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    rt.add_subset_arguments(d)
    d.add_argument("--force", action="store_true")
    f = sub.add_parser("fit")
    f.add_argument("--splits", default="python")
    f.add_argument("--c", default="1.0")
    f.add_argument("--negatives", type=int, default=2000)
    f.add_argument("--mine", type=int, default=0, help="refit with each instance's top N chunks by a first "
                   "model as extra hard negatives")
    f.add_argument("--drop", help="comma-separated feature names to leave out")
    f.add_argument("--by-language", action="store_true")
    f.add_argument("--model", choices=("logistic", "trees"), default="logistic")
    f.add_argument("--no-cv", action="store_true", help="only fit on everything and print the weights")
    f.add_argument("--second-pass", action="store_true", help="also a second pass on the first's file scores")
    f.add_argument("--gamma", help="also score logit − gamma × log(tokens), for these comma-separated gammas")
    f.add_argument("--pull", help="with each --gamma, also pulled this share towards the better neighbour "
                   "chunk (comma-separated; the shipped NEIGHBOUR_PULL)")
    f.add_argument("--diversity", help="with each --gamma, also − delta × log(1 + the chunk's rank in its file)")
    f.add_argument("--workdir", type=Path, default=rt.DEFAULT_WORKDIR)
    args = parser.parse_args()
    dump(args) if args.command == "dump" else fit(args)


if __name__ == "__main__":
    main()

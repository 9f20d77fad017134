"""Ranking signals on fixture repos made for each point: recency, centrality, imports, query, focus."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from scipy import sparse

import context_pack
from conftest import git, init_repo
from context_pack.config import load_config
from context_pack.pipeline import collect, rank
from context_pack.signals import query as query_signal
from context_pack.signals import query_features
from context_pack.signals.columns import ChunkColumns
from context_pack.signals.csr import CSR
from context_pack.signals.graph import pagerank
from context_pack.signals.query import find_mentions
from context_pack.terms import CAMEL_FIND_RE, camel_words, query_terms, tokenize


def ranked_names(root: Path, **kwargs) -> list[tuple[str, str, dict[str, float]]]:
    config = load_config(root)
    corpus = collect(root, config)
    return [(s.chunk.path, s.chunk.name, s.features) for s in rank(corpus, config, **kwargs)]


def test_pagerank_matches_networkx() -> None:
    graph = nx.gnp_random_graph(60, 0.08, seed=3, directed=True)
    for u, v in graph.edges:
        graph[u][v]["weight"] = 1.0 + (u * 7 + v) % 5
    reference = sparse.coo_matrix(nx.to_scipy_sparse_array(graph, nodelist=range(60), weight="weight"))
    matrix = CSR.from_triples(reference.row, reference.col, reference.data, (60, 60))
    expected = nx.pagerank(graph, weight="weight", tol=1e-10)
    ours = pagerank(matrix, tol=1e-10)
    assert np.allclose(ours, [expected[i] for i in range(60)], atol=1e-6)
    seeds = np.zeros(60)
    seeds[[1, 5]] = 1.0
    expected = nx.pagerank(graph, weight="weight", personalization={1: 1, 5: 1}, tol=1e-10)
    assert np.allclose(pagerank(matrix, seeds, tol=1e-10), [expected[i] for i in range(60)], atol=1e-6)
    undirected = nx.DiGraph()
    undirected.add_nodes_from(range(60))
    for u, v, weight in graph.edges(data="weight"):
        for a, b in ((u, v), (v, u)):
            undirected.add_edge(a, b, weight=undirected.get_edge_data(a, b, {"weight": 0.0})["weight"] + weight)
    expected = nx.pagerank(undirected, weight="weight", personalization={1: 1, 5: 1}, tol=1e-10)
    ours = pagerank(matrix, seeds, tol=1e-10, both_ways=True)
    assert np.allclose(ours, [expected[i] for i in range(60)], atol=1e-6)
    assert not np.allclose(ours, pagerank(matrix, seeds, tol=1e-10), atol=1e-6)


def test_csr_matrices_equal_scipy_sparse() -> None:
    """signals/csr.py stands in for scipy.sparse (too slow to import per build): the same arrays for the
    same operations, with repeated cells summed and columns in order."""
    from context_pack.signals.csr import vstack

    rng = np.random.default_rng(11)

    def same(mine: CSR, theirs: sparse.csr_matrix) -> None:
        theirs = theirs.tocsr()
        theirs.sum_duplicates()
        theirs.sort_indices()
        assert mine.shape == theirs.shape
        assert mine.indptr.tolist() == theirs.indptr.tolist()
        assert mine.indices.tolist() == theirs.indices.tolist()
        assert np.allclose(mine.data, theirs.data, rtol=1e-15, atol=0)
        assert np.array_equal(mine.toarray(), theirs.toarray())

    for rows, cols in ((7, 7), (5, 9), (1, 1), (3, 0), (0, 4)):
        count = int(rng.integers(0, 40)) if rows and cols else 0
        r, c = rng.integers(0, max(rows, 1), count), rng.integers(0, max(cols, 1), count)
        w = rng.random(count) + 0.5
        mine = CSR.from_triples(r, c, w, (rows, cols))
        theirs = sparse.csr_matrix((w, (r, c)), shape=(rows, cols))
        same(mine, theirs)
        same(mine.transposed(), theirs.T)
        assert np.allclose(mine.row_sums(), np.asarray(theirs.sum(axis=1)).ravel())
        other = CSR.from_triples(c[::-1] % max(rows, 1), r[::-1] % max(cols, 1), w, (rows, cols)) if count else mine
        same(mine.plus(other), theirs + sparse.csr_matrix(other.toarray()))
        same(vstack([mine, other, mine]), sparse.vstack([theirs, sparse.csr_matrix(other.toarray()), theirs]))
        again = CSR.checked(mine.data, mine.indices, mine.indptr, mine.shape)
        assert again.indptr.tolist() == mine.indptr.tolist() and again.indices.tolist() == mine.indices.tolist()
    summed = CSR.from_triples([0, 0, 0, 0], [1, 1, 0, 1], [0.1, 0.2, 4.0, 0.3], (1, 2))
    assert summed.indices.tolist() == [0, 1] and np.allclose(summed.data, [4.0, 0.6], rtol=1e-15)
    with pytest.raises(ValueError):
        CSR.from_triples([0, 2], [0, 0], [1.0, 1.0], (2, 2))  # row 2 of a 2-row matrix
    good = CSR.from_triples([0, 1], [1, 0], [1.0, 2.0], (2, 2))
    for damaged in ((good.data, good.indices, good.indptr[:-1], good.shape),  # an offset short
                    (good.data, good.indices + 1, good.indptr, good.shape),  # a column outside
                    (good.data, good.indices, good.indptr[::-1], good.shape),  # offsets going back
                    (good.data[:1], good.indices, good.indptr, good.shape)):
        with pytest.raises(ValueError):
            CSR.checked(*damaged)


def test_recently_changed_file_outranks_an_old_one(tmp_path: Path) -> None:
    body = "def {name}(value):\n    return value + 1\n"
    repo = init_repo(tmp_path / "r", {"old.py": body.format(name="old"), "new.py": body.format(name="new")})
    git(repo, "rm", "-q", "--cached", "new.py")
    git(repo, "commit", "-q", "-m", "drop")
    (repo / "filler.py").write_text("X = 1\n")
    git(repo, "add", "new.py", "filler.py")
    git(repo, "commit", "-q", "-m", "new later", date="2024-09-01T00:00:00+00:00")
    features = {name: feats for _, name, feats in ranked_names(repo)}
    assert features["new"]["recency"] > features["old"]["recency"]
    order = [name for _, name, _ in ranked_names(repo)]
    assert order.index("new") < order.index("old")
    (repo / "old.py").write_text(body.format(name="old") + "# edited\n")  # a modified file is the newest
    features = {name: feats for _, name, feats in ranked_names(repo)}
    assert features["old"]["recency"] == 1.0


def test_recency_is_neutral_outside_git(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def a():\n    pass\n")
    assert all(feats["recency"] == 0.0 for _, _, feats in ranked_names(tmp_path))


def test_module_imported_by_many_ranks_above_a_leaf(tmp_path: Path) -> None:
    files = {"core.py": "def shared_helper(x):\n    return x * 2\n",
             "leaf.py": "def lonely_leaf(x):\n    return x * 3\n"}
    for i in range(6):
        files[f"user{i}.py"] = f"import core\n\n\ndef use{i}():\n    return core.shared_helper({i})\n"
    repo = init_repo(tmp_path / "r", files)
    features = {name: feats for _, name, feats in ranked_names(repo)}
    assert features["shared_helper"]["centrality"] > features["lonely_leaf"]["centrality"]
    order = [name for _, name, _ in ranked_names(repo)]
    assert order.index("shared_helper") < order.index("lonely_leaf")


IMPORT_CASES = {
    "python": ({"pkg/__init__.py": "VERSION = 1\n", "pkg/a.py": "from . import b\nfrom .c import thing\nimport pkg.d\n",
                "pkg/b.py": "X = 1\n", "pkg/c.py": "thing = 1\n", "pkg/d.py": "Y = 1\n",
                "main.py": "from pkg import a\nimport os\n"},
               {"pkg/a.py": {"pkg/b.py", "pkg/c.py", "pkg/d.py", "pkg/__init__.py"},
                "main.py": {"pkg/a.py", "pkg/__init__.py"}}),
    "javascript": ({"src/a.js": "import b from './b';\nconst c = require('../lib/c');\nimport x from 'react';\n",
                    "src/b.js": "export default 1;\n", "lib/c/index.js": "module.exports = 2;\n"},
                   {"src/a.js": {"src/b.js", "lib/c/index.js"}}),
    "typescript": ({"tsconfig.json": '{"compilerOptions": {"baseUrl": ".", // aliases\n "paths": {"@app/*": ["src/*"]},}}',
                    "src/a.ts": "import { b } from '@app/b';\nimport type { C } from './c';\n",
                    "src/b.ts": "export const b = 1;\n", "src/c.tsx": "export type C = number;\n"},
                   {"src/a.ts": {"src/b.ts", "src/c.tsx"}}),
    "go": ({"go.mod": "module example.com/app\n\ngo 1.21\n",
            "main.go": 'package main\n\nimport (\n\t"fmt"\n\t"example.com/app/store"\n)\n\nfunc main() { fmt.Println(store.Get()) }\n',
            "store/store.go": "package store\n\nfunc Get() int { return 1 }\n",
            "store/store_test.go": "package store\n"},
           {"main.go": {"store/store.go"}}),
    "rust": ({"src/lib.rs": "mod util;\npub mod net;\nuse crate::net::client::Client;\n",
              "src/util.rs": "pub fn u() {}\n", "src/net/mod.rs": "pub mod client;\n",
              "src/net/client.rs": "use super::super::util;\npub struct Client;\n"},
             {"src/lib.rs": {"src/util.rs", "src/net/mod.rs", "src/net/client.rs"},
              "src/net/mod.rs": {"src/net/client.rs"}, "src/net/client.rs": {"src/util.rs"}}),
    "java": ({"src/main/java/com/acme/App.java": "package com.acme;\nimport com.acme.util.Strings;\nimport java.util.List;\nclass App {}\n",
              "src/main/java/com/acme/util/Strings.java": "package com.acme.util;\npublic class Strings {}\n"},
             {"src/main/java/com/acme/App.java": {"src/main/java/com/acme/util/Strings.java"}}),
    "c": ({"src/main.c": '#include "util.h"\n#include "core/core.h"\n#include <stdio.h>\nint main(void) { return 0; }\n',
           "src/util.h": "int util(void);\n", "include/core/core.h": "int core(void);\n"},
          {"src/main.c": {"src/util.h", "include/core/core.h"}}),
    "cpp": ({"src/app.cpp": '#include "fmt/format.h"\n#include "app.hpp"\nint main() { return 0; }\n',
             "include/fmt/format.h": "namespace fmt {}\n", "src/app.hpp": "class App {};\n"},
            {"src/app.cpp": {"include/fmt/format.h", "src/app.hpp"}}),
    "ruby": ({"lib/app.rb": "require_relative 'app/version'\nrequire 'json'\nrequire 'app/helpers'\n",
              "lib/app/version.rb": "VERSION = '1'\n", "lib/app/helpers.rb": "module Helpers; end\n"},
             {"lib/app.rb": {"lib/app/version.rb", "lib/app/helpers.rb"}}),
    "csharp": ({"App/Program.cs": "using Acme.Models;\nusing System;\nnamespace Acme.App { class Program {} }\n",
                "Models/User.cs": "namespace Acme.Models { public class User {} }\n"},
               {"App/Program.cs": {"Models/User.cs"}}),
    "php": ({"src/Controller.php": "<?php\nnamespace App;\nuse App\\Models\\User;\nrequire_once 'helpers.php';\n",
             "src/Models/User.php": "<?php\nnamespace App\\Models;\nclass User {}\n", "src/helpers.php": "<?php\n"},
            {"src/Controller.php": {"src/Models/User.php", "src/helpers.php"}}),
    "bash": ({"bin/run.sh": "#!/bin/bash\nsource ./lib.sh\n. ../conf/env.sh\n", "bin/lib.sh": "x=1\n",
              "conf/env.sh": "y=2\n"},
             {"bin/run.sh": {"bin/lib.sh", "conf/env.sh"}}),
}


@pytest.mark.parametrize("language", sorted(IMPORT_CASES))
def test_import_resolution(language: str, tmp_path: Path) -> None:
    files, expected = IMPORT_CASES[language]
    repo = init_repo(tmp_path / language, files)
    corpus = collect(repo, load_config(repo))
    edges = corpus.graph.file_imports
    for source, targets in expected.items():
        assert edges.get(source, set()) == targets, (source, edges.get(source))


def test_query_naming_an_identifier_puts_its_definition_first(example_repo: Path) -> None:
    cases = {"Why does `bulk_discount` round down?": "bulk_discount",
             "Stock.remove raises for back-orders": "Stock",
             "the display_price method shows too many digits": "Item"}
    for query, expected in cases.items():
        _, top_name, feats = ranked_names(example_repo, query=query)[0]
        assert top_name == expected, (query, top_name)
        assert feats["query"] > 0.5


def test_traceback_location_puts_that_function_in_the_pack(stdlib_part: Path) -> None:
    target = stdlib_part / "textwrap.py"
    lines = target.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip().startswith("def _split_chunks"))
    query = ("Traceback (most recent call last):\n"
             f'  File "/usr/lib/python3.11/textwrap.py", line {line + 2}, in _split_chunks\n'
             "ValueError: bad chunk\n")
    pack = context_pack.build(stdlib_part, budget=4000, query=query)
    names = {(p.chunk.path, p.chunk.name, p.mode) for p in pack.chunks}
    assert ("textwrap.py", "TextWrapper._split_chunks", "full") in names


def test_focus_pulls_in_imports_and_importers(tmp_path: Path) -> None:
    files = {"app/core.py": "from app import db\n\n\ndef handle(x):\n    return db.save(x)\n",
             "app/db.py": "def save(x):\n    return x\n",
             "app/api.py": "from app import core\n\n\ndef endpoint():\n    return core.handle(1)\n",
             "app/__init__.py": ""}
    for i in range(10):
        files[f"other/mod{i}.py"] = f"def unrelated_{i}(value):\n    return value * {i}\n"
    repo = init_repo(tmp_path / "r", files)
    ranked = ranked_names(repo, focus=["app/core.py"])
    top_paths = [path for path, _, _ in ranked[:5]]
    assert top_paths[0] == "app/core.py"
    assert "app/db.py" in top_paths and "app/api.py" in top_paths
    features = {name: feats for _, name, feats in ranked}
    assert features["handle"]["focus"] == 1.0
    assert features["save"]["focus"] > features["unrelated_3"]["focus"]
    pack = context_pack.build(repo, budget=120, focus=["app/core.py"])
    assert {p.chunk.path for p in pack.chunks} >= {"app/core.py"}


def test_tokenize_and_mentions() -> None:
    assert tokenize("getUserName snake_case HTTPServer") == [
        "user", "name", "getusername", "snake", "case", "http", "server", "httpserver"]
    mentions = find_mentions('See `QuerySet.filter()` in django/db/models/query.py:120 and parse_header(x)\n'
                             '  File "/srv/app/utils.py", line 7, in run')
    assert {"QuerySet.filter", "parse_header"} <= set(mentions.identifiers)
    assert ("django/db/models/query.py", 120) in mentions.locations
    assert ("/srv/app/utils.py", 7) in mentions.locations


def test_camel_words_finds_what_the_regex_finds() -> None:
    # The fast search for camelCase words must return exactly the regex's matches: word boundaries next to
    # underscores, digits and non-ASCII letters included.
    text = "getUserName foo_barBaz éfooBar HTTPServer x.fooBar(aB) _xY aB1C ABc 9aB ²fooBar fooBar²x ÄbcDef"
    assert camel_words(text) == CAMEL_FIND_RE.findall(text) == [
        "getUserName", "HTTPServer", "fooBar", "aB", "aB1C", "ABc", "9aB", "fooBar"]
    alphabet = "aAbB09_ .(\né²ÄßZz"
    generator = random.Random(7)
    for _ in range(3000):
        sample = "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 40)))
        assert camel_words(sample) == CAMEL_FIND_RE.findall(sample), sample


def test_query_terms_join_neighbouring_words() -> None:
    terms = query_terms("Model formsets should allow edit only mode")
    assert "modelformsets" in terms and "formsets" in terms
    assert "shouldallow" not in terms  # stop words do not pair


@pytest.mark.parametrize("learned", [True, False])
def test_partial_identifier_and_file_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, learned: bool) -> None:
    monkeypatch.setattr(query_signal, "USE_LEARNED", learned)
    files = {"code/reader.py": "def prepend_filter(lines):\n    return lines\n\n\n"
                               "def unrelated_reader_helper(path):\n    return open(path).read()\n",
             "code/other.py": "def something_else(x):\n    return x\n"}
    repo = init_repo(tmp_path / "r", files)
    features = {name: feats["query"] for _, name, feats in ranked_names(repo, query="`prepend` loses indentation")}
    assert features["prepend_filter"] == max(features.values())  # the partial match is the best direct match
    if not learned:
        assert features["prepend_filter"] == 1.0  # the hand-weighted mix is normalised to the best match
    assert 0 < features["unrelated_reader_helper"] < features["prepend_filter"]  # its file's share
    assert features["unrelated_reader_helper"] > features["something_else"]


def test_junk_mentions_are_ignored() -> None:
    mentions = find_mentions("prefix `_____` and ____ and `---`")
    assert not mentions.identifiers


def test_python_builtins_do_not_make_a_same_named_definition_central(tmp_path: Path) -> None:
    files = {"compat.py": "def str(value):\n    return repr(value)\n\n\ndef helper_used(value):\n    return value\n"}
    for i in range(6):
        files[f"user{i}.py"] = (f"from compat import helper_used\n\n\ndef use{i}(x):\n"
                                f"    return str(x) + str(helper_used(x))\n")
    repo = init_repo(tmp_path / "r", files)
    features = {name: feats for _, name, feats in ranked_names(repo)}
    assert features["helper_used"]["centrality"] > features["str"]["centrality"]


def test_query_features_of_classes_and_paths() -> None:
    from context_pack.model import Chunk
    from context_pack.signals.query_features import class_best, class_matches, path_words

    def chunk(path: str, name: str) -> Chunk:
        return Chunk(path=path, language="python", kind="method" if "." in name else "function", name=name,
                     start_line=1, end_line=1, text="")

    chunks = [chunk("a.py", "Rolling.__iter__"), chunk("a.py", "Rolling.mean"), chunk("b.py", "Rolling.mean"),
              chunk("a.py", "helper")]
    columns = ChunkColumns(chunks)
    assert class_matches(columns, {"xr.Rolling": 0.8}).tolist() == [0.8, 0.8, 0.8, 0.0]
    assert class_matches(columns, {"Other": 0.8}).tolist() == [0.0, 0.0, 0.0, 0.0]
    # the best of the same class in the same file; a class alone in its file, or no class, gets 0
    assert class_best(columns, np.array([0.1, 0.7, 0.9, 0.5])).tolist() == [0.7, 0.7, 0.0, 0.0]
    shares = path_words(["xarray/core/rolling.py", "xarray/core/dataset.py", "src/util.py"],
                        "DataArrayRolling ignores center when iterating rolling windows in xarray")
    assert shares.tolist() == [1.0, 0.5, 0.0]


def test_owners_and_classes_columns() -> None:
    """Owners number the short container names; classes the (file, container) groups of two or more. Each is
    made alone, when read, and kept as made."""
    from context_pack.model import Chunk

    names = [("a.py", "pkg.Rolling.mean"), ("a.py", "Rolling.sum"), ("a.py", "pkg.Rolling.max"),
             ("b.py", "Rolling.mean"), ("b.py", "helper"), ("b.py", "Frame.copy"), ("b.py", "Frame.view")]
    chunks = [Chunk(path=path, language="python", kind="method", name=name, start_line=1, end_line=1, text="")
              for path, name in names]
    for first in ("owners", "classes"):
        columns = ChunkColumns(chunks)
        getattr(columns, first)
        assert columns.made == [first]
        numbers, owner_names = columns.owners
        assert [owner_names[n] if n >= 0 else None for n in numbers] == [
            "Rolling", "Rolling", "Rolling", "Rolling", None, "Frame", "Frame"]
        groups = columns.classes.tolist()
        # a.py's pkg.Rolling pair is one class; a.py's bare Rolling and b.py's Rolling are alone in theirs
        assert groups[0] == groups[2] >= 0 and groups[5] == groups[6] >= 0 and groups[0] != groups[5]
        assert groups[1] == groups[3] == groups[4] == -1
        kept = ChunkColumns.from_bytes(chunks, columns.to_bytes())
        assert kept.classes.tolist() == groups and kept.owners[1] == owner_names and kept.made == []


def test_learned_ranking_puts_the_named_class_first(tmp_path: Path) -> None:
    files = {"lib/rolling.py": "class Rolling:\n    def __iter__(self):\n        yield from self.windows\n\n"
                               "    def mean(self):\n        return sum(self.windows)\n",
             "lib/frame.py": "class Frame:\n    def rolling(self, size):\n        return size\n\n"
                             "    def copy(self):\n        return Frame()\n",
             "docs/notes.md": "Rolling windows are iterated in order.\n"}
    repo = init_repo(tmp_path / "r", files)
    ranked = ranked_names(repo, query="`Rolling` iteration ignores the center argument")
    assert ranked[0][1] == "Rolling"
    values = {path: feats["query"] for path, _, feats in ranked}
    assert all(0.0 < v < 1.0 for v in values.values())  # probabilities
    assert values["lib/rolling.py"] > values["lib/frame.py"]


def test_neighbour_max_equals_the_sparse_formulation() -> None:
    from context_pack.signals.query_features import neighbour_max

    rng = np.random.default_rng(7)
    for n in (1, 5, 60):
        matrix = sparse.random(n, n, density=0.08, random_state=int(rng.integers(1000)), format="csr")
        values = rng.random(n) * (rng.random(n) > 0.3)
        links = (matrix + matrix.T).tocsr()
        links.data[:] = 1.0
        expected = np.asarray((links @ sparse.diags(values)).max(axis=1).todense()).ravel()
        assert np.array_equal(neighbour_max(matrix.indptr, matrix.indices, values), expected)


def test_history_records_what_changed_together_and_cochange_follows_it(tmp_path: Path) -> None:
    from context_pack.history import MAX_COCHANGE_FILES, read_history
    from context_pack.signals.query_features import cochange

    repo = init_repo(tmp_path / "r", {"a.py": "A = 1\n", "b.py": "B = 1\n", "c.py": "C = 1\n"})
    for number in range(3):  # a.py and b.py change together; c.py alone
        (repo / "a.py").write_text(f"A = {number + 2}\n")
        (repo / "b.py").write_text(f"B = {number + 2}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"a and b {number}")
    (repo / "c.py").write_text("C = 2\n")
    git(repo, "commit", "-q", "-am", "c alone")
    for number in range(MAX_COCHANGE_FILES + 1):  # a sweep over many files is left out
        (repo / f"gen_{number}.py").write_text("X = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sweep")
    history = read_history(repo)
    assert history.commits[0] == ("c.py",)  # newest first, the sweep left out
    assert [sorted(c) for c in history.commits[1:4]] == [["a.py", "b.py"]] * 3
    assert sorted(history.commits[4]) == ["a.py", "b.py", "c.py"]
    assert len(history.commits) == 5

    files = ["a.py", "b.py", "c.py", "d.py"]
    # a.py matches the query best: b.py went with it in 4 of its 4 commits, c.py in 1; d.py never
    values = cochange(files, np.array([0.9, 0.0, 0.0, 0.0]), history.commits)
    assert values.tolist() == [0.0, 4 / 5, 1 / 5, 0.0]
    # c.py is the best match (rank 0), a.py second: b.py's value is the larger of 1/3 (via c) and 4/5 / 2 (via a)
    values = cochange(files, np.array([0.5, 0.0, 0.9, 0.0]), history.commits)
    assert values[1] == pytest.approx(max(1 / 3, 4 / 5 / 2))
    assert values[0] == 0.0 and values[2] == 0.0  # the top files themselves
    assert not cochange(files, np.zeros(4), history.commits).any()


def test_neighbour_pull_lifts_the_chunks_beside_a_strong_one_in_its_file_only() -> None:
    from context_pack.signals.query import pulled_by_neighbours

    # Two files: a.py's chunks at lines 1, 20, 40; b.py's at 1, 30. The strong chunk is a.py:20.
    files = np.array([0, 0, 0, 1, 1])
    starts = np.array([1, 20, 40, 1, 30])
    logit = np.array([-4.0, 2.0, -6.0, -4.0, -5.0])
    pulled = pulled_by_neighbours(logit, files, starts, pull=0.5)
    assert pulled[0] == pytest.approx(-1.0) and pulled[2] == pytest.approx(-2.0)  # half way up to 2.0
    assert pulled[1] == 2.0  # its neighbours are weaker: unchanged
    assert pulled[3] == -4.0  # b.py:1 follows a.py:40 in the list, but is in another file
    assert pulled[4] == pytest.approx(-4.5)  # half way up to b.py:1
    assert np.array_equal(pulled_by_neighbours(logit, files, starts, pull=0.0), logit)

    rng = np.random.default_rng(3)
    for n in (1, 2, 50):  # the input's order does not matter, and nothing ever goes down
        files = rng.integers(0, 4, n)
        starts = rng.permutation(n) + 1
        logit = rng.normal(size=n)
        pulled = pulled_by_neighbours(logit, files, starts)
        shuffle = rng.permutation(n)
        assert np.allclose(pulled_by_neighbours(logit[shuffle], files[shuffle], starts[shuffle]), pulled[shuffle])
        assert np.all(pulled >= logit)


def test_expansion_terms_and_columns() -> None:
    from context_pack.model import Chunk
    from context_pack.signals import query_features
    from context_pack.signals.query_features import expansion_columns, expansion_terms

    def chunk(*symbols: str) -> Chunk:
        return Chunk(path="a.py", language="python", kind="function", name=symbols[0], start_line=1, end_line=1,
                     text="", symbols=symbols, references=("never_asked",))

    chunks = [chunk("Reader.read_config"), chunk("save"), chunk("Reader", "Reader.parseHeader")]
    # the asked chunks' names in order, each word once, a qualified name's last part only; never references
    assert expansion_terms(chunks, [0, 2]) == ["read", "config", "reader", "parse", "header", "parseheader"]
    many = [chunk(*(f"n{i}w{j}" for j in range(40))) for i in range(3)]  # 120 one-word names
    terms = expansion_terms(many, [2, 0, 1])
    assert len(terms) == query_features.EXPANSION_TERMS  # capped, the best chunk's words first
    assert terms[:40] == [f"n2w{j}" for j in range(40)] and terms[40] == "n0w0"
    columns = expansion_columns(np.array([0.0, 2.0, 4.0]))
    assert columns[:, 0].tolist() == [0.0, 0.5, 1.0]  # share of the best score
    assert columns[:, 1].tolist() == [0.0, pytest.approx(1 / np.log2(3)), 1.0]  # 1 / log2(2 + rank)
    assert not expansion_columns(np.zeros(3)).any()


def test_second_pass_lifts_the_code_that_uses_what_the_first_pass_found(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"pkg/reader.py": "def read_config(path):\n    return open(path).read().split('=')\n",
             "pkg/app.py": "def start():\n    settings = read_config('app.ini')\n    return settings\n"}
    repo = init_repo(tmp_path / "r", files)
    query = "`read_config` returns a list when the file has one line"
    lift = query_signal.LEARNED_WEIGHTS["expansion"] + query_signal.LEARNED_WEIGHTS["expansion_rank"]

    def app_score() -> float:
        return next(feats["query"] for path, _, feats in ranked_names(repo, query=query) if path == "pkg/app.py")

    with_expansion = app_score()
    for name in ("expansion", "expansion_rank"):
        monkeypatch.setitem(query_signal.LEARNED_WEIGHTS, name, 0.0)
    without = app_score()
    # start() shares no word with the question but "config"; calling read_config, the best match, ties it to it
    assert with_expansion != without
    assert (with_expansion > without) == (lift > 0)



def test_final_size_penalty_costs_log_tokens(tmp_path: Path) -> None:
    body = "".join(f"    field_{i} = lines[{i}].strip()\n" for i in range(40))
    files = {"pkg/small.py": "def parse_header(line):\n    return line.split(':')\n",
             "pkg/big.py": f"def parse_header_block(lines):\n{body}    return field_0\n"}
    repo = init_repo(tmp_path / "r", files)
    query = "parse_header fails on a header line without a colon"
    config = load_config(repo)

    def log_odds(penalty: float) -> dict[str, float]:
        """Each file's query log-odds with `penalty` × log tokens added back."""
        corpus = collect(repo, config, use_cache=False)
        sizes = dict(zip((c.path for c in corpus.chunks), corpus.chunk_sizes(), strict=True))
        scores = {s.chunk.path: s.features["query"] for s in rank(corpus, config, query=query)}
        tokens = {path: size / query_signal.CHARS_PER_TOKEN + query_signal.TOKEN_OVERHEAD for path, size in sizes.items()}
        return {path: float(np.log(p / (1 - p)) + penalty * np.log(tokens[path])) for path, p in scores.items()}

    with_penalty = log_odds(query_signal.SIZE_PENALTY)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(query_signal, "SIZE_PENALTY", 0.0)
        without = log_odds(0.0)
    # one chunk per file, so no neighbour pull: the penalty added back gives the unpenalised log-odds
    assert query_signal.SIZE_PENALTY > 0
    assert with_penalty == pytest.approx(without, abs=1e-6)


def test_first_pass_keeps_its_own_size_penalty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # twelve equally likely definitions, the later the smaller: the first pass's best 8 are the smallest
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
             "lima"]
    files = {f"pkg/m{i:02d}.py": f"def handler_{word}(x):\n" + "    x = x + 1\n" * (30 - 2 * i) + "    return x\n"
             for i, word in enumerate(words)}
    repo = init_repo(tmp_path / "r", files)
    corpus = collect(repo, load_config(repo), use_cache=False)
    chunks = corpus.chunks
    matrix = np.zeros((len(chunks), len(query_features.FEATURES)))  # every chunk equally likely
    asked: list[list[str]] = []

    def bm25_terms(terms: Sequence[str]) -> np.ndarray:
        asked.append(list(terms))
        return np.zeros(len(chunks))

    def second_query() -> list[str]:
        query_signal.expansion_from_first_pass(chunks, corpus.graph, matrix, corpus.chunk_sizes(),
                                               query_signal.start_lines(chunks), bm25_terms)
        return asked[-1]

    shipped = second_query()
    assert set(shipped) == {"handler", *words[4:]}
    monkeypatch.setattr(query_signal, "SIZE_PENALTY", 0.0)
    assert second_query() == shipped  # the final ranking's penalty does not reach the second query
    monkeypatch.setattr(query_signal, "FIRST_PASS_SIZE_PENALTY", 0.0)
    assert set(second_query()) != set(shipped)  # ties: the first 8 in corpus order


def _parts_of_every_name(names: Sequence[str]) -> dict[str, list[str]]:
    """The sub-word table made the plain way: every name split (what `NameParts` answers word by word)."""
    from context_pack.terms import CAMEL_RE

    parts: dict[str, list[str]] = {}
    for name in names:
        pieces = {p.lower() for p in CAMEL_RE.findall(name)}
        if len(pieces) > 1:
            for piece in pieces:
                parts.setdefault(piece, []).append(name)
    return parts


def test_name_parts_finds_the_names_holding_a_word_as_splitting_every_name_does() -> None:
    rng = random.Random(7)
    pieces = ["get", "Get", "HTTP", "http", "Server", "server", "parse", "URL", "url2", "x", "ID", "v2", "Kelvin",
              "\u212aey", "İd", "ΣIGMA", "σigma", "utf8", "Utf8", "__", "_", "9"]
    names = ["prepend_filter", "prependFilter", "HTTPServer", "getHTTPResponseCode", "parse_url2", "ID", "Id",
             "\u212aey_map", "İdMap", "ΑΣ_part"]
    names += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    names = list(dict.fromkeys(n for n in names if n.isidentifier()))
    expected = _parts_of_every_name(names)
    lookup = query_signal.NameParts(names)
    words = {w for w in expected} | {p.lower() for p in pieces} | {"absent", "serv", "tp", "key", "id", "σigma"}
    assert len(expected) > 20 and any(not w.isascii() for w in words)
    for word in sorted(words):
        assert lookup.holding(word) == expected.get(word, []), word
        capped = lookup.holding(word, 3)
        assert capped == expected.get(word, [])[:4], word  # past 3, one more and no further

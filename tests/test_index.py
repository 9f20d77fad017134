"""The incremental index: equal to a --no-cache build after any change, and robust to bad db files,
concurrent builds and SIGKILL."""

from __future__ import annotations

import gc
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import context_pack
from conftest import git, init_repo, run_cli
from context_pack.config import load_config
from context_pack.pipeline import collect
from context_pack.terms import chunk_document


def snapshot(repo: Path, query: str | None = None) -> tuple[dict, dict]:
    cached = context_pack.build(repo, budget=1500, query=query).to_json_dict()
    fresh = context_pack.build(repo, budget=1500, query=query, use_cache=False).to_json_dict()
    return cached, fresh


def make_repo(tmp_path: Path) -> Path:
    files = {f"pkg/mod{i}.py": f"import pkg.mod{(i + 1) % 6}\n\n\ndef func_{i}(value):\n    return value * {i}\n"
             for i in range(6)}
    files["README.md"] = "# demo\n\nfunc_3 is the entry point.\n"
    return init_repo(tmp_path / "repo", files)


def test_cached_build_equals_fresh_after_edits_renames_deletes_and_branches(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cached, fresh = snapshot(repo)
    assert cached == fresh
    assert (repo / ".ctxpack" / "index.db").is_file()
    assert (repo / ".ctxpack" / ".gitignore").read_text() == "*\n"

    (repo / "pkg/mod2.py").write_text("def renamed_func(value):\n    return value - 2  # TODO\n")
    cached, fresh = snapshot(repo, "renamed_func")
    assert cached == fresh and any(c["name"] == "renamed_func" for c in cached["chunks"])

    os.rename(repo / "pkg/mod3.py", repo / "pkg/moved.py")
    (repo / "pkg/mod4.py").unlink()
    (repo / "pkg/new.py").write_text("class Fresh:\n    def run(self):\n        return 1\n")
    cached, fresh = snapshot(repo, "Fresh run")
    assert cached == fresh
    paths = {c["path"] for c in cached["chunks"]}
    assert "pkg/mod4.py" not in paths and "pkg/mod3.py" not in paths

    git(repo, "checkout", "-q", "-b", "other")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "changes", date="2024-05-01T00:00:00+00:00")
    git(repo, "checkout", "-q", "main")
    cached, fresh = snapshot(repo, "func_4")
    assert cached == fresh and any(c["path"] == "pkg/mod4.py" for c in cached["chunks"])
    git(repo, "checkout", "-q", "other")
    assert snapshot(repo, "Fresh") == snapshot(repo, "Fresh")


def test_unchanged_files_are_not_parsed_again(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    config = load_config(repo)
    assert collect(repo, config).parsed_files == 7
    assert collect(repo, config).parsed_files == 0
    os.utime(repo / "pkg/mod1.py", ns=(1, 1))  # new stat, same content: hashed, not parsed
    assert collect(repo, config).parsed_files == 0
    (repo / "pkg/mod1.py").write_text("def changed():\n    pass\n")
    assert collect(repo, config).parsed_files == 1
    assert collect(repo, config).parsed_files == 0


def test_no_cache_writes_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    context_pack.build(repo, budget=500, use_cache=False)
    result = run_cli("build", str(repo), "--no-cache", "-b", "500")
    assert result.returncode == 0
    assert not (repo / ".ctxpack").exists()


def test_a_build_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    assert gc.isenabled()
    context_pack.build(repo, budget=500)  # parses in forked workers, which collect again
    assert gc.isenabled()
    gc.disable()
    try:
        context_pack.build(repo, budget=500, query="func_3")
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign", "future-schema", "empty"])
def test_bad_index_files_are_rebuilt(tmp_path: Path, damage: str) -> None:
    repo = make_repo(tmp_path)
    expected = context_pack.build(repo, budget=1500, use_cache=False).to_json_dict()
    context_pack.build(repo, budget=1500)
    db_path = repo / ".ctxpack" / "index.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    if damage == "garbage":
        db_path.write_bytes(os.urandom(50_000))
    elif damage == "truncated":
        data = db_path.read_bytes()
        db_path.write_bytes(data[: len(data) // 3])
    elif damage == "foreign":
        db_path.unlink()
        other = sqlite3.connect(db_path)
        other.execute("CREATE TABLE users (name TEXT)")
        other.commit()
        other.close()
    elif damage == "future-schema":
        db = sqlite3.connect(db_path)
        db.execute("UPDATE meta SET value = '999' WHERE key = 'schema'")
        db.commit()
        db.close()
    else:
        db_path.write_bytes(b"")
    result = run_cli("build", str(repo), "-b", "1500", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected
    second = run_cli("build", str(repo), "-b", "1500", "-f", "json")
    assert json.loads(second.stdout) == expected and "rebuilding" not in second.stderr


def test_read_only_index_dir_falls_back_to_memory(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root ignores permission bits: make the path unusable instead
        repo = make_repo(tmp_path)
        (repo / ".ctxpack").write_text("not a directory")
    else:
        repo = make_repo(tmp_path)
        (repo / ".ctxpack").mkdir()
        (repo / ".ctxpack").chmod(0o500)
    expected = context_pack.build(repo, budget=1000, use_cache=False).to_json_dict()
    result = run_cli("build", str(repo), "-b", "1000", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert "in-memory index" in result.stderr
    assert json.loads(result.stdout) == expected


def test_two_builds_at_once_both_succeed_identically(stdlib_part: Path, tmp_path: Path) -> None:
    repo = tmp_path / "copy"
    subprocess.run(["git", "clone", "-q", str(stdlib_part), str(repo)], check=True)
    command = [sys.executable, "-m", "context_pack", "build", str(repo), "-b", "4000", "-f", "json",
               "-q", "header parsing"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, (err1, err2)
    assert out1 == out2
    fresh = context_pack.build(repo, budget=4000, query="header parsing", use_cache=False).to_json_dict()
    assert json.loads(out1) == fresh


def test_sigkill_at_random_moments_leaves_a_usable_index(stdlib_part: Path, tmp_path: Path) -> None:
    repo = tmp_path / "copy"
    subprocess.run(["git", "clone", "-q", str(stdlib_part), str(repo)], check=True)
    expected = context_pack.build(repo, budget=3000, query="json encoder", use_cache=False).to_json_dict()
    rng = random.Random(7)
    command = [sys.executable, "-m", "context_pack", "build", str(repo), "-b", "3000", "-f", "json",
               "-q", "json encoder"]
    for round_number in range(6):
        if round_number % 2:  # change a file so some kills land in an incremental update
            target = repo / "textwrap.py"
            target.write_text(target.read_text() + f"\n# edit {round_number}\n")
            expected = context_pack.build(repo, budget=3000, query="json encoder", use_cache=False).to_json_dict()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 3.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        result = run_cli("build", str(repo), "-b", "3000", "-f", "json", "-q", "json encoder")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == expected


def _centrality_rows(repo: Path) -> list[str]:
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        return [key for (key,) in db.execute("SELECT key FROM derived WHERE key LIKE 'centrality:%'")]


def test_centrality_is_cached_by_structure_and_recomputed_when_it_changes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    config = load_config(repo)
    first = collect(repo, config)
    values = first.centrality()
    first.close()
    (key,) = _centrality_rows(repo)

    # An edit inside a body that changes no definition, use or import: same structure, stored centrality used.
    source = repo / "pkg/mod1.py"
    source.write_text(source.read_text().replace("value * 1", "value * 10  # scaled"))
    again = collect(repo, config)
    assert again.structure_key == first.structure_key
    assert again.centrality().tolist() == values.tolist()
    again.close()
    assert _centrality_rows(repo) == [key]

    # A new use of func_5 from mod0 moves the graph: a new key, new values, still one row kept.
    with open(repo / "pkg/mod0.py", "a", encoding="utf-8") as handle:
        handle.write("\n\ndef caller():\n    return func_5(1)\n")
    changed = collect(repo, config)
    assert changed.structure_key != first.structure_key
    fresh = collect(repo, config, use_cache=False)
    assert changed.centrality().tolist() == fresh.centrality().tolist()
    changed.close()
    fresh.close()
    rows = _centrality_rows(repo)
    assert len(rows) == 1 and rows != [key]


def test_chunk_text_is_read_from_the_index_and_a_changed_row_is_an_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    config = load_config(repo)
    collect(repo, config).close()  # the index now holds every file
    corpus = collect(repo, config)
    try:
        light = next(c for c in corpus.chunks if c.path == "pkg/mod2.py" and c.name == "func_2")
        assert light.text == "" and corpus.textless  # loaded without its text
        assert corpus.with_text(light).text == "def func_2(value):\n    return value * 2\n"
        other = next(c for c in corpus.chunks if c.path == "pkg/mod5.py" and c.name == "func_5")
        (repo / "pkg/mod5.py").write_text("def func_5(value):\n    return value + 5\n")
        collect(repo, config).close()  # another build re-indexes mod5 while this one is still packing
        with pytest.raises(context_pack.CtxpackError, match="index changed under this build"):
            corpus.with_text(other)
    finally:
        corpus.close()


def test_graph_matrices_are_cached_and_a_damaged_copy_is_rebuilt(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    config = load_config(repo)
    first = collect(repo, config)
    first.centrality()  # makes the graph, and stores its matrices beside the centrality
    expected = first.graph.chunk_matrix.toarray()
    first.close()
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        (blob,) = db.execute("SELECT value FROM derived WHERE key LIKE 'graph:%'").fetchone()
    assert len(blob) > 0

    second = collect(repo, config)
    assert (second.graph.chunk_matrix.toarray() == expected).all()
    assert not second.graph.matrices_made  # loaded, not made: no links were read
    assert "chunk_links" not in second.graph.__dict__
    second.close()

    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        db.execute("UPDATE derived SET value = ? WHERE key LIKE 'graph:%'", (b"PK\x03\x04 not a zip",))
    third = collect(repo, config)
    assert (third.graph.chunk_matrix.toarray() == expected).all()
    third.close()
    cached, fresh = snapshot(repo, "func_2")
    assert cached == fresh


def test_chunk_token_counts_are_kept_in_the_index_per_tokenizer(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = context_pack.build(repo, budget=1500).to_json_dict()
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        rows = db.execute("SELECT tokenizer, COUNT(*) FROM token_counts GROUP BY tokenizer").fetchall()
    assert len(rows) == 1 and rows[0][1] >= len(first["chunks"])
    tokenizer_id = rows[0][0]
    # Poison the stored counts: a build must still hold its budget, since the pack text is counted afresh.
    # (The cached pack is dropped each time: it would answer these builds without counting anything.)
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        db.execute("UPDATE token_counts SET count = 1")
        db.execute("DELETE FROM results")
    poisoned = context_pack.build(repo, budget=1500)
    from context_pack.tokens import get_tokenizer

    assert get_tokenizer().count(poisoned.text) == poisoned.tokens <= 1500
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        db.execute("DELETE FROM token_counts")
        db.execute("DELETE FROM results")
    assert context_pack.build(repo, budget=1500).to_json_dict() == first  # counted again, the same pack
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        (ids,) = db.execute("SELECT COUNT(DISTINCT tokenizer) FROM token_counts").fetchone()
    assert ids == 1 and tokenizer_id == get_tokenizer().id


@pytest.mark.parametrize("odd", ["", "\x1f", "a\x1eb", "\x1d", "ü 名前"])
def test_index_rows_read_back_exactly_even_with_separator_characters(odd: str) -> None:
    from dataclasses import replace

    from context_pack.index import (
        decode_chunks,
        decode_details,
        decode_links,
        encode_chunks,
        encode_details,
        encode_links,
    )
    from context_pack.model import Chunk

    chunks = [
        Chunk("a.py", "python", "function", "f", 1, 3, "def f():\n    x\n    y\n", signature="def f():",
              signature_line=1, symbols=("f",), references=("x", "y"), imports=(), todo_count=2, is_test=False),
        Chunk("a.py", "python", "block", "", 4, 4, "\n"),
        Chunk("a.py", "python", "class", f"C{odd}", 5, 6, "class C:\n    pass\n", signature="class C:",
              signature_line=5, symbols=(odd,), references=(odd, "z"), imports=(odd,), is_test=True,
              redactions=((6, "aws-key"),)),
    ]
    names, numbers = encode_chunks(chunks)
    light, lengths = decode_chunks("a.py", "python", names, numbers)
    assert light == [replace(c, text="", signature="", signature_line=0, references=(), imports=(), redactions=())
                     for c in chunks]
    assert lengths == [len(c.text) for c in chunks]
    assert decode_links(encode_links(chunks), len(chunks)) == [(c.references, c.imports) for c in chunks]
    assert decode_details(encode_details(chunks)) == [(c.signature, c.signature_line, c.redactions) for c in chunks]
    assert decode_chunks("e.py", "python", *encode_chunks([])) == ([], [])
    with pytest.raises(ValueError):
        decode_links(encode_links(chunks), len(chunks) + 1)


def _results(repo: Path) -> int:
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM results").fetchone()
    return int(count)


def _build(repo: Path, weights: dict[str, float] | None = None, **options: object) -> tuple[dict, bool]:
    """The JSON of a cached build, whether the cached pack answered it, and a check against --no-cache."""
    from context_pack.pipeline import build_with_corpus

    config = load_config(repo).with_overrides(budget=options.pop("budget", 1500), weights=weights)
    pack, corpus = build_with_corpus(repo, config, **options)  # type: ignore[arg-type]
    fresh, _ = build_with_corpus(repo, config, use_cache=False, **options)  # type: ignore[arg-type]
    assert pack.to_json_dict() == fresh.to_json_dict()
    return pack.to_json_dict(), "cached pack" in corpus.timings


def test_a_pack_is_reused_only_when_every_input_is_the_same(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first, hit = _build(repo)
    assert not hit and _results(repo) == 1
    again, hit = _build(repo)
    assert hit and again == first
    # Each input moves the key: a file's content (same size and all), the query, focus, budget, format,
    # weights, the git history; and a file added or deleted.
    source = repo / "pkg/mod1.py"
    original = source.read_text()
    source.write_text(original.replace("value * 1", "value + 1"))
    assert not _build(repo)[1] and _build(repo)[1]
    assert not _build(repo, query="func_2")[1] and _build(repo, query="func_2")[1]
    assert not _build(repo, focus=["pkg/mod3.py"])[1]
    assert not _build(repo, budget=1400)[1]
    assert not _build(repo, fmt="xml")[1]
    weights = load_config(repo).weights | {"recency": 0.5}
    assert not _build(repo, weights=weights)[1] and _build(repo, weights=weights)[1]
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "later", date="2024-06-01T00:00:00+00:00")
    assert not _build(repo)[1]
    (repo / "pkg/extra.py").write_text("def extra():\n    return func_1(2)\n")
    assert not _build(repo)[1]
    (repo / "pkg/extra.py").unlink()
    assert not _build(repo)[1]
    assert _results(repo) == 8  # the newest few are kept


def test_a_damaged_cached_pack_is_built_again(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first, _ = _build(repo, query="func_3")
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        db.execute("UPDATE results SET value = '[1, 2'")
    again, hit = _build(repo, query="func_3")
    assert not hit and again == first
    assert _build(repo, query="func_3") == (first, True)


def _graph_repo(tmp_path: Path) -> Path:
    files = {
        f"pkg/mod{i}.py": (f"import pkg.mod{(i + 1) % 5}\nfrom pkg.mod{(i + 2) % 5} import helper_{(i + 2) % 5}\n\n\n"
                           f"class Widget{i}:\n    def render_{i}(self):\n        return helper_{(i + 1) % 5}(self)\n\n"
                           f"    def update_{i}(self):\n        return self.render_{i}()\n\n\n"
                           f"def helper_{i}(value):\n    return Widget{(i + 3) % 5}().render_{(i + 3) % 5}()\n")
        for i in range(5)}
    files["pkg/__init__.py"] = ""
    files["app.js"] = "import { run } from './lib.js'\nfunction main() { return run(); }\n"
    files["lib.js"] = "export function run() { return 1; }\n"
    return init_repo(tmp_path / "repo", files)


def _same_graph(repo: Path) -> str:
    """How a build got its graph (made, patched from the last one, or kept as stored), after checking its
    matrices and centrality are a rebuild's."""
    config = load_config(repo)
    corpus = collect(repo, config)
    fresh = collect(repo, config, use_cache=False)
    try:
        for name in ("chunk_matrix", "file_matrix"):
            mine, theirs = getattr(corpus.graph, name), getattr(fresh.graph, name)
            assert mine.shape == theirs.shape
            for part in ("indptr", "indices", "data"):
                assert getattr(mine, part).tolist() == getattr(theirs, part).tolist(), (name, part)
        assert corpus.centrality().tolist() == fresh.centrality().tolist()
        return "patched" if corpus.graph.patched else "made" if corpus.graph.matrices_made else "kept"
    finally:
        corpus.close()
        fresh.close()


def test_chunk_columns_are_kept_for_the_same_files_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from context_pack.pipeline import rank
    from context_pack.signals.columns import ChunkColumns

    def big_class(name: str) -> str:  # longer than class_split_lines: a header and a chunk per method
        return f"class {name}:\n" + "".join(
            f"    def step_{k}(self, value):\n" + "".join(f"        value = value + {j}\n" for j in range(14))
            + "        return value\n\n" for k in range(4))

    repo = _graph_repo(tmp_path)
    (repo / "pkg/engine.py").write_text(big_class("Engine"))
    (repo / "README.md").write_text("# Widgets\n\nTODO: render_2 is slow.\n")
    (repo / "tests").mkdir()
    (repo / "tests/test_widget.py").write_text("def test_render():\n    assert True  # FIXME\n")
    config = load_config(repo)
    names = ("start_lines", "file_numbers", "kinds", "is_test", "is_text", "definitions", "todo", "classes")

    def build(query: str) -> tuple[list[tuple[object, float]], list[str], dict[str, list[object]]]:
        corpus = collect(repo, config)
        try:
            assert len(corpus.columns.start_lines) == len(corpus.chunks)
            made_before = list(corpus.columns.made)  # ["start_lines"] if it had to be made, [] if kept
            ranked = [(s.chunk.key, s.score) for s in rank(corpus, config, query=query)]
            fresh = ChunkColumns(corpus.chunks)
            for name in names:  # kept or made, they are what these chunks give
                assert getattr(corpus.columns, name).tolist() == getattr(fresh, name).tolist(), name
            assert corpus.columns.owners[1] == fresh.owners[1]
            assert corpus.columns.owners[0].tolist() == fresh.owners[0].tolist()
            return ranked, made_before, {name: getattr(fresh, name).tolist() for name in names}
        finally:
            corpus.close()

    first, made, columns = build("Widget1 render_1 is slow, and so is Engine.step_2")
    assert 0 < columns["classes"].count(-1) < len(columns["classes"])  # Engine's methods share a class
    assert made == ["start_lines"]  # nothing kept yet
    again, made, _ = build("Widget1 render_1 is slow, and so is Engine.step_2")
    assert again == first and made == []  # all kept
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM derived WHERE key LIKE 'columns:%'").fetchone()
    assert count == 1
    corpus = collect(repo, config)
    try:
        for name in names:
            getattr(corpus.columns, name)
        assert corpus.columns.owners[1] and corpus.columns.made == []
    finally:
        corpus.close()
    # Another file's content: the kept columns are another state's, and are not read.
    mod2 = repo / "pkg/mod2.py"
    mod2.write_text(big_class("Extra") + "\n\n" + mod2.read_text())
    _, _, columns = build("Extra step_1")
    corpus = collect(repo, config)
    try:
        assert corpus.columns.start_lines.tolist() == columns["start_lines"] and corpus.columns.made == []
    finally:
        corpus.close()
    # The same chunks, moved down two lines: same count, other lines.
    mod0 = repo / "pkg/mod0.py"
    mod0.write_text("\n\n" + mod0.read_text())
    _, made, moved = build("Widget0 render_0")
    assert "start_lines" in made and moved["start_lines"] != columns["start_lines"]
    columns = moved
    # A damaged value is made again, with a warning.
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        db.execute("UPDATE derived SET value = ? WHERE key LIKE 'columns:%'", (b"PK\x03\x04 not a zip",))
    corpus = collect(repo, config)
    try:
        assert corpus.columns.classes.tolist() == columns["classes"] and corpus.columns.made == ["classes"]
    finally:
        corpus.close()
    assert "damaged cached chunk columns" in caplog.text


def test_chunk_columns_after_an_edit_are_patched_from_the_previous_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After edits, the per-chunk columns are copied for the files as they were and made only for the edited
    ones; they equal columns made from scratch (edit, new chunks, rename, deletion)."""
    from context_pack.pipeline import rank
    from context_pack.signals import definitions
    from context_pack.signals.columns import PER_CHUNK, ChunkColumns

    def big_class(name: str) -> str:  # longer than class_split_lines: a header and a chunk per method
        return f"class {name}:\n" + "".join(
            f"    def step_{k}(self, value):\n" + "".join(f"        value = value + {j}\n" for j in range(14))
            + "        return value\n\n" for k in range(4))

    repo = _graph_repo(tmp_path)
    (repo / "README.md").write_text("# Widgets\n\nTODO: render_2 is slow.\n")
    (repo / "pkg/engine.py").write_text(big_class("Engine"))
    config = load_config(repo)

    def build(query: str) -> None:
        corpus = collect(repo, config)
        try:
            rank(corpus, config, query=query)  # makes and keeps every column a question reads
        finally:
            corpus.close()

    build("Widget1 render_1")
    made_for: list[set[str]] = []
    raw = definitions.raw
    monkeypatch.setattr(definitions, "raw", lambda chunks: made_for.append({c.path for c in chunks}) or raw(chunks))
    (repo / "pkg/mod2.py").write_text(big_class("Extra") + "\n\n" + (repo / "pkg/mod2.py").read_text()
                                      + "\n\ndef extra(x):\n    return x  # TODO\n")
    os.rename(repo / "pkg/mod3.py", repo / "pkg/moved.py")
    (repo / "pkg/mod4.py").unlink()
    corpus = collect(repo, config)
    try:
        columns = corpus.columns
        assert {*PER_CHUNK, "classes"} <= set(columns.made)  # patched, and kept again under the new state
        assert made_for == [{"pkg/mod2.py"}, {"pkg/moved.py"}]  # the rest copied
        fresh = ChunkColumns(corpus.chunks)
        for name in (*PER_CHUNK, "definitions", "classes"):
            assert getattr(columns, name).tobytes() == getattr(fresh, name).tobytes(), name
        # Engine's methods (copied) and Extra's (made again) each share a class, numbered as from scratch
        assert len(set(columns.classes.tolist()) - {-1}) == 2 and (columns.classes >= 0).sum() == 8
        assert columns.definitions.tolist() == definitions.compute(list(corpus.chunks))
    finally:
        corpus.close()


def test_a_new_index_has_big_pages(tmp_path: Path) -> None:
    """The page size is fixed when the file is made (before WAL mode): big pages make storing the code graph,
    megabytes in one value, cheap."""
    from context_pack.index import PAGE_SIZE

    repo = make_repo(tmp_path)
    collect(repo, load_config(repo)).close()
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        assert db.execute("PRAGMA page_size").fetchone() == (PAGE_SIZE,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert PAGE_SIZE > 4096  # SQLite's default


def test_a_big_write_is_copied_into_the_db_file_by_a_thread_the_close_waits_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit never copies the WAL into the db file; an update that leaves a big WAL has a thread copy it
    while the build goes on, and closing the index waits for it."""
    from context_pack import index as index_module

    repo = _graph_repo(tmp_path)
    db_path = repo / ".ctxpack" / "index.db"
    corpus = collect(repo, load_config(repo))
    try:  # a small WAL: no thread, the closing connection copies it
        assert corpus.index.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        assert corpus.index._checkpoint is None
    finally:
        corpus.close()
    assert not Path(f"{db_path}-wal").exists()

    copied: list[str] = []
    real = index_module._checkpoint
    monkeypatch.setattr(index_module, "CHECKPOINT_BYTES", 1)
    monkeypatch.setattr(index_module, "_checkpoint", lambda location: copied.append(location) or real(location))
    (repo / "pkg/mod1.py").write_text("def changed():\n    return 1\n")
    corpus = collect(repo, load_config(repo))
    try:
        thread = corpus.index._checkpoint
        assert thread is not None and copied == [str(db_path)]
        thread.join()
        # With the build's connection still open, the db file alone (the WAL ignored) holds the edit.
        with sqlite3.connect(f"{db_path.as_uri()}?mode=ro&immutable=1", uri=True) as db:
            (names,) = db.execute("SELECT names FROM files WHERE path = 'pkg/mod1.py'").fetchone()
        assert "changed" in names
    finally:
        corpus.close()
    assert corpus.index._checkpoint is None and not Path(f"{db_path}-wal").exists()


def test_graph_work_imports_no_scipy(tmp_path: Path) -> None:
    """Making, patching and ranking the graph, and a focus, need numpy alone (scipy.sparse takes ~0.12 s to
    import, as much as the rest of the graph work after a one-file change)."""
    repo = _graph_repo(tmp_path)
    script = ("import sys, context_pack\n"
              "context_pack.build(sys.argv[1], budget=2000, focus=['pkg/mod1.py'], query='render widget')\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))\n")
    mod1 = repo / "pkg/mod1.py"
    for edit in ("", "\n# a note\n", "\ndef extra():\n    return helper_2(1)\n"):  # made, patched, made
        mod1.write_text(mod1.read_text() + edit)
        done = subprocess.run([sys.executable, "-c", script, str(repo)], capture_output=True, text=True, check=True)
        assert done.stdout.strip() == "[]"
    config = load_config(repo)
    assert _same_graph(repo) == "kept"
    corpus = collect(repo, config)
    try:
        assert corpus.centrality().any()
    finally:
        corpus.close()


def test_a_few_changed_files_patch_the_graph_into_the_one_a_rebuild_makes(tmp_path: Path) -> None:
    repo = _graph_repo(tmp_path)
    assert _same_graph(repo) == "made"
    assert _same_graph(repo) == "kept"
    mod1 = repo / "pkg/mod1.py"
    # A comment appended: one more chunk, every later chunk moves.
    mod1.write_text(mod1.read_text() + "\n# a note\n")
    assert _same_graph(repo) == "patched"
    # New uses in a body, in two files at once (one a definition other files point at).
    mod1.write_text(mod1.read_text().replace("return self.render_1()", "return helper_4(self.render_1())"))
    mod3 = repo / "pkg/mod3.py"
    mod3.write_text(mod3.read_text().replace("return helper_4(self)", "return helper_0(helper_4(self))"))
    assert _same_graph(repo) == "patched"
    # A new block between two definitions: a defining chunk moves within its file.
    mod3.write_text(mod3.read_text().replace("\n\n\ndef helper_3", "\n\n\nprint(1)\nprint(2)\n\n\ndef helper_3"))
    assert _same_graph(repo) == "patched"
    (repo / "lib.js").write_text("export function run() { return 2; }\n// done\n")
    assert _same_graph(repo) in ("patched", "kept")
    # What other files see changes: a new definition, a new import, a rename, a deletion: rebuilt.
    mod1.write_text(mod1.read_text() + "\n\ndef extra_1():\n    return 1\n")
    assert _same_graph(repo) == "made"
    mod1.write_text(mod1.read_text() + "\nimport pkg.mod4\n")
    assert _same_graph(repo) == "made"
    os.rename(repo / "pkg/mod2.py", repo / "pkg/moved.py")
    assert _same_graph(repo) == "made"
    (repo / "pkg/mod4.py").unlink()
    assert _same_graph(repo) == "made"
    mod1.write_text(mod1.read_text() + "# again\n\nprint(3)\n")
    assert _same_graph(repo) == "patched"


def test_a_damaged_previous_graph_is_rebuilt(tmp_path: Path) -> None:
    repo = _graph_repo(tmp_path)
    assert _same_graph(repo) == "made"
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        db.execute("UPDATE derived SET value = ? WHERE key LIKE 'graph:%'", (b"PK\x03\x04 not a zip",))
    mod1 = repo / "pkg/mod1.py"
    mod1.write_text(mod1.read_text() + "\nprint(1)\n")
    assert _same_graph(repo) == "made"
    mod1.write_text(mod1.read_text().replace("\n\n\ndef helper_1", "\n\n\nprint(0)\n\n\ndef helper_1"))
    assert _same_graph(repo) == "patched"


def _full_text_spans(corpus: Any) -> list[tuple[str, int, int]]:
    """Each file's (path, terms_from, terms_to), after checking that its full-text rows are exactly that
    rowid span, one row per chunk in order: the index's postings (term, row, offset) and row sizes are those
    of a table holding just these chunks' documents at those rowids."""
    from context_pack.index import _make_terms

    db = corpus.index.db
    spans = db.execute("SELECT path, terms_from, terms_to FROM files ORDER BY terms_from").fetchall()
    chunks: dict[str, list[Any]] = {}
    for chunk in corpus.chunks:
        chunks.setdefault(chunk.path, []).append(chunk)
    expected = sqlite3.connect(":memory:")
    _make_terms(expected)
    expected.executemany("INSERT INTO terms (rowid, body) VALUES (?, ?)", [
        (rowid, chunk_document(corpus.with_text(chunks[path][rowid - first])))
        for path, first, last in spans for rowid in range(first, last + 1)])
    assert _postings(db) == _postings(expected) != ([], [])
    expected.close()
    return spans


def _postings(db: sqlite3.Connection) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What a full-text table holds: every (term, rowid, offset) posting, and each row's size in tokens."""
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.postings USING fts5vocab(main, terms, instance)")
    try:
        return (db.execute("SELECT term, doc, offset FROM temp.postings ORDER BY 1, 2, 3").fetchall(),
                db.execute("SELECT id, sz FROM terms_docsize ORDER BY id").fetchall())
    finally:
        db.execute("DROP TABLE temp.postings")


def _assert_scores_as_from_scratch(repo: Path, keys: list[Any], query: str, scored: Any) -> None:
    """A --no-cache corpus of `repo` has the same chunks and the same BM25 scores for `query`."""
    fresh = collect(repo, load_config(repo), use_cache=False)
    try:
        assert [c.key for c in fresh.chunks] == keys
        assert fresh.bm25(query).tolist() == scored.tolist()
    finally:
        fresh.close()


def test_each_files_full_text_rows_are_its_rowid_span_after_replacements(tmp_path: Path) -> None:
    """A file's query terms sit at rowids `terms_from`..`terms_to` (one row per chunk): replacing or deleting
    a file removes exactly its rows, and BM25 then scores as on an index built from scratch."""
    repo = make_repo(tmp_path)
    collect(repo, load_config(repo)).close()
    (repo / "pkg/mod2.py").write_text("def renamed_func(value):\n    return value - 2\n\n\ndef more(v):\n    return v\n")
    (repo / "pkg/mod4.py").unlink()
    (repo / "pkg/new.py").write_text("class Fresh:\n    def run(self):\n        return 1\n")
    corpus = collect(repo, load_config(repo))
    try:
        spans = _full_text_spans(corpus)
        counts = {path: sum(1 for c in corpus.chunks if c.path == path) for path, _, _ in spans}
        assert all(last - first + 1 == counts[path] for path, first, last in spans)
        assert "pkg/mod4.py" not in counts and counts["pkg/mod2.py"] >= 2
        query = "renamed func fresh value"
        scored = corpus.bm25(query)
        keys = [c.key for c in corpus.chunks]
        hits = {corpus.chunks[i].path for i in scored.nonzero()[0]}
        assert {"pkg/mod2.py", "pkg/new.py"} <= hits and "pkg/mod4.py" not in hits
    finally:
        corpus.close()
    _assert_scores_as_from_scratch(repo, keys, query, scored)


def test_a_switch_that_changes_most_files_remakes_the_full_text_table_as_from_scratch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the files going hold most full-text rows, the table is made again with the others' rows (FTS5
    deletes cost as much as inserts): the rows, their rowid spans, BM25 and the pack are as from scratch."""
    from context_pack.index import Index

    bulk: list[bool] = []
    remove_most = Index._remove_most

    def recorded(self: Index, paths: list[str]) -> bool:
        bulk.append(remove_most(self, paths))
        return bulk[-1]

    monkeypatch.setattr(Index, "_remove_most", recorded)
    repo = make_repo(tmp_path)
    collect(repo, load_config(repo)).close()
    (repo / "pkg/mod1.py").write_text("def one_edit(value):\n    return value\n")
    collect(repo, load_config(repo)).close()
    assert bulk[-1] is False  # one file of seven: rows are deleted one file at a time
    for i in range(5):
        (repo / f"pkg/mod{i}.py").write_text(f"def switched_{i}(value):\n    return value + {i}\n\n\n"
                                             f"def helper_{i}(v):\n    return switched_{i}(v)\n")
    (repo / "README.md").unlink()
    (repo / "pkg/new.py").write_text("class Fresh:\n    def run(self):\n        return switched_2(1)\n")
    query = "switched helper fresh value"
    corpus = collect(repo, load_config(repo))
    try:
        assert bulk[-1] is True
        spans = _full_text_spans(corpus)
        assert {path for path, _, _ in spans} == {c.path for c in corpus.chunks}
        assert "README.md" not in {path for path, _, _ in spans}
        keys, scored = [c.key for c in corpus.chunks], corpus.bm25(query)
        assert scored[[c.path == "pkg/mod5.py" for c in corpus.chunks]].max() > 0  # a kept file's rows answer
    finally:
        corpus.close()
    _assert_scores_as_from_scratch(repo, keys, query, scored)
    cached, fresh_pack = snapshot(repo, query)
    assert cached == fresh_pack


def test_a_long_query_asked_in_two_parts_scores_as_one_bm25(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from context_pack import index as index_module
    from context_pack.terms import query_terms

    words = [f"word{n}" for n in range(40)]
    files = {f"pkg/m{i}.py": "".join(f"def f{j}_{i}():\n    return 'common {words[(i * 7 + j) % 40]} shared'\n\n\n"
                                     for j in range(5)) for i in range(12)}
    repo = init_repo(tmp_path / "repo", files)
    query = "common shared missingword " + " ".join(words)
    corpus = collect(repo, load_config(repo))
    try:
        terms = query_terms(query)
        assert len(terms) > index_module.SPLIT_QUERY_TERMS
        whole = " OR ".join(index_module._phrase(t) for t in terms)
        rows = corpus.index.db.execute("SELECT rowid, -bm25(terms) FROM terms WHERE terms MATCH ?", (whole,))
        expected = dict(rows.fetchall())
        monkeypatch.setattr(index_module, "COMMON_TERM_SHARE", 2)  # common: in over half the chunks
        rowids, scores = corpus.index.bm25(terms)
        assert len(rowids) > len(set(rowids)) == len(expected)  # rows matched by both parts come twice
        summed: dict[int, float] = {}
        for rowid, score in zip(rowids, scores, strict=True):
            summed[rowid] = summed.get(rowid, 0.0) + score
        assert summed.keys() == expected.keys()
        assert all(abs(summed[r] - expected[r]) <= 1e-9 * max(1.0, abs(expected[r])) for r in expected)
        by_chunk = corpus.bm25(query)
        assert (by_chunk > 0).sum() == len(expected)
    finally:
        corpus.close()


def test_rows_holding_counts_each_term_as_a_match_would(tmp_path: Path) -> None:
    from context_pack import index as index_module

    repo = make_repo(tmp_path)
    corpus = collect(repo, load_config(repo))
    try:
        db = corpus.index.db
        terms = ["func", "value", "demo", "absentword", "entry", "func"]
        expected = {t: db.execute("SELECT COUNT(*) FROM terms WHERE terms MATCH ?", (index_module._phrase(t),))
                    .fetchone()[0] for t in terms}
        assert expected["func"] > expected["demo"] > 0 == expected["absentword"]
        assert index_module._rows_holding(db, terms) == expected
    finally:
        corpus.close()


def _recorded_bm25(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[str, ...]]]:
    """Every BM25 question asked of a connection, with the name of the thread that asked it."""
    import threading

    from context_pack import index as index_module

    asked: list[tuple[str, tuple[str, ...]]] = []
    bm25 = index_module._bm25

    def recorded(db: sqlite3.Connection, terms: Any) -> Any:
        asked.append((threading.current_thread().name, tuple(terms)))
        return bm25(db, terms)

    monkeypatch.setattr(index_module, "_bm25", recorded)
    return asked


def test_a_warm_query_build_takes_its_bm25_from_the_thread_and_packs_as_from_scratch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from context_pack.terms import query_terms

    repo = make_repo(tmp_path)
    collect(repo, load_config(repo)).close()
    asked = _recorded_bm25(monkeypatch)
    query = "func value: the entry point\nwhere func_3 meets demo"
    cached, fresh = snapshot(repo, query)
    assert cached == fresh
    whole, title = tuple(query_terms(query)), tuple(query_terms("func value: the entry point"))
    in_thread = {terms for name, terms in asked if name.startswith("ctxpack-bm25")}
    in_main = {terms for name, terms in asked if not name.startswith("ctxpack-bm25")}
    assert {whole, title} <= in_thread  # the warm build's two questions, asked ahead
    assert whole in in_main  # ... and by the --no-cache build (in memory: no thread), itself


def test_bm25_answers_read_before_the_rows_changed_are_not_used(tmp_path: Path) -> None:
    from context_pack.index import BM25Prefetch, _bm25
    from context_pack.pipeline import parse_fingerprint
    from context_pack.terms import query_terms

    repo = make_repo(tmp_path)
    config = load_config(repo)
    collect(repo, config).close()
    terms = query_terms("func value demo")
    location = str(repo.resolve() / ".ctxpack" / "index.db")
    assert BM25Prefetch(location, "another fingerprint", [terms]).answer(tuple(terms)) is None
    prefetch = BM25Prefetch(location, parse_fingerprint(config), [terms])
    early = prefetch.answer(tuple(terms))  # read now, before the change
    assert early is not None
    (repo / "pkg/mod2.py").write_text("def value_demo(value):\n    return value + value\n")
    corpus = collect(repo, config)
    try:
        corpus.index.adopt(prefetch)
        now = _bm25(corpus.index.db, terms)
        assert sorted(zip(*early[1], strict=True)) != sorted(zip(*now, strict=True))  # the change shows in BM25
        answered = corpus.index.bm25(terms)
        assert answered[0].tolist() == now[0].tolist() and answered[1].tolist() == now[1].tolist()
    finally:
        corpus.close()
    same = BM25Prefetch(location, parse_fingerprint(config), [terms])
    corpus = collect(repo, config)
    try:
        corpus.index.adopt(same)
        answer = same.answer(tuple(terms))
        assert answer is not None
        assert corpus.index.bm25(terms) is answer[1]  # nothing changed: the thread's answer is used
    finally:
        corpus.close()


def test_a_row_that_does_not_decode_is_parsed_again_after_the_bm25_thread_has_ended(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged row is parsed again in a worker process: the BM25 thread, whose answers that parse makes
    stale, is ended first (forking a process while a thread runs can leave the child holding a lock), and
    the pack is as from scratch."""
    import threading

    from context_pack import index as index_module
    from context_pack import parallel

    repo = make_repo(tmp_path)
    collect(repo, load_config(repo)).close()
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        db.execute("UPDATE files SET numbers = ? WHERE path = 'pkg/mod2.py'", (b"\x01\x02\x03",))
    bm25 = index_module._bm25

    def slow_in_thread(db: sqlite3.Connection, terms: Any) -> Any:
        if threading.current_thread().name.startswith("ctxpack-bm25"):
            time.sleep(0.5)  # still asking when the build finds the damaged row
        return bm25(db, terms)

    alive_at_parse: list[bool] = []
    iter_parse = parallel.iter_parse

    def recorded(*args: Any, **kwargs: Any) -> Any:
        alive_at_parse.append(any(t.name.startswith("ctxpack-bm25") for t in threading.enumerate()))
        return iter_parse(*args, **kwargs)

    monkeypatch.setattr(index_module, "_bm25", slow_in_thread)
    monkeypatch.setattr(parallel, "iter_parse", recorded)
    cached, fresh = snapshot(repo, "func value demo entry point")
    assert alive_at_parse[0] is False  # the warm build's parse of the damaged row, after the thread ended
    assert cached == fresh


def test_a_changed_parse_setting_empties_the_index_and_its_full_text_rows_are_as_from_scratch(tmp_path: Path) -> None:
    """Another parse setting makes every stored parse stale: the files go and the full-text table is made again
    (not emptied row by row), and the next build's rows, spans and BM25 are those of a build from scratch."""
    from dataclasses import replace

    repo = make_repo(tmp_path)
    (repo / "pkg/long.py").write_text("\n\n".join(f"x_{i} = {i}\ny_{i} = x_{i} + 1" for i in range(30)) + "\n")
    collect(repo, replace(load_config(repo), block_max_lines=3)).close()
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        small_blocks = db.execute("SELECT COUNT(*) FROM terms").fetchone()[0]
    query = "func value long x_3 y_7"
    corpus = collect(repo, load_config(repo))
    try:
        assert corpus.index.location != ":memory:"  # the index on disk took the new parses
        spans = _full_text_spans(corpus)
        assert sum(last - first + 1 for _, first, last in spans) == len(corpus.chunks) < small_blocks
        keys, scored = [c.key for c in corpus.chunks], corpus.bm25(query)
        assert scored.max() > 0
    finally:
        corpus.close()
    _assert_scores_as_from_scratch(repo, keys, query, scored)


def test_cached_files_decode_their_chunks_when_read_and_a_chunk_list_reads_as_a_list() -> None:
    from context_pack.index import CachedFile, ChunkList, Stat, encode_chunks
    from context_pack.model import Chunk, chunk_paths

    def file(path: str, count: int) -> CachedFile:
        chunks = [Chunk(path, "python", "function", f"f{i}", 3 * i + 1, 3 * i + 2, "x" * (i + 1), symbols=(f"f{i}",))
                  for i in range(count)]
        return CachedFile(path, "h", Stat(1, 1), "python", *encode_chunks(chunks))

    files = [file("a.py", 3), file("empty.py", 0), file("b.py", 1), file("c.py", 4)]
    assert [f.last_line for f in files] == [8, 0, 2, 11] and not any(f.decoded for f in files)
    chunks = ChunkList(files)
    assert len(chunks) == 8 and chunk_paths(chunks) == ["a.py"] * 3 + ["b.py"] + ["c.py"] * 4
    assert not any(f.decoded for f in files)  # lengths and paths read no chunk
    assert chunks[4].path == "c.py" and chunks[4].name == "f0" and chunks[-1].name == "f3"
    assert [f.decoded for f in files] == [False, False, False, True]  # only c.py's chunks were decoded
    whole = list(chunks)
    assert [(c.path, c.name) for c in whole] == [(c.path, c.name) for f in files for c in f.chunks]
    assert chunks[2:6] == whole[2:6] and chunks[::-3] == whole[::-3]
    assert [chunks[i] is whole[i] for i in range(-8, 8)] == [True] * 16  # each decoded once
    assert chunks.of_file("b.py") == (3, whole[3:4]) and chunks.of_file("empty.py") == (0, [])
    assert files[0].lengths == [1, 2, 3]
    with pytest.raises(IndexError):
        chunks[8]
    names, numbers = encode_chunks(files[0].chunks)
    for bad in [(names, numbers[:-8]), (names + "\x1fextra", numbers), (None, numbers), (names, names)]:
        with pytest.raises((ValueError, TypeError)):
            CachedFile("a.py", "h", Stat(1, 1), "python", *bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("damage", ["numbers", "names", "names-type"])
def test_a_row_whose_chunk_names_or_numbers_do_not_fit_is_parsed_again(tmp_path: Path, damage: str) -> None:
    repo = make_repo(tmp_path)
    collect(repo, load_config(repo)).close()
    column, value = {"numbers": ("numbers", b"\x00" * 41), "names": ("names", "\x1dfunction\x1ff"),
                     "names-type": ("names", 7)}[damage]
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        db.execute(f"UPDATE files SET {column} = ? WHERE path = 'pkg/mod2.py'", (value,))
    corpus = collect(repo, load_config(repo))
    fresh_corpus = collect(repo, load_config(repo), use_cache=False)
    try:
        assert corpus.parsed_files == 1

        def rows(chunks: Any) -> list[tuple[str, str, int, int]]:
            return [(c.kind, c.name, c.start_line, c.end_line) for c in chunks if c.path == "pkg/mod2.py"]

        assert rows(corpus.chunks) == rows(fresh_corpus.chunks) and len(rows(corpus.chunks)) == 2
    finally:
        corpus.close()
        fresh_corpus.close()
    cached, fresh = snapshot(repo)
    assert cached == fresh


def test_a_build_after_a_one_line_edit_decodes_only_the_files_it_packs(tmp_path: Path) -> None:
    """The ranking reads kept columns and graph, so the chunks decoded are those the packer reaches and the
    edited file's: far fewer files than the repo has. The pack is as from scratch."""
    from context_pack.pipeline import build_with_corpus

    files = {f"pkg/mod{i:02}.py": f"import pkg.mod{(i + 1) % 40:02}\n\n\ndef func_{i}(value):\n"
             + "".join(f"    value = value + {j}\n" for j in range(20)) + "    return value\n" for i in range(40)}
    repo = init_repo(tmp_path / "repo", files)
    config = load_config(repo, {"budget": 400})
    build_with_corpus(repo, config)
    edited = repo / "pkg/mod07.py"
    edited.write_text(edited.read_text().replace("value + 3\n", "value + 33\n"))  # the structure stays
    pack, corpus = build_with_corpus(repo, config)
    decoded = [f.path for f in corpus.chunks.files if f.decoded]
    assert corpus.parsed_files == 1 and len(corpus.chunks.files) == 40
    assert pack.chunks and 0 < len(decoded) <= 10, decoded
    fresh = context_pack.build(repo, budget=400, use_cache=False)
    assert pack.text == fresh.text


def test_installed_versions_read_from_dist_info_names_are_importlib_metadata_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parse fingerprint's versions come from `.dist-info` folder names; where two folders name a project,
    `importlib.metadata` decides (the first on the import path), as it did before."""
    import importlib.metadata

    from context_pack import pipeline
    from context_pack.lang import GRAMMARS

    names = ["context-pack", "detect-secrets", "numpy", "tiktoken", *(m.replace("_", "-") for m, _ in GRAMMARS.values())]
    assert [pipeline.metadata_version(n) for n in names] == [importlib.metadata.version(n) for n in names]
    assert pipeline.metadata_version("no-such-distribution-here") == "unknown"

    shadow = tmp_path / "numpy-0.0.1.dist-info"
    shadow.mkdir()
    (shadow / "METADATA").write_text("Metadata-Version: 2.1\nName: numpy\nVersion: 0.0.1\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    pipeline._dist_info_versions.cache_clear()
    try:
        assert pipeline.metadata_version("numpy") == importlib.metadata.version("numpy") == "0.0.1"
    finally:
        monkeypatch.undo()
        pipeline._dist_info_versions.cache_clear()
    assert pipeline.metadata_version("numpy") != "0.0.1"


def _table(repo: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        return db.execute(sql).fetchall()


def _kept_kinds(repo: Path) -> list[str]:
    """The kinds of derived values the index holds, less the tokenizer's vocabulary (kept once per process)."""
    return sorted(kind for (key,) in _table(repo, "SELECT key FROM derived")
                  if (kind := key.split(":")[0]) != "vocabulary")


def test_a_big_update_is_committed_by_a_thread_while_the_build_ranks_and_packs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big update leaves its full-text rows and COMMIT to a thread. Held back until the build has ranked
    and packed, the build still packs what a build that wrote everything at once packs; released, the index
    holds the same rows as that build's, and what the build kept meanwhile (columns, graph, counts, pack)."""
    import threading

    from context_pack import index as index_module

    repo = _graph_repo(tmp_path)
    at_once = context_pack.build(repo, budget=1500).to_json_dict()
    tables = {name: _table(repo, f"SELECT * FROM {name} ORDER BY 1") for name in ("files", "terms_docsize")}
    postings = _postings(sqlite3.connect(repo / ".ctxpack" / "index.db"))
    kept = _kept_kinds(repo)
    shutil.rmtree(repo / ".ctxpack")

    release = threading.Event()
    held: list[bool] = []
    real_insert, real_close = index_module._insert_terms, index_module.Index.close

    def held_insert(db: sqlite3.Connection, rows: Any) -> None:
        if not release.wait(60):
            raise AssertionError("the build waited for its write behind before closing")
        real_insert(db, rows)

    def close(self: Any) -> None:
        held.append(self._behind is not None and not self._behind.finished())
        release.set()
        real_close(self)

    monkeypatch.setattr(index_module, "WRITE_BEHIND_FILES", 1)
    monkeypatch.setattr(index_module, "_insert_terms", held_insert)
    monkeypatch.setattr(index_module.Index, "close", close)
    assert context_pack.build(repo, budget=1500).to_json_dict() == at_once
    assert held == [True]  # ranked and packed while the rows were not yet written
    assert {name: _table(repo, f"SELECT * FROM {name} ORDER BY 1") for name in tables} == tables
    assert _postings(sqlite3.connect(repo / ".ctxpack" / "index.db")) == postings
    assert _kept_kinds(repo) == kept == ["centrality", "columns", "graph"]
    assert _table(repo, "SELECT COUNT(*) FROM token_counts")[0][0] > 0
    assert _table(repo, "SELECT COUNT(*) FROM results") == [(1,)]
    cached, fresh = snapshot(repo, query="render the widget")  # the full-text rows answer queries as before
    assert cached == fresh


def test_a_write_behind_that_fails_undoes_the_update_and_the_build_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from context_pack import index as index_module

    repo = _graph_repo(tmp_path)
    expected = context_pack.build(repo, budget=1500, use_cache=False).to_json_dict()
    real_insert = index_module._insert_terms

    def full_disk(db: sqlite3.Connection, rows: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(index_module, "WRITE_BEHIND_FILES", 1)
    monkeypatch.setattr(index_module, "_insert_terms", full_disk)
    assert context_pack.build(repo, budget=1500).to_json_dict() == expected
    assert "could not update the index (database or disk is full)" in caplog.text
    assert _table(repo, "SELECT COUNT(*) FROM files") == [(0,)]  # one transaction: nothing of it is left

    monkeypatch.setattr(index_module, "_insert_terms", real_insert)
    cached, fresh = snapshot(repo)
    assert cached == fresh
    assert _table(repo, "SELECT COUNT(*) FROM files") == [(expected["files_considered"],)]


@pytest.mark.parametrize("rows", [0, 1, 4, 5, 11])
def test_full_text_rows_inserted_many_per_statement_are_all_stored(
        rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from context_pack import index as index_module

    monkeypatch.setattr(index_module, "TERMS_PER_STATEMENT", 4)
    db = sqlite3.connect(":memory:")
    index_module._make_terms(db)
    wanted = [(10 + i, f"row {i} body") for i in range(rows)]
    index_module._insert_terms(db, wanted)
    assert db.execute("SELECT rowid FROM terms ORDER BY rowid").fetchall() == [(rowid,) for rowid, _ in wanted]
    assert db.execute("SELECT rowid FROM terms WHERE terms MATCH 'body'").fetchall() == [
        (rowid,) for rowid, _ in wanted]


def test_an_index_updated_behind_then_at_once_reads_each_file_as_last_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from context_pack import index as index_module
    from context_pack.parallel import parse_encoded

    def parsed(path: str, text: str) -> tuple[str, Any]:
        _, rows = parse_encoded((path, "python", text.encode()), 60, 40)
        digest = hashlib.sha1(text.encode()).hexdigest()
        return path, index_module.ParsedFile(digest, index_module.Stat(len(text), 1), "python", rows)

    monkeypatch.setattr(index_module, "WRITE_BEHIND_FILES", 2)
    index = index_module.Index.open(tmp_path, "fingerprint")
    try:
        first = [parsed("a.py", "def alpha():\n    return beta()\n"), parsed("b.py", "def beta():\n    return 2\n")]
        assert index.update(first, {}, [], replacing=["a.py", "b.py"], write_behind=True)
        assert index._behind is not None  # written behind
        again = parsed("a.py", "def gamma():\n    return delta()\n")
        assert index.update([again], {}, [], replacing=["a.py"], write_behind=True)
        assert index._behind is None  # one file: written at once
        digest = again[1].hash
        assert index.all_links({"a.py": (digest, 1)}) == {"a.py": [(("delta",), ())]}
        bodies = index.bodies("a.py", digest, [len(again[1].rows.source)])
        assert [text for text, _ in bodies or []] == ["def gamma():\n    return delta()\n"]
    finally:
        index.close()


def test_only_a_build_without_a_question_writes_its_full_text_rows_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A question's BM25 reads the full-text rows right after the parse: such a build writes them at once,
    and so a failed write falls back to an in-memory index as before."""
    from context_pack import index as index_module

    started: list[int] = []
    real_init = index_module._WriteBehind.__init__

    def counted(self: Any, first: Any) -> None:
        started.append(1)
        real_init(self, first)

    monkeypatch.setattr(index_module, "WRITE_BEHIND_FILES", 1)
    monkeypatch.setattr(index_module._WriteBehind, "__init__", counted)
    repo = _graph_repo(tmp_path)
    cached, fresh = snapshot(repo, query="render the widget")
    assert cached == fresh and started == []
    shutil.rmtree(repo / ".ctxpack")
    context_pack.build(repo, budget=1500)
    assert started == [1]

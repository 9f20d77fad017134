"""Pack: the pack text never exceeds the budget, fills it, and is deterministic."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import context_pack
from conftest import TOKENIZER_KINDS, tokenizer_spec
from context_pack.config import load_config
from context_pack.model import Chunk, ScoredChunk
from context_pack.pack import pack
from context_pack.pipeline import Corpus, collect, pack_corpus, rank
from context_pack.render import render
from context_pack.tokens import get_tokenizer


@lru_cache(maxsize=4)
def corpus_of(root: str) -> tuple[Corpus, list[ScoredChunk]]:
    config = load_config(Path(root))
    corpus = collect(root, config)
    return corpus, rank(corpus, config)


def check_pack(root: Path, budget: int, tokenizer) -> None:
    corpus, ranked = corpus_of(str(root))
    config = load_config(root).with_overrides(tokenizer=tokenizer.name)
    for fmt in ("md", "xml", "plain"):
        result = pack_corpus(corpus, ranked, budget, config, fmt=fmt)
        assert tokenizer.count(result.text) == result.tokens <= budget, (fmt, budget)
        if fmt == "md":
            line_counts = corpus.line_counts
            for packed in result.chunks:
                chunk = packed.chunk
                assert 1 <= chunk.start_line <= chunk.end_line <= line_counts[chunk.path]
                file_lines = (root / chunk.path).read_bytes().decode("utf-8", "replace").split("\n")
                first = file_lines[chunk.start_line - 1].rstrip("\r")
                if packed.mode == "full" and first.strip():
                    assert first in result.text


SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(budget=st.integers(min_value=100, max_value=50_000))
def test_budget_holds_on_the_example_repo(example_repo: Path, tokenizer, budget: int) -> None:
    check_pack(example_repo, budget, tokenizer)


@SETTINGS
@given(budget=st.integers(min_value=100, max_value=50_000))
def test_budget_holds_on_part_of_the_standard_library(stdlib_part: Path, tokenizer, budget: int) -> None:
    check_pack(stdlib_part, budget, tokenizer)


# The other kinds of tokenizer: fewer examples each (llama.cpp counts more slowly than tiktoken), same property.
OTHER_KINDS = [kind for kind in TOKENIZER_KINDS if kind != "tiktoken"]
FEW = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("kind", OTHER_KINDS)
@FEW
@given(budget=st.integers(min_value=100, max_value=50_000))
def test_budget_holds_with_every_tokenizer_kind(example_repo: Path, stdlib_part: Path, kind: str,
                                                budget: int) -> None:
    tokenizer = get_tokenizer(tokenizer_spec(kind))
    check_pack(example_repo, budget, tokenizer)
    check_pack(stdlib_part, budget, tokenizer)


# Random repos: code-like text mixed with what tokenizers find awkward (runs of spaces and tabs, CRLF,
# emoji, CJK, combining marks, long identifiers), in a few languages.
PIECES = ["def ", "class ", "return ", "self.", "x", "(", ")", ":\n", "    ", "\t", "\n", "\r\n", "\n\n", "# ",
          "TODO ", "'", '"', "{", "}", ";", "🦙", "数据", "e\u0301", "Äpfel ", "0123456789", "a" * 40,
          "function f() {", "import os\n", " = ", "-->", "\u00a0"]
SOURCE = st.one_of(st.lists(st.sampled_from(PIECES), max_size=400).map("".join), st.text(max_size=300))
REPOS = st.dictionaries(st.sampled_from(["a.py", "b.py", "pkg/c.py", "d.js", "e.go", "f.md", "g.txt", "h.rs"]),
                        SOURCE, min_size=1, max_size=5)


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
@settings(max_examples=25, deadline=None)
@given(files=REPOS, budget=st.integers(min_value=1, max_value=3000), fmt=st.sampled_from(["md", "xml", "plain"]))
def test_budget_holds_on_random_repos(kind: str, files: dict[str, str], budget: int, fmt: str) -> None:
    spec = tokenizer_spec(kind)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_text(text, "utf-8")
        result = context_pack.build(tmp, budget=budget, format=fmt, tokenizer=spec, use_cache=False)
    assert get_tokenizer(spec).count(result.text) == result.tokens <= budget
    assert result.text == "" or result.chunks


@pytest.mark.parametrize("budget", [1000, 1024, 4096, 8000, 32768])
def test_pack_uses_at_least_90_percent_when_the_repo_is_larger(stdlib_part: Path, budget: int) -> None:
    corpus, ranked = corpus_of(str(stdlib_part))
    total = sum(f.size for f in corpus.files) // 4  # chunks loaded from the index carry no text
    assert total > budget
    result = pack_corpus(corpus, ranked, budget, load_config(stdlib_part))
    assert 0.9 * budget <= result.tokens <= budget


def test_small_repo_fits_whole_without_elision(tmp_path: Path) -> None:
    from conftest import init_repo

    repo = init_repo(tmp_path / "r", {"a.py": "def f():\n    return 1\n", "b.py": "import a\n\nX = a.f()\n"})
    result = context_pack.build(repo, budget=5000)
    assert "⋮" not in result.text
    assert "def f():\n    return 1\n" in result.text and "X = a.f()" in result.text
    assert {(p.chunk.path, p.mode) for p in result.chunks} == {("a.py", "full"), ("b.py", "full")}


def test_signature_mode_keeps_breadth_when_a_body_is_too_big(tokenizer) -> None:
    body = "".join(f"    value_{i} = compute_{i}(argument)\n" for i in range(400))
    big = Chunk(path="m.py", language="python", kind="function", name="huge", start_line=1, end_line=401,
                text="def huge(argument):\n" + body, signature="def huge(argument):\n", signature_line=1)
    small = Chunk(path="n.py", language="python", kind="function", name="tiny", start_line=1, end_line=2,
                  text="def tiny():\n    return 1\n", signature="def tiny():\n", signature_line=1)
    ranked = [ScoredChunk(big, 1.0, {}), ScoredChunk(small, 0.5, {})]
    result = pack(ranked, 300, tokenizer, "md", "r", {"m.py": 401, "n.py": 2})
    modes = {p.chunk.name: p.mode for p in result.chunks}
    assert modes == {"huge": "signature", "tiny": "full"}
    assert "def huge(argument):\n    ⋮ lines 2–401\n" in result.text
    assert result.tokens <= 300


def test_tiny_budget_gives_an_empty_pack_not_a_crash(example_repo: Path) -> None:
    for budget in (1, 5, 20):
        result = context_pack.build(example_repo, budget=budget)
        assert result.tokens <= budget
        assert result.text == "" or result.chunks


def test_elision_markers_and_line_order(tokenizer) -> None:
    lines = [f"def f{i}():\n    return {i}\n\n" for i in range(5)]
    chunks = [Chunk(path="a.py", language="python", kind="function", name=f"f{i}", start_line=3 * i + 1,
                    end_line=3 * i + 3, text=lines[i], signature=f"def f{i}():\n", signature_line=3 * i + 1)
              for i in range(5)]
    from context_pack.model import PackedChunk

    chosen = [PackedChunk(chunks[i], "full", 1.0, {}, 5) for i in (3, 1)]
    text, ordered = render(chosen, "r", "md", {"a.py": 15})
    assert [p.chunk.name for p in ordered] == ["f1", "f3"]
    assert text.index("⋮ lines 1–3") < text.index("def f1") < text.index("⋮ lines 7–9") < text.index("def f3")
    assert text.rstrip().endswith("⋮ lines 13–15\n```")


def test_two_builds_are_byte_identical(example_repo: Path) -> None:
    for fmt in ("md", "xml", "plain"):
        first = context_pack.build(example_repo, budget=3000, format=fmt)
        second = context_pack.build(example_repo, budget=3000, format=fmt)
        assert first.text == second.text
        assert first.to_json_dict() == second.to_json_dict()


@given(st.text(alphabet=st.sampled_from(list("ab&<>\"'\n\r\t ;#é")), max_size=40))
def test_xml_escaping_is_saxutils_exactly(text: str) -> None:
    from xml.sax.saxutils import escape, quoteattr

    from context_pack import render as render_module

    assert render_module.escape(text) == escape(text)
    assert render_module.quoteattr(text) == quoteattr(text)

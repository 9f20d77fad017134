"""Each language's query on its snippet: the expected definitions, imports and references come out."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from context_pack.lang import GRAMMARS, language_for
from context_pack.model import Chunk
from context_pack.parse import parse_file, split_lines

SNIPPETS = Path(__file__).resolve().parent.parent / "fixtures" / "snippets"
CASES = sorted(p.parent.name for p in SNIPPETS.glob("*/expected.json"))


def assert_partition(chunks: list[Chunk], text: str) -> None:
    """Every line belongs to exactly one chunk, in order, and the chunks' texts rebuild the file."""
    lines = split_lines(text)
    assert chunks[0].start_line == 1
    assert chunks[-1].end_line == len(lines)
    for before, after in itertools.pairwise(chunks):
        assert after.start_line == before.end_line + 1, (before, after)
    for chunk in chunks:
        assert chunk.start_line <= chunk.end_line
        assert chunk.text == "".join(lines[chunk.start_line - 1:chunk.end_line])
    assert "".join(chunk.text for chunk in chunks) == text


def test_every_supported_language_has_a_snippet() -> None:
    assert set(CASES) == set(GRAMMARS)


@pytest.mark.parametrize("language", CASES)
def test_snippet_definitions(language: str) -> None:
    expected = json.loads((SNIPPETS / language / "expected.json").read_text())
    path = SNIPPETS / language / expected["file"]
    source = path.read_bytes()
    assert language_for(expected["file"], header_is_cpp=language == "cpp") == language
    result = parse_file(expected["file"], source, language)
    assert result.warning is None
    assert {(d.kind, d.name) for d in result.definitions} == {tuple(d) for d in expected["definitions"]}
    imports = {name for chunk in result.chunks for name in chunk.imports}
    assert imports == set(expected["imports"])
    references = {name for chunk in result.chunks for name in chunk.references}
    assert set(expected["references"]) <= references
    assert_partition(result.chunks, source.decode("utf-8"))


@pytest.mark.parametrize("language", CASES)
def test_snippet_chunks_split_small_classes(language: str) -> None:
    """With a tiny class threshold every container with members is cut into a header and its members."""
    expected = json.loads((SNIPPETS / language / "expected.json").read_text())
    source = (SNIPPETS / language / expected["file"]).read_bytes()
    result = parse_file(expected["file"], source, language, class_split_lines=1, block_max_lines=5)
    assert_partition(result.chunks, source.decode("utf-8"))
    # Blank lines join the block before them; the block itself is at most 5 lines.
    assert all(len(chunk.text.rstrip("\n").split("\n")) <= 5 for chunk in result.chunks if chunk.kind == "block")
    named = {chunk.name for chunk in result.chunks if chunk.name}
    methods = {name for kind, name in expected["definitions"] if kind == "method"}
    # A method gets a chunk of its own unless it shares a line with another definition.
    assert len(methods & named) >= len(methods) * 0.7, sorted(methods - named)
    for chunk in result.chunks:
        if chunk.kind in ("function", "method"):
            assert chunk.signature, chunk
            assert chunk.text.find(chunk.signature.strip().splitlines()[0].strip()) >= 0


def test_tsx_query_inherits_typescript() -> None:
    from context_pack.lang import query_source

    tsx = query_source("tsx")
    assert query_source("typescript") in tsx and "jsx_opening_element" in tsx
    assert "jsx_opening_element" not in query_source("typescript")

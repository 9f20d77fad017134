"""Parse: partition, class splitting, fallbacks, hostile shapes, chunk facts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from context_pack.parse import _clean_name, _normalised_name, is_test_path, parse_file
from test_parse_languages import assert_partition

CLASS_SOURCE = "import os\n\n\nclass Big:\n    x = 1\n\n" + "".join(
    f"    def m{i}(self):\n        return os.sep * {i}\n\n" for i in range(30)
) + "\ndef tail():\n    pass\n"


def test_large_class_is_split_into_header_and_methods() -> None:
    result = parse_file("big.py", CLASS_SOURCE.encode(), "python", class_split_lines=20)
    assert_partition(result.chunks, CLASS_SOURCE)
    kinds = [(c.kind, c.name) for c in result.chunks]
    assert kinds[0] == ("imports", "")
    assert ("class", "Big") in kinds
    assert [name for kind, name in kinds if kind == "method"] == [f"Big.m{i}" for i in range(30)]
    assert kinds[-1] == ("function", "tail")
    header = next(c for c in result.chunks if c.kind == "class")
    assert header.signature == "class Big:\n"
    assert "Big.x" in header.symbols


def test_small_class_stays_whole() -> None:
    result = parse_file("big.py", CLASS_SOURCE.encode(), "python", class_split_lines=500)
    whole = next(c for c in result.chunks if c.kind == "class")
    assert whole.name == "Big"
    assert "Big.m29" in whole.symbols and "Big.m0" in whole.symbols
    assert not any(c.kind == "method" for c in result.chunks)


def test_text_files_fall_back_to_bounded_blank_line_blocks() -> None:
    text = "# Title\n\nintro\n\n## Part\n" + "".join(f"line {i}\n" for i in range(100)) + "\nend\n"
    result = parse_file("README.md", text.encode(), "markdown", block_max_lines=30)
    assert_partition(result.chunks, text)
    assert all(c.kind == "block" and c.line_count <= 30 for c in result.chunks)
    assert result.chunks[0].name == "Title"


def test_deep_nesting_does_not_recurse() -> None:
    depth = 10_000
    python = "x = " + "[" * depth + "]" * depth + "\n\ndef after():\n    return 1\n"
    result = parse_file("deep.py", python.encode(), "python")
    assert_partition(result.chunks, python)
    assert any(c.name == "after" for c in result.chunks)
    javascript = "function outer() {\n" + "{\n" * depth + "}\n" * depth + "}\n"
    result = parse_file("deep.js", javascript.encode(), "javascript", class_split_lines=5)
    assert_partition(result.chunks, javascript)
    nested = "".join(f"{'    ' * i}class C{i}:\n" for i in range(200)) + "    " * 200 + "pass\n"
    result = parse_file("nested.py", nested.encode(), "python", class_split_lines=2)
    assert_partition(result.chunks, nested)


def test_crlf_bom_lone_cr_and_invalid_utf8() -> None:
    source = b"\xef\xbb\xbfdef a():\r\n    return '\xff\xfe'\r\n\r\ndef b():\r    pass\n"
    result = parse_file("odd.py", source, "python")
    text = source[3:].decode("utf-8", errors="replace")
    assert_partition(result.chunks, text)
    assert result.chunks[0].name == "a"


def test_empty_and_blank_files() -> None:
    assert parse_file("empty.py", b"", "python").chunks == []
    blank = parse_file("blank.py", b"\n\n\n", "python")
    assert_partition(blank.chunks, "\n\n\n")


def test_garbage_in_a_grammar_language_still_partitions() -> None:
    garbage = bytes(range(1, 256)) * 40
    result = parse_file("noise.c", garbage, "c")
    assert_partition(result.chunks, garbage.decode("utf-8", errors="replace"))


def test_chunk_facts_todo_tests_references() -> None:
    source = (
        "from app.core import engine\n\n\n"
        "def run():\n    # TODO: retry\n    # FIXME and HACK\n    return engine.start()\n\n\n"
        "def test_run():\n    assert run()\n"
    )
    chunks = parse_file("app/jobs.py", source.encode(), "python").chunks
    by_name = {c.name: c for c in chunks}
    assert by_name["run"].todo_count == 3
    assert by_name["run"].is_test is False
    assert by_name["test_run"].is_test is True
    assert "start" in by_name["run"].references
    assert "run" in by_name["test_run"].references
    assert chunks[0].kind == "imports" and chunks[0].imports == ("app.core", "app.core.engine")


def test_comments_above_a_definition_join_it() -> None:
    source = "x = 1  # trailing\n# about f\n# more\ndef f():\n    pass\n"
    chunks = parse_file("c.py", source.encode(), "python").chunks
    f = next(c for c in chunks if c.name == "f")
    assert f.start_line == 2 and f.signature_line == 4


def test_is_test_path() -> None:
    for path in ("tests/test_x.py", "pkg/foo_test.go", "src/a.spec.ts", "src/FooTest.java", "spec/x_spec.rb",
                 "test_y.py", "web/__tests__/a.js"):
        assert is_test_path(path), path
    for path in ("src/contest.py", "pkg/testing_utils_impl.go", "latest.py", "src/Tester.java"):
        assert not is_test_path(path), path


def test_very_long_definition_is_cut_into_head_and_parts() -> None:
    body = "".join(f"    field_{i}: int = {i}\n" + ("\n" if i % 10 == 9 else "") for i in range(300))
    source = "struct_like = 1\n\n\nclass Options:\n" + body + "\n\ndef after():\n    return 1\n"
    chunks = parse_file("opts.py", source.encode(), "python").chunks
    assert_partition(chunks, source)
    head = next(c for c in chunks if c.kind == "class")
    parts = [c for c in chunks if c.kind == "block" and c.name == "Options"]
    assert head.name == "Options" and head.signature == "class Options:\n"
    assert len(parts) >= 4 and all(p.line_count <= 61 for p in parts)
    assert chunks[-1].name == "after"


@given(st.text(alphabet=st.sampled_from("aZ_9é\u0300<>:.-\\ *&\t\u00a0\u2003"), max_size=10) | st.text(max_size=10))
def test_clean_name_shortcut_changes_nothing(text: str) -> None:
    """An identifier skips the clean-up: it must come out exactly as the clean-up would leave it."""
    assert _clean_name(text) == _normalised_name(text)


def test_make_chunk_makes_the_same_chunk_as_the_constructor() -> None:
    import pickle

    from context_pack.model import Chunk, make_chunk

    fields = dict(path="a.py", language="python", kind="method", name="A.f", start_line=3, end_line=9, text="x\n",
                  signature="def f():\n", signature_line=4, symbols=("A.f",), references=("g",), imports=("os",),
                  todo_count=2, is_test=True, redactions=((5, "AWS Access Key"),))
    made, constructed = make_chunk(**fields), Chunk(**fields)
    assert made == constructed and hash(made) == hash(constructed)
    assert list(made.__dict__.items()) == list(constructed.__dict__.items())
    assert pickle.dumps(made) == pickle.dumps(constructed)
    assert make_chunk("a.py", "python", "block", "", 1, 1, "x\n") == Chunk("a.py", "python", "block", "", 1, 1, "x\n")

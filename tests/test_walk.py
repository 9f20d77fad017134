"""Walk: git listing, ignore rules, globs, and every kind of skip."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from conftest import git, init_repo
from context_pack.errors import UsageError
from context_pack.walk import read_source, walk


def paths(result) -> list[str]:
    return [f.path for f in result.files]


def test_git_repo_lists_tracked_and_untracked_but_not_ignored(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "r", {"a.py": "x = 1\n", ".gitignore": "ignored/\n*.log\n"})
    (repo / "new.py").write_text("y = 2\n")
    (repo / "ignored").mkdir()
    (repo / "ignored" / "z.py").write_text("z = 3\n")
    (repo / "x.log").write_text("log\n")
    (repo / ".ctxpack").mkdir()
    (repo / ".ctxpack" / "pack.md").write_text("# old pack\n")
    assert paths(walk(repo)) == ["a.py", "new.py"]


def test_tracked_but_deleted_file_is_not_listed(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "r", {"a.py": "x = 1\n", "b.py": "y = 1\n"})
    (repo / "b.py").unlink()
    result = walk(repo)
    assert paths(result) == ["a.py"]


def test_a_walk_for_a_build_keeps_what_it_read_whole(tmp_path: Path) -> None:
    """`keep_read`: each file taken is read whole once, with its stat, for the build; a file the index knows
    is not read, only its stat kept; skipped files are not kept. Without it, only first bytes are read and
    nothing is kept."""
    long_text = "x = 1\n" * 3000  # longer than the first bytes classification needs
    repo = init_repo(tmp_path / "r", {"a.py": long_text, "b.py": "y = 2\n", "blob.bin.py": "\0\1\2" * 10})
    known_stat = os.stat(repo / "b.py")
    result = walk(repo, keep_read=True, known=lambda rel, size, mtime: (
        rel == "b.py" and (size, mtime) == (known_stat.st_size, known_stat.st_mtime_ns)))
    assert paths(result) == ["a.py", "b.py"]
    info = os.stat(repo / "a.py")
    assert result.taken == {"a.py": (long_text.encode(), info.st_size, info.st_mtime_ns),
                           "b.py": (None, known_stat.st_size, known_stat.st_mtime_ns)}
    assert walk(repo).taken == {}


def test_read_source_reads_whole_files_whatever_their_size_said_and_refuses_big_ones(tmp_path: Path) -> None:
    """The first read is sized from the file's stat: a file that grows past that is still read to its end
    (or refused past the limit), one that shrank to what it holds; a limit reads the first bytes."""
    from context_pack import walk as walk_module

    path = tmp_path / "f.py"
    data = bytes(range(256)) * 3000  # 768,000 bytes: more than one read's worth after a small size
    path.write_bytes(data)
    for size in (0, 10, len(data) - 1, len(data), len(data) + 5000):  # what a stat before a change saw
        with open(path, "rb") as handle:
            assert walk_module._read_up_to(handle.fileno(), 1_000_001, size) == data
        with open(path, "rb") as handle:
            assert walk_module._read_up_to(handle.fileno(), 100, size) == data[:100]
    assert read_source(path, 1_000_000) == data
    assert read_source(str(path), 1_000_000, limit=100) == data[:100]
    with pytest.raises(OSError) as raised:
        read_source(path, len(data) - 1)
    assert raised.value.errno == errno.EFBIG
    path.write_bytes(b"")
    assert read_source(path, 1_000_000) == b""


def test_plain_directory_honours_nested_gitignore(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    files = {"a.py": "", "sub/b.py": "", "sub/c.py": "", "sub/.gitignore": "c.py\n", ".gitignore": "*.tmp.py\n",
             "d.tmp.py": "", "deep/x/e.py": ""}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text or "pass\n")
    assert paths(walk(root)) == ["a.py", "deep/x/e.py", "sub/b.py"]


def test_ctxpackignore_include_and_exclude(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "r", {"src/a.py": "a\n", "src/b.py": "b\n", "docs/x.md": "x\n",
                                      ".ctxpackignore": "docs/\n"})
    assert paths(walk(repo)) == ["src/a.py", "src/b.py"]
    assert paths(walk(repo, exclude=["src/b.py"])) == ["src/a.py"]
    assert paths(walk(repo, include=["src/**"])) == ["src/a.py", "src/b.py"]
    assert paths(walk(repo, include=["*.py"], exclude=["a.py"])) == ["src/b.py"]


def test_skips_vendored_lock_binary_minified_generated_and_large(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "main.py": "print(1)\n",
        "node_modules/pkg/index.js": "x\n",
        "third_party/lib.c": "int x;\n",
        "build/out.py": "x = 1\n",
        "package-lock.json": "{}\n",
        "Cargo.lock": "x\n",
        "data.py": b"abc\x00def\n",
        "app.min.js": "var a=1;\n",
        "bundle.js": "var a=" + "1+" * 3000 + "1;\n",
        "site.css": "/* License: MIT */\n" * 3 + "a{b:c}" * 2000 + "\n",
        # Source with one long literal among ordinary lines (fd's LS_COLORS default) is code, not minified.
        "colors.py": "import os\n\n" + "def f(x):\n    return x\n\n" * 20 + "DEFAULT = '" + "di=1;34:" * 400
                     + "'\n" + "def g():\n    pass\n" * 20,
        "gen.go": "// Code generated by protoc. DO NOT EDIT.\npackage gen\n",
        "msg_pb2.py": "x = 1\n",
        "big.py": "x = 1\n" * 400_000,
    }
    repo = init_repo(tmp_path / "r", files)
    result = walk(repo, max_file_size=1_000_000)
    assert paths(result) == ["colors.py", "main.py"]
    skipped = {reason: sorted(ps) for reason, ps in result.skipped.items()}
    assert skipped["vendored"] == ["build/out.py", "node_modules/pkg/index.js", "third_party/lib.c"]
    assert skipped["lock file"] == ["Cargo.lock", "package-lock.json"]
    assert skipped["binary"] == ["data.py"]
    assert skipped["minified"] == ["bundle.js", "site.css"]
    assert skipped["generated"] == ["app.min.js", "gen.go", "msg_pb2.py"]
    assert skipped["too large"] == ["big.py"]
    assert paths(walk(repo, max_file_size=10_000_000)) == ["big.py", "colors.py", "main.py"]


def test_symlinks_out_of_root_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("SECRET = 1\n")
    repo = init_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    os.symlink(outside, repo / "link_out.py")
    os.symlink(repo / "a.py", repo / "link_in.py")
    os.symlink(repo / "loop1.py", repo / "loop2.py")
    os.symlink(repo / "loop2.py", repo / "loop1.py")
    os.symlink(tmp_path, repo / "up")
    result = walk(repo)
    assert paths(result) == ["a.py", "link_in.py"]
    assert result.skipped["link out of root"] == ["link_out.py"]
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.py").write_text("x\n")
    os.symlink(outside, plain / "out.py")
    os.symlink(tmp_path, plain / "updir")
    assert paths(walk(plain)) == ["a.py"]


def test_header_language_follows_the_repo(tmp_path: Path) -> None:
    c_repo = init_repo(tmp_path / "c", {"x.h": "int f(void);\n", "x.c": "int f(void) { return 1; }\n"})
    assert {f.path: f.language for f in walk(c_repo).files} == {"x.c": "c", "x.h": "c"}
    cpp_repo = init_repo(tmp_path / "cpp", {"x.h": "int f();\n", "x.cc": "int f() { return 1; }\n"})
    assert {f.path: f.language for f in walk(cpp_repo).files} == {"x.cc": "cpp", "x.h": "cpp"}


def test_subdirectory_of_a_repo_lists_relative_paths(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "r", {"pkg/a.py": "x\n", "other/b.py": "y\n"})
    assert paths(walk(repo / "pkg")) == ["a.py"]


def test_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        walk(tmp_path / "nope")
    (tmp_path / "file.py").write_text("x\n")
    with pytest.raises(UsageError):
        walk(tmp_path / "file.py")


def test_unusual_file_names(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "r", {"with space.py": "a\n", "ünï/cödé.py": "b\n", "new\nline.py": "c\n"})
    assert paths(walk(repo)) == ["new\nline.py", "with space.py", "ünï/cödé.py"]
    git(repo, "status")


def test_a_file_the_index_knows_by_its_stat_is_not_read_again(tmp_path: Path) -> None:
    from context_pack.walk import walk

    (tmp_path / "gen.py").write_text("# @generated by a tool\nx = 1\n")
    info = (tmp_path / "gen.py").stat()
    assert [f.path for f in walk(tmp_path).files] == []  # its first lines say it is generated
    asked: list[tuple[str, int, int]] = []

    def known(rel: str, size: int, mtime_ns: int) -> bool:
        asked.append((rel, size, mtime_ns))
        return (size, mtime_ns) == (info.st_size, info.st_mtime_ns)

    # Known with this very stat: taken as it was taken before, without reading it (here, a stale "known").
    assert [f.path for f in walk(tmp_path, known=known).files] == ["gen.py"]
    assert asked == [("gen.py", info.st_size, info.st_mtime_ns)]
    os.utime(tmp_path / "gen.py", ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    assert [f.path for f in walk(tmp_path, known=known).files] == []  # a new stat: read and classified again


def test_binary_check_counts_control_characters_as_the_decoded_text_has_them() -> None:
    """Control characters are counted in the bytes; that must equal counting them in the decoded text,
    whatever invalid UTF-8 surrounds them."""
    import random

    from context_pack.walk import BINARY_SHARE, CONTROL_CHARS, _looks_binary

    def by_characters(head: bytes) -> bool:
        text = head.decode("utf-8", errors="replace")
        bad = text.count("\ufffd") + sum(1 for char in text if char in CONTROL_CHARS)
        return bad >= 4 and bad > BINARY_SHARE * len(text)

    rng = random.Random(5)
    pieces = [b"\x01", b"\x07", b"\x7f", b"\x1b", b"\t", b"\n", b"\xe2\x82", b"\xe2\x82\xac", b"\xff", b"\xc3",
              "é".encode(), "\ufffd".encode(), b"abc ", b"\x80\x01"]
    heads = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400))) for _ in range(300)]
    heads += [b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 200))) for _ in range(300)]
    verdicts = {by_characters(head) for head in heads}
    assert verdicts == {True, False}  # the inputs exercise both answers
    for head in heads:
        assert _looks_binary(head) == by_characters(head), head


def test_single_file_builds_and_bison_and_flex_output_are_skipped_as_generated(tmp_path: Path) -> None:
    from context_pack.walk import walk

    license_header = "".join(f"// license line {n}\n" for n in range(7))
    (tmp_path / "single_include").mkdir()
    (tmp_path / "single_include/catch.hpp").write_text(
        "/*\n *  Catch v2.7.2\n *  Generated: 2019-04-22\n *  ---\n"
        " *  This file has been merged from multiple headers. Please don't edit it directly\n */\nint a;\n")
    (tmp_path / "catch_amalgamated.cpp").write_text(
        f"\n{license_header}\n//  This file is an amalgamation of multiple different files.\nint b;\n")
    # The note far down a file (a generator's template) is not its header: the generator is kept.
    (tmp_path / "generate.py").write_text("".join(f"x{n} = {n}\n" for n in range(20))
                                          + 'NOTE = "This file is an amalgamation of multiple different files."\n')
    (tmp_path / "source.hpp").write_text("// An amalgamation of ideas, by hand.\nint c;\n")  # not the phrase
    (tmp_path / "parser.c").write_text("/* A Bison parser, made by GNU Bison 3.8.2.  */\n\nint yyparse(void);\n")
    (tmp_path / "lexer.c").write_text('#line 1 "lexer.c"\n\n#line 3 "lexer.c"\n\n#define  YY_INT_ALIGNED short int\n\n'
                                      "/* A lexical scanner generated by flex */\n\nint yylex(void);\n")
    result = walk(tmp_path)
    assert sorted(result.skipped["generated"]) == ["catch_amalgamated.cpp", "lexer.c", "parser.c",
                                                   "single_include/catch.hpp"]
    assert sorted(f.path for f in result.files) == ["generate.py", "source.hpp"]

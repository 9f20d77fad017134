"""Hostile files, hostile repositories and cache faults: no crash, no hang, each skip reported once, the
index never corrupt, the user's files never touched. Everything here is real: FIFOs, sockets, link loops,
git clones, and for the faults RLIMIT_FSIZE and dropped capabilities in a real child process."""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import context_pack
from conftest import git, init_repo, run_cli
from context_pack import pipeline
from context_pack.config import load_config
from context_pack.walk import walk

MINUTE = 60
_PUNCTUATION = b"(){}[];:,.'\"<>=+-*/ \nabcdefXYZ0123456789#\\$@!?&|"
_RNG = random.Random(3)
GARBAGE = bytes(_RNG.choice(_PUNCTUATION) for _ in range(60_000))


def capless(*command: str) -> list[str]:
    """Run a command without the capabilities that let root ignore permission bits.

    The tests run as root here, and root reads a chmod 000 file and writes a read-only folder. Dropping
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (from the bounding and inheritable sets, with setpriv) gives
    a root process the permission checks of an ordinary owner: the real kernel check, not a stand-in.
    """
    if os.geteuid() != 0:
        return list(command)
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop root's capabilities"
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", "--", *command]


def ctxpack(*args: str, limit_file_size: int | None = None, as_owner: bool = False,
            timeout: float = 2 * MINUTE) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process, optionally with a file size limit (a full disk) or without root's powers."""

    def limit() -> None:
        if limit_file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    command = [sys.executable, "-m", "context_pack", *args]
    return subprocess.run(capless(*command) if as_owner else command, capture_output=True, text=True,
                          encoding="utf-8", preexec_fn=limit, timeout=timeout)


def snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every user file (not .ctxpack/, not .git/): mode, size, mtime and content hash, or a link's target."""
    state = {}
    for directory, folders, files in os.walk(root):
        folders[:] = [f for f in folders if f not in (".ctxpack", ".git")]
        for name in [*files, *folders]:
            path = Path(directory, name)
            info = path.lstat()
            if path.is_symlink():
                digest = os.readlink(path)
            elif path.is_file():
                digest = hashlib.sha1(path.read_bytes()).hexdigest()
            else:
                digest = ""
            state[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return state


def ruby_grammar_crashes_on(source: bytes) -> bool:
    """Whether tree-sitter-ruby kills the process parsing these bytes (checked in a throwaway child)."""
    code = ("import sys, tree_sitter, tree_sitter_ruby; "
            "tree_sitter.Parser(tree_sitter.Language(tree_sitter_ruby.language())).parse(sys.stdin.buffer.read())")
    child = subprocess.run([sys.executable, "-c", code], input=source, capture_output=True, check=False)
    return child.returncode < 0


def skip_lines(stderr: str) -> list[str]:
    return sorted(line for line in stderr.splitlines() if "skipped (" in line)


@pytest.fixture(scope="module")
def hostile_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A plain folder (no git) holding every kind of hostile file."""
    root = tmp_path_factory.mktemp("hostile") / "tree"
    rng = random.Random(9)
    files: dict[str, bytes] = {
        "random.py": rng.randbytes(9000),
        "random_no_nul.c": bytes(rng.randrange(1, 256) for _ in range(9000)),
        "nul.py": b"x = 1\n\0\0\0\n",
        "invalid_utf8.py": b"def f():\n    return '\xff\xfe\xc3'\n",
        "bom_crlf_cr.py": b"\xef\xbb\xbfdef a():\r\n    return 1\r\n\rdef b():\r    pass\r\n",
        "only_cr.py": b"x = 1\r" * 3000,
        "minified.js": b"var a=" + b"1+" * 10_000_000 + b"1;\n",  # 20 MB on one line
        "late_long_line.js": b"var a = 1;\n" * 800 + b"var b = '" + b"x" * 900_000 + b"';\n",
        "deep.py": b"x = " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
        "deep_lines.rb": b"def deep\n  x = " + b"[\n" * 10_000 + b"]\n" * 10_000 + b"end\n",
        "many_lines.py": b"x = 1\n" * 100_000,
        "empty.py": b"",
        "with space.py": b"a = 1\n",
        "ünïcödé/fïlé.py": b"b = 2\n",
        "new\nline.py": b"c = 3\n",
        "sub/ok.py": b"def ok():\n    return 1\n",
        "stray_parens.py": b"(\n" * 30_000,  # tree-sitter's query cursor is quadratic in an ERROR node's children
        "garbage.rb": GARBAGE,  # the Ruby grammar segfaults on it
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    os.symlink("loop_b.py", root / "loop_a.py")
    os.symlink("loop_a.py", root / "loop_b.py")
    os.symlink("missing.py", root / "dangling.py")
    outside = root.parent / "outside.py"
    outside.write_text("OUTSIDE = 1\n")
    os.symlink(outside, root / "out.py")
    os.symlink(root.parent, root / "up")  # a folder link out of the root: never entered
    os.symlink("sub/ok.py", root / "link_in.py")
    os.mkfifo(root / "fifo.py")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "socket.py"))
    yield root
    server.close()


def test_hostile_files_are_skipped_once_each_and_the_rest_packed(hostile_tree: Path) -> None:
    before = snapshot(hostile_tree)
    result = ctxpack("build", str(hostile_tree), "-b", "8000", "-f", "json", "-v")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    kept = {"invalid_utf8.py", "bom_crlf_cr.py", "late_long_line.js", "deep_lines.rb", "many_lines.py",
            "with space.py", "ünïcödé/fïlé.py", "new\nline.py", "sub/ok.py", "link_in.py", "empty.py",
            "stray_parens.py", "garbage.rb"}
    assert report["files_considered"] == len(kept)
    assert {c["path"] for c in report["chunks"]} <= kept
    assert 0 < report["tokens"] <= 8000
    assert "### new\\nline.py\n" in report["text"]  # a newline in a name cannot forge a heading
    assert skip_lines(result.stderr) == sorted(f"ctxpack: INFO: skipped ({reason}): {path}" for reason, path in [
        ("binary", "nul.py"), ("binary", "random.py"), ("binary", "random_no_nul.c"),
        ("broken link", "dangling.py"), ("broken link", "loop_a.py"), ("broken link", "loop_b.py"),
        ("link out of root", "out.py"), ("minified", "deep.py"), ("minified", "only_cr.py"),
        ("not a regular file", "fifo.py"), ("not a regular file", "socket.py"), ("too large", "minified.js"),
    ])
    assert "skipped 3 file(s): binary" in result.stderr
    assert "stray_parens.py: too damaged to read as python; using blocks" in result.stderr
    if ruby_grammar_crashes_on(GARBAGE):  # the build survives it: the file is read as blocks
        assert "garbage.rb: the ruby parser crashed on this file; using blank-line blocks" in result.stderr
    stats = json.loads(ctxpack("stats", str(hostile_tree), "--json").stdout)
    assert stats["skipped"] == {"binary": 3, "broken link": 3, "link out of root": 1, "minified": 2,
                                "not a regular file": 2, "too large": 1}
    assert snapshot(hostile_tree) == before
    shutil.rmtree(hostile_tree / ".ctxpack")


def test_unreadable_files_are_skipped_with_one_warning(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "r", {"a.py": "def a():\n    return 1\n", "locked.py": "LOCKED = 1\n"})
    (repo / "locked.py").chmod(0)
    (repo / "plain").mkdir()
    (repo / "plain" / "b.py").write_text("B = 2\n")
    (repo / "plain" / "b.py").chmod(0)
    result = ctxpack("build", str(repo), "-b", "2000", "-f", "json", "--no-cache", as_owner=True)
    assert result.returncode == 0, result.stderr
    assert {c["path"] for c in json.loads(result.stdout)["chunks"]} == {"a.py"}
    assert skip_lines(result.stderr) == ["ctxpack: WARNING: skipped (unreadable): locked.py",
                                         "ctxpack: WARNING: skipped (unreadable): plain/b.py"]


def test_files_that_vanish_or_turn_into_fifos_after_the_walk(tmp_path: Path, monkeypatch) -> None:
    repo = init_repo(tmp_path / "r", {f"m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(4)})

    def walk_then_tamper(*args, **kwargs):  # the real walk, then the race lands between walk and read
        result = walk(*args, **kwargs)
        result.taken.clear()  # as if the walk had kept nothing: the scan stats and reads each file itself
        (repo / "m1.py").unlink()
        (repo / "m2.py").unlink()
        os.mkfifo(repo / "m2.py")  # opening this for reading would block forever
        return result

    monkeypatch.setattr(pipeline, "walk", walk_then_tamper)
    corpus = pipeline.collect(repo, load_config(repo), use_cache=False)
    assert [f.path for f in corpus.files] == ["m0.py", "m3.py"]
    assert corpus.skipped == {"vanished": ["m1.py"], "unreadable": ["m2.py"]}


def test_hostile_repositories(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    pack = context_pack.build(empty, budget=1000, use_cache=False)
    assert pack.chunks == [] and pack.text == ""

    no_commits = tmp_path / "no_commits"
    no_commits.mkdir()
    git(no_commits, "init", "-q")
    (no_commits / "staged.py").write_text("def staged():\n    return 1\n")
    (no_commits / "loose.py").write_text("def loose():\n    return 2\n")
    git(no_commits, "add", "staged.py")
    assert {c.chunk.path for c in context_pack.build(no_commits, budget=1000).chunks} == {"loose.py", "staged.py"}

    origin = init_repo(tmp_path / "origin", {f"pkg/m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(5)})
    (origin / "pkg/m1.py").write_text("def f1():\n    return 'changed'\n")
    git(origin, "commit", "-q", "-am", "second", date="2024-02-01T00:00:00+00:00")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{origin}", str(shallow)], check=True)
    assert git(shallow, "rev-parse", "--is-shallow-repository").strip() == "true"
    assert len(context_pack.build(shallow, budget=1000).chunks) == 5

    git(origin, "checkout", "-q", "--detach", "HEAD~1")
    detached = context_pack.build(origin, budget=1000, use_cache=False).to_json_dict()
    assert "return 1" in detached["text"] and "changed" not in detached["text"]
    git(origin, "checkout", "-q", "main")

    with_sub = init_repo(tmp_path / "with_sub", {"main.py": "import pkg\n"})
    git(with_sub, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(origin), "vendored_lib")
    git(with_sub, "commit", "-q", "-m", "submodule")
    nested = init_repo(with_sub / "nested_repo", {"n.py": "N = 1\n"})
    assert nested.is_dir()
    result = walk(with_sub)
    assert [f.path for f in result.files] == ["main.py"]
    assert result.skipped["submodule"] == ["nested_repo", "vendored_lib"]

    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(origin), str(bare)], check=True)
    for path in (bare, origin / ".git", origin / ".git" / "refs"):
        result = run_cli("build", str(path))
        assert result.returncode == 1, (path, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
        assert "bare git repository" in result.stderr or "inside a git directory" in result.stderr


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and b"context_pack" in _cmdline(int(entry.name)):  # a parser, not git
                found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_killed_build_leaves_no_parser_processes(stdlib_part: Path, tmp_path: Path) -> None:
    repo = tmp_path / "copy"
    subprocess.run(["git", "clone", "-q", str(stdlib_part), str(repo)], check=True)
    build = subprocess.Popen([sys.executable, "-m", "context_pack", "build", str(repo), "--no-cache"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    deadline = time.monotonic() + MINUTE
    while not workers and build.poll() is None and time.monotonic() < deadline:
        workers = children_of(build.pid) - {build.pid}
        time.sleep(0.01)
    build.send_signal(signal.SIGKILL)
    build.wait()
    assert workers, "the build ended before its parse workers could be seen"
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in workers):
        assert time.monotonic() < deadline, f"parse workers outlived their build: {workers}"
        time.sleep(0.05)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def expected_pack(repo: Path) -> dict:
    return context_pack.build(repo, budget=2500, query="json decoder", use_cache=False).to_json_dict()


def build_json(repo: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return ctxpack("build", str(repo), "-b", "2500", "-q", "json decoder", "-f", "json", **kwargs)


def assert_index_sound(repo: Path) -> None:
    db = sqlite3.connect(f"file:{repo / '.ctxpack' / 'index.db'}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()


def test_disk_full_while_creating_and_while_updating_the_index(stdlib_part: Path, tmp_path: Path) -> None:
    repo = tmp_path / "copy"
    subprocess.run(["git", "clone", "-q", str(stdlib_part), str(repo)], check=True)
    user_files = snapshot(repo)
    expected = expected_pack(repo)

    full = build_json(repo, limit_file_size=1024)  # the disk is full from the first page on
    assert full.returncode == 0, full.stderr
    assert "in-memory index" in full.stderr
    assert json.loads(full.stdout) == expected
    healthy = build_json(repo)
    assert healthy.returncode == 0 and json.loads(healthy.stdout) == expected
    assert "rebuilding" not in healthy.stderr
    assert_index_sound(repo)

    # Change many files, then let the update hit the limit part-way through its transaction.
    for path in sorted(repo.glob("json/*.py")) + sorted(repo.glob("email/*.py"))[:10]:
        path.write_text(path.read_text() + "\n# changed\n")
    user_files = snapshot(repo)
    expected = expected_pack(repo)
    partial = build_json(repo, limit_file_size=40 * 1024)  # room for the 32 KB -shm file, not for the WAL
    assert partial.returncode == 0, partial.stderr
    assert "could not update the index" in partial.stderr
    assert json.loads(partial.stdout) == expected
    assert_index_sound(repo)
    after = build_json(repo)
    assert after.returncode == 0 and json.loads(after.stdout) == expected
    assert_index_sound(repo)
    assert snapshot(repo) == user_files


def test_read_only_repository(tmp_path: Path) -> None:
    files = {f"pkg/m{i}.py": f"import json\n\n\ndef decode_{i}(text):\n    return json.loads(text)\n" for i in range(6)}
    fresh = init_repo(tmp_path / "fresh", files)  # no index yet
    indexed = init_repo(tmp_path / "indexed", files)
    context_pack.build(indexed, budget=2500)
    (indexed / "pkg/m0.py").write_text("def decoder_changed():\n    return 0\n")  # the index is stale too
    for repo in (fresh, indexed):
        expected = expected_pack(repo)
        subprocess.run(["chmod", "-R", "a-w", str(repo)], check=True)
        before = snapshot(repo)
        index_before = snapshot(repo / ".ctxpack") if (repo / ".ctxpack").exists() else None
        result = build_json(repo, as_owner=True)
        assert result.returncode == 0, result.stderr
        assert "in-memory index" in result.stderr
        assert json.loads(result.stdout) == expected
        assert snapshot(repo) == before
        if index_before is None:
            assert not (repo / ".ctxpack").exists()
        else:
            assert snapshot(repo / ".ctxpack") == index_before  # not even the index was written
        subprocess.run(["chmod", "-R", "u+w", str(repo)], check=True)

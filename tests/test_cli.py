"""The CLI through a subprocess, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli


def test_build_formats_and_json_contract(example_repo: Path, tokenizer) -> None:
    texts = {}
    for fmt in ("md", "xml", "plain"):
        result = run_cli("build", str(example_repo), "--budget", "2k", "--format", fmt)
        assert result.returncode == 0, result.stderr
        assert 0 < tokenizer.count(result.stdout) <= 2048
        texts[fmt] = result.stdout
    assert texts["md"].startswith("# Repository: repo\n") and "```" in texts["md"]
    assert texts["xml"].startswith("<repository") and "<file path=" in texts["xml"]
    assert "=== " in texts["plain"]

    result = run_cli("build", str(example_repo), "--budget", "2k", "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"version", "root", "budget", "tokens", "tokenizer", "query", "text", "chunks",
                           "files_considered", "chunks_considered", "redactions"}
    assert report["redactions"] == []
    assert report["version"] == 1 and report["budget"] == 2048 and report["query"] is None
    assert report["tokenizer"] == "tiktoken:cl100k_base"
    assert report["text"] == texts["md"]
    assert report["tokens"] == tokenizer.count(report["text"]) <= 2048
    assert report["files_considered"] >= 15 and report["chunks_considered"] > len(report["chunks"]) > 0
    keys = {"path", "start_line", "end_line", "mode", "section", "kind", "name", "language", "tokens", "score",
            "features"}
    for chunk in report["chunks"]:
        assert set(chunk) == keys
        assert chunk["mode"] in ("full", "signature") and chunk["section"] == "main"
        assert set(chunk["features"]) == {"definitions", "tests", "todo", "recency", "centrality", "query",
                                          "focus"}
        assert (example_repo / chunk["path"]).is_file()
    order = [(c["path"], c["start_line"]) for c in report["chunks"]]
    assert order == sorted(order)


def test_build_is_deterministic_through_the_cli(example_repo: Path) -> None:
    first = run_cli("build", str(example_repo), "-b", "3000", "-f", "json")
    second = run_cli("build", str(example_repo), "-b", "3000", "-f", "json")
    assert first.returncode == 0 and first.stdout == second.stdout


def test_output_file_and_query_file(example_repo: Path, tmp_path: Path) -> None:
    query = tmp_path / "issue.txt"
    query.write_text("bulk discount is wrong")
    out = tmp_path / "pack.md"
    result = run_cli("build", str(example_repo), "-b", "1500", "--query-file", str(query), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert out.read_text().startswith("# Repository: repo")


def test_usage_errors_exit_2_with_one_line(example_repo: Path, tmp_path: Path) -> None:
    cases = [
        ("build", str(tmp_path / "missing")),
        ("build", str(example_repo), "--budget", "lots"),
        ("build", str(example_repo), "--budget", "0"),
        ("build", str(example_repo), "--budget", "-5"),
        ("build", str(example_repo), "--format", "yaml"),
        ("build", str(example_repo), "--no-such-flag"),
        ("build", str(example_repo), "--focus", "nope.py"),
        ("build", str(example_repo), "--query-file", str(tmp_path / "missing.txt")),
        ("explain", str(tmp_path / "missing")),
    ]
    for args in cases:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("ctxpack: error: "), (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert result.stdout == ""


def test_work_failure_exits_1(example_repo: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "dir-not-file"
    blocked.mkdir()
    result = run_cli("build", str(example_repo), "-b", "1k", "-o", str(blocked))
    assert result.returncode == 2  # click rejects a directory for --output: a usage error
    bad_config = tmp_path / "badcfg"
    bad_config.mkdir()
    (bad_config / "a.py").write_text("x = 1\n")
    (bad_config / ".ctxpack.toml").write_text("budget = [\n")
    result = run_cli("build", str(bad_config))
    assert result.returncode == 1
    assert result.stderr.startswith("ctxpack: error: cannot read")


def test_tiny_budget_is_a_valid_nearly_empty_pack(example_repo: Path) -> None:
    result = run_cli("build", str(example_repo), "--budget", "3", "-f", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tokens"] <= 3 and report["chunks"] == [] and report["text"] == ""


def test_budget_suffixes(example_repo: Path) -> None:
    result = run_cli("build", str(example_repo), "--budget", "1K", "-f", "json")
    assert json.loads(result.stdout)["budget"] == 1024


def test_explain_shows_every_feature(example_repo: Path) -> None:
    result = run_cli("explain", str(example_repo), "--top", "5")
    assert result.returncode == 0, result.stderr
    for name in ("defini", "tests", "todo", "recenc", "centra", "query", "focus", "score"):
        assert name in result.stdout
    assert result.stdout.count("│") > 20


def test_help_has_examples() -> None:
    for args in (("--help",), ("build", "--help"), ("explain", "--help")):
        result = run_cli(*args)
        assert result.returncode == 0
        assert "Examples:" in result.stdout and "ctxpack" in result.stdout


def test_verbose_reports_timings_on_stderr_only(tmp_path: Path) -> None:
    from conftest import make_repo

    repo = make_repo(tmp_path / "repo")  # its own: the shared example may hold this pack already
    verbose = run_cli("build", str(repo), "-b", "2k", "-v")
    quiet = run_cli("build", str(repo), "-b", "2k")
    assert verbose.stdout == quiet.stdout
    assert "parse" in verbose.stderr and "skipped" in verbose.stderr
    # Nothing changed since: the pack cached in the index answers, and -v says so.
    again = run_cli("build", str(repo), "-b", "2k", "-v")
    assert again.stdout == quiet.stdout
    assert "cached pack" in again.stderr and "parse" not in again.stderr and "skipped" in again.stderr


def test_index_and_stats_commands(tmp_path: Path) -> None:
    from conftest import init_repo

    repo = init_repo(tmp_path / "r", {"a.py": "def a():\n    return 1\n", "b.md": "# b\n", "yarn.lock": "x\n"})
    first = run_cli("index", str(repo))
    assert first.returncode == 0, first.stderr
    assert "indexed 2 files" in first.stdout and "2 parsed" in first.stdout
    second = run_cli("index", str(repo))
    assert "0 parsed, 2 unchanged" in second.stdout
    stats = run_cli("stats", str(repo), "--json")
    figures = json.loads(stats.stdout)
    assert figures["files"] == 2 and figures["walked"] == 2
    assert figures["languages"] == {"markdown": 1, "python": 1}
    assert figures["skipped"] == {"lock file": 1}
    text = run_cli("stats", str(repo))
    assert "1 lock file" in text.stdout
    assert figures["state"] == "current" and "state:     current" in text.stdout


def test_stats_reports_a_stale_index_without_changing_it(tmp_path: Path) -> None:
    """Other chunking settings make the index stale: stats says so and leaves it as it is (a build would
    empty it); with no index it says none and makes none."""
    from conftest import init_repo

    repo = init_repo(tmp_path / "r", {"a.py": "def a():\n    return 1\n", "b.py": "def b():\n    return 2\n"})
    none = json.loads(run_cli("stats", str(repo), "--json").stdout)
    assert none["state"] == "none" and none["files"] == 0 and not (repo / ".ctxpack").exists()
    assert run_cli("index", str(repo)).returncode == 0
    db = repo / ".ctxpack" / "index.db"
    (repo / ".ctxpack.toml").write_text("class_split_lines = 7\n")
    before = db.read_bytes()
    stale = json.loads(run_cli("stats", str(repo), "--json").stdout)
    assert stale["state"] == "stale" and stale["files"] == 2 and stale["languages"] == {"python": 2}
    assert "the next build parses every file again" in run_cli("stats", str(repo)).stdout
    assert db.read_bytes() == before
    assert run_cli("index", str(repo)).returncode == 0
    assert json.loads(run_cli("stats", str(repo), "--json").stdout)["state"] == "current"

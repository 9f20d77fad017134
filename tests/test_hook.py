"""`--staged` and the pre-commit hooks: real git repos, real `git commit`, the real pre-commit framework."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import context_pack
from conftest import REPO, git, init_repo, run_cli
from context_pack.staged import parse_diff

HELPER = "def helper(value):\n    total = value + 1\n    return total\n"
FILES = {
    "pkg/__init__.py": "",
    "pkg/core.py": "import os\n\n\n" + HELPER + "\n\ndef untouched():\n    return os.sep\n",
    "pkg/use.py": "from pkg.core import helper\n\n\ndef caller(items):\n    return [helper(i) for i in items]\n",
    "pkg/far.py": "".join(f"def far_{i}(a, b):\n    return a * {i} + b\n\n\n" for i in range(60)),
    "tests/test_core.py": "from pkg.core import helper\n\n\ndef test_helper():\n    assert helper(1) == 2\n",
}
CHANGED_LINE = "    total = value + 2  # the staged change\n"


def stage_change(repo: Path) -> None:
    core = repo / "pkg/core.py"
    core.write_text(core.read_text().replace("    total = value + 1\n", CHANGED_LINE))
    git(repo, "add", "pkg/core.py")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo", FILES)


def test_parse_diff_finds_files_and_touched_lines() -> None:
    diff = ("diff --git a/x.py b/x.py\nindex 1..2 100644\n--- a/x.py\n+++ b/x.py\n@@ -1,4 +1,5 @@\n a\n-b\n+B\n+C\n"
            " d\n e\ndiff --git a/gone.py b/gone.py\ndeleted file mode 100644\nindex 3..0\n--- a/gone.py\n"
            "+++ /dev/null\n@@ -1 +0,0 @@\n-x\n")
    change = parse_diff(diff)
    assert change.files == ["x.py"] and change.deleted == ["gone.py"]
    assert change.lines == {"x.py": [(2, 3)]}


def test_staged_pack_puts_the_diff_first_and_centres_on_the_change(repo: Path, tokenizer) -> None:
    stage_change(repo)
    pack = context_pack.build(repo, budget=700, staged=True)
    assert pack.text.startswith("# Repository: repo\n\n## Staged change\n\n```diff\n")
    diff_end = pack.text.index("## Code around the change")
    assert "+" + CHANGED_LINE in pack.text[:diff_end]
    chosen = {(p.chunk.path, p.chunk.name): p for p in pack.chunks}
    assert chosen[("pkg/core.py", "helper")].mode == "full"  # the changed function, whole
    assert ("pkg/use.py", "caller") in chosen  # its caller
    assert ("tests/test_core.py", "test_helper") in chosen  # the test that covers it
    assert CHANGED_LINE in pack.text[diff_end:]
    far = [p for p in pack.chunks if p.chunk.path == "pkg/far.py"]
    assert len(far) < 60  # the unrelated module does not crowd the change out
    assert tokenizer.count(pack.text) == pack.tokens <= 700
    report = pack.to_json_dict()
    assert report["staged"]["files"] == ["pkg/core.py"] and report["staged"]["diff_tokens"] > 0


def test_a_large_diff_is_cut_to_its_share_and_the_pack_stays_in_budget(repo: Path, tokenizer) -> None:
    (repo / "pkg/huge.py").write_text("".join(f"VALUE_{i} = {i} * {i}\n" for i in range(3000)))
    git(repo, "add", "pkg/huge.py")
    for budget in (300, 1000, 4000):
        pack = context_pack.build(repo, budget=budget, staged=True)
        assert tokenizer.count(pack.text) == pack.tokens <= budget
        assert "⋮ diff cut here:" in pack.text
        assert pack.staged is not None and int(pack.staged["diff_tokens"]) <= 0.6 * budget


def test_staged_outside_git_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    result = run_cli("build", str(tmp_path), "--staged")
    assert result.returncode == 1
    assert result.stderr.startswith("ctxpack: error: --staged needs a git work tree") and result.stderr.count("\n") == 1


def test_hook_run_writes_the_pack_and_never_fails_unless_strict(repo: Path, tmp_path: Path) -> None:
    result = run_cli("hook", "run", str(repo))
    assert result.returncode == 0 and "nothing staged" in result.stdout
    assert not (repo / ".ctxpack/pack.md").exists()

    stage_change(repo)
    result = run_cli("hook", "run", str(repo), "--budget", "800")
    assert result.returncode == 0, result.stderr
    pack = (repo / ".ctxpack/pack.md").read_text(encoding="utf-8")
    assert "## Staged change" in pack and "def caller(items):" in pack

    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    lenient = run_cli("hook", "run", str(outside))
    assert lenient.returncode == 0 and "warning: no pack for this commit" in lenient.stderr
    strict = run_cli("hook", "run", str(outside), "--strict")
    assert strict.returncode == 1 and strict.stderr.startswith("ctxpack: error:")


def test_hook_install_writes_a_plain_git_hook_that_runs_on_commit(repo: Path) -> None:
    result = run_cli("hook", "install", str(repo), "--budget", "900")
    assert result.returncode == 0, result.stderr
    hook = repo / ".git/hooks/pre-commit"
    assert os.access(hook, os.X_OK)
    again = run_cli("hook", "install", str(repo))
    assert again.returncode == 1 and "already exists" in again.stderr and "--force" in again.stderr
    assert run_cli("hook", "install", str(repo), "--force", "--budget", "900").returncode == 0

    stage_change(repo)
    git(repo, "commit", "-q", "-m", "change helper")
    assert git(repo, "log", "--format=%s", "-1").strip() == "change helper"
    pack = (repo / ".ctxpack/pack.md").read_text(encoding="utf-8")
    assert "+" + CHANGED_LINE in pack and "def caller(items):" in pack
    assert git(repo, "status", "--porcelain").strip() == ""  # the pack is not part of the repo


def _project_commit() -> str:
    """The commit of this project that pre-commit installs: HEAD, which must hold the hooks file."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    listed = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", "HEAD", ".pre-commit-hooks.yaml"],
                            capture_output=True, text=True, check=True)
    assert listed.stdout.strip() == ".pre-commit-hooks.yaml", "commit .pre-commit-hooks.yaml first"
    return head.stdout.strip()


def test_pre_commit_framework_runs_the_hook_on_a_real_commit(repo: Path, tokenizer) -> None:
    budget = 1200
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {REPO}\n    rev: {_project_commit()}\n    hooks:\n      - id: ctxpack\n"
        f"        args: [--budget, '{budget}']\n", encoding="utf-8")
    git(repo, "add", ".pre-commit-config.yaml")
    git(repo, "commit", "-q", "-m", "pre-commit config")
    # pre-commit keeps its hook environments here, so a second run re-uses the one it built.
    env = _pre_commit_env()
    subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=repo, env=env, check=True,
                   capture_output=True)

    stage_change(repo)
    commit = subprocess.run(["git", "commit", "-m", "change helper"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=1200)
    assert commit.returncode == 0, commit.stdout + commit.stderr
    assert "ctxpack (pack the staged change)" in commit.stdout + commit.stderr
    assert git(repo, "log", "--format=%s", "-1").strip() == "change helper"
    pack = (repo / ".ctxpack/pack.md").read_text(encoding="utf-8")
    assert "+" + CHANGED_LINE in pack
    assert HELPER.replace("    total = value + 1\n", CHANGED_LINE) in pack  # the changed function whole
    assert "def caller(items):" in pack
    assert tokenizer.count(pack) <= budget


def test_review_hook_prints_the_model_review_and_blocks_only_on_fail_on(repo: Path, llama_server) -> None:
    stage_change(repo)
    review = run_cli("hook", "review", str(repo), "--backend", llama_server.url, "--max-tokens", "16")
    assert review.returncode == 0, review.stderr
    assert review.stdout.startswith(f"ctxpack review by {llama_server.url}:")
    prompt, window = (int(n) for n in re.findall(r"\[(\d+) prompt tokens of a (\d+)-token window", review.stdout)[0])
    assert window == llama_server.n_ctx and prompt + 16 <= window

    blocked = run_cli("hook", "review", str(repo), "--backend", llama_server.url, "--max-tokens", "16",
                      "--fail-on", "(?s).")
    assert blocked.returncode == 1 and "commit refused" in blocked.stderr


def test_review_hook_with_no_server_warns_and_fails_only_when_strict(repo: Path) -> None:
    stage_change(repo)
    nowhere = f"http://127.0.0.1:{_free_port()}"
    lenient = run_cli("hook", "review", str(repo), "--backend", nowhere, "--timeout", "5")
    assert lenient.returncode == 0 and "warning: no review" in lenient.stderr
    strict = run_cli("hook", "review", str(repo), "--backend", nowhere, "--timeout", "5", "--strict")
    assert strict.returncode == 1 and strict.stderr.startswith("ctxpack: error:") and strict.stderr.count("\n") == 1
    unset = run_cli("hook", "review", str(repo))
    assert unset.returncode == 0 and "no model server configured" in unset.stderr
    bad = run_cli("hook", "review", str(repo), "--backend", nowhere, "--fail-on", "(")
    assert bad.returncode == 2 and "bad --fail-on pattern" in bad.stderr


def test_pre_commit_review_hook_against_a_real_llama_server(repo: Path, llama_server) -> None:
    def configure(extra: str) -> None:
        (repo / ".pre-commit-config.yaml").write_text(
            f"repos:\n  - repo: {REPO}\n    rev: {_project_commit()}\n    hooks:\n      - id: ctxpack-review\n"
            f"        args: [--backend, '{llama_server.url}', --max-tokens, '16'{extra}]\n", encoding="utf-8")
        git(repo, "add", ".pre-commit-config.yaml")

    env = _pre_commit_env()
    configure("")
    git(repo, "commit", "-q", "-m", "pre-commit config", "--no-verify")
    subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=repo, env=env, check=True,
                   capture_output=True)
    stage_change(repo)
    commit = subprocess.run(["git", "commit", "-m", "reviewed"], cwd=repo, env=env, capture_output=True, text=True,
                            timeout=1200)
    output = commit.stdout + commit.stderr
    assert commit.returncode == 0, output
    assert f"ctxpack review by {llama_server.url}:" in output  # verbose: true shows a passing hook's review
    assert git(repo, "log", "--format=%s", "-1").strip() == "reviewed"

    configure(", --fail-on, '(?s).'")
    (repo / "pkg/use.py").write_text(FILES["pkg/use.py"] + "\n\ndef second(items):\n    return caller(items)\n")
    git(repo, "add", "pkg/use.py")
    refused = subprocess.run(["git", "commit", "-m", "refused"], cwd=repo, env=env, capture_output=True, text=True,
                             timeout=1200)
    assert refused.returncode != 0 and "commit refused" in refused.stdout + refused.stderr
    assert git(repo, "log", "--format=%s", "-1").strip() == "reviewed"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pre_commit_env() -> dict[str, str]:
    # pre-commit keeps its hook environments here, so a later run re-uses the one it built for this commit.
    cache = Path(os.environ.get("CTXPACK_CI_CACHE", Path.home() / ".cache" / "ctxpack-ci"))
    return {**os.environ, "PRE_COMMIT_HOME": str(cache / "pre-commit"), **_git_identity()}


def _git_identity() -> dict[str, str]:
    return {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com"}


def test_the_staged_diff_is_redacted_and_leaves_secret_files_out(repo: Path) -> None:
    key = "AKIAZ3MPLQ7RT2XW9KJD"
    (repo / ".env").write_text(f"DATABASE_PASSWORD=hunter2-{key}\n")
    (repo / "pkg/settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{key}"\nREGION = "eu-west-1"\n')
    git(repo, "add", "-f", ".env", "pkg/settings.py")
    pack = context_pack.build(repo, budget=2000, staged=True)
    assert key not in pack.text and "hunter2" not in pack.text
    assert "+REGION = " in pack.text  # the rest of the change is there
    assert pack.staged is not None
    assert pack.staged["secret_files_left_out"] == [".env"]
    assert pack.staged["diff_redactions"] and all(key not in str(r) for r in pack.staged["diff_redactions"])

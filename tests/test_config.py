from __future__ import annotations

from pathlib import Path

import pytest

import context_pack
from context_pack.config import DEFAULT_WEIGHTS, load_config, parse_budget
from context_pack.errors import CtxpackError, UsageError


def test_parse_budget() -> None:
    assert parse_budget("32k") == 32768
    assert parse_budget("8000") == 8000
    assert parse_budget("1m") == 1024 * 1024
    assert parse_budget(" 2K ") == 2048
    assert parse_budget(500) == 500
    for bad in ("", "k", "1.5k", "-1", "0", "12g", True):
        with pytest.raises(UsageError):
            parse_budget(bad)


def test_pyproject_and_dot_file_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ctxpack]\nbudget = "4k"\nexclude = ["docs/**"]\n[tool.ctxpack.weights]\ntests = -1.0\n'
    )
    config = load_config(tmp_path)
    assert config.budget == 4096 and config.exclude == ("docs/**",) and config.weights["tests"] == -1.0
    assert config.weights["definitions"] == DEFAULT_WEIGHTS["definitions"]
    assert load_config(tmp_path, {"budget": 100}).budget == 100  # arguments win
    (tmp_path / ".ctxpack.toml").write_text("max_file_size = 2000\n")
    assert load_config(tmp_path).max_file_size == 2000  # the dot file is read instead of pyproject


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".ctxpack.toml").write_text("colour = 'blue'\n")
    with pytest.raises(CtxpackError, match="unknown ctxpack setting 'colour'"):
        load_config(tmp_path)
    (tmp_path / ".ctxpack.toml").write_text("[weights]\nmagic = 1\n")
    with pytest.raises(CtxpackError, match="unknown weight"):
        load_config(tmp_path)


def test_library_build_uses_config_and_overrides(example_repo: Path) -> None:
    pack = context_pack.build(example_repo, budget="1k", config={"exclude": ["polyglot/**"]})
    assert pack.budget == 1024 and pack.tokens <= 1024
    assert all(not p.chunk.path.startswith("polyglot/") for p in pack.chunks)
    assert isinstance(pack.chunks[0], context_pack.PackedChunk)
    with pytest.raises(UsageError):
        context_pack.build(example_repo / "missing")

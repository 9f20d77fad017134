"""Configuration: defaults, `[tool.ctxpack]` in pyproject.toml or `.ctxpack.toml`, then explicit overrides."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import CtxpackError, UsageError
from .tokens import DEFAULT_TOKENIZER, resolve_spec_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# With a query, relevance (and graph proximity to what is relevant, inside `query`) dominates; without
# one, centrality, definitions and recency decide. Every feature is in [0, 1].
DEFAULT_WEIGHTS: dict[str, float] = {
    "definitions": 0.1,
    "tests": -0.2,
    "todo": 0.0,
    "recency": 0.1,
    "centrality": 0.2,
    "query": 3.0,
    "focus": 2.0,
}

_BUDGET_RE = re.compile(r"^\s*(\d+)\s*([kKmM]?)\s*$")


def parse_budget(value: int | str) -> int:
    """`32k` = 32768 and `1m` = 1048576, as model context windows are counted; plain integers as they are."""
    if isinstance(value, bool):
        raise UsageError(f"bad budget {value!r}")
    if isinstance(value, int):
        number = value
    else:
        match = _BUDGET_RE.match(str(value))
        if not match:
            raise UsageError(f"bad budget {value!r}: expected an integer, optionally with k or m (e.g. 32k)")
        number = int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]
    if number < 1:
        raise UsageError(f"bad budget {value!r}: must be at least 1 token")
    return number


@dataclass(frozen=True)
class Config:
    budget: int = 32 * 1024
    format: str = "md"
    tokenizer: str = DEFAULT_TOKENIZER
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_file_size: int = 1_000_000  # bytes
    class_split_lines: int = 60  # a class longer than this becomes a header chunk plus one chunk per member
    block_max_lines: int = 40  # blank-line blocks (and gaps between definitions) are cut at this size
    redact: bool = True  # skip secret files and redact secrets in content; off only by the caller (--no-redact)
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    pack_file: str = ".ctxpack/pack.md"  # where the pre-commit hook writes the staged change's pack
    backend: str = ""  # the model server the review hook asks (llama.cpp or vLLM URL)
    backend_kind: str = "auto"
    model: str = ""
    review_fail_on: str = ""  # a regex: a review that matches it blocks the commit

    def with_overrides(self, **overrides: Any) -> Config:
        return _apply(self, {k: v for k, v in overrides.items() if v is not None}, source="arguments")


def _apply(config: Config, values: dict[str, Any], source: str) -> Config:
    known = {f.name for f in fields(Config)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        key = key.replace("-", "_")
        if key not in known:
            raise CtxpackError(f"{source}: unknown ctxpack setting {key!r}")
        if key == "budget":
            value = parse_budget(value)
        elif key in ("include", "exclude"):
            value = (value,) if isinstance(value, str) else tuple(str(v) for v in value)
        elif key == "weights":
            if not isinstance(value, dict):
                raise CtxpackError(f"{source}: weights must be a table")
            unknown = set(value) - set(DEFAULT_WEIGHTS)
            if unknown:
                raise CtxpackError(f"{source}: unknown weight(s) {', '.join(sorted(unknown))}")
            value = {**config.weights, **{k: float(v) for k, v in value.items()}}
        elif key == "tokenizer" and not isinstance(value, str):
            raise CtxpackError(f"{source}: tokenizer must be a spec such as {DEFAULT_TOKENIZER!r}")
        elif key == "redact":
            if not isinstance(value, bool):
                raise CtxpackError(f"{source}: redact must be true or false")
            if not value and source != "arguments":  # a file in the repository must not switch it off
                raise CtxpackError(f"{source}: redaction can only be turned off by the caller (--no-redact)")
        elif key in ("max_file_size", "class_split_lines", "block_max_lines") and (
            not isinstance(value, int) or value < 1
        ):
            raise CtxpackError(f"{source}: {key} must be a positive integer")
        changes[key] = value
    return replace(config, **changes)


def load_config(root: Path, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults < `.ctxpack.toml` or `[tool.ctxpack]` in pyproject.toml < overrides."""
    config = Config()
    dot_file = root / ".ctxpack.toml"
    pyproject = root / "pyproject.toml"
    if dot_file.is_file():
        config = _apply(config, _read_toml(dot_file), source=str(dot_file.name))
    elif pyproject.is_file():
        section = _read_toml(pyproject).get("tool", {}).get("ctxpack", {})
        if section:
            config = _apply(config, section, source="pyproject.toml [tool.ctxpack]")
    # A tokenizer path written in the repo's config is relative to the repo, not to where ctxpack runs.
    config = replace(config, tokenizer=resolve_spec_path(config.tokenizer, root))
    return config.with_overrides(**(overrides or {}))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CtxpackError(f"cannot read {path}: {exc}") from exc

"""Repository-level facts that import resolution needs: Go module paths and TypeScript path aliases.

Read once per build from the few files that hold them (`go.mod`, `tsconfig.json` / `jsconfig.json`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

_GO_MODULE_RE = re.compile(r"^\s*module\s+(\S+)", re.MULTILINE)
_JSON_COMMENT_RE = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r",(\s*[}\]])")


@dataclass
class RepoFacts:
    go_modules: dict[str, str] = field(default_factory=dict)  # module path -> its directory ("" = root)
    ts_paths: list[tuple[str, list[str]]] = field(default_factory=list)  # alias pattern -> target patterns

    def fingerprint(self) -> str:
        """A stable text of the facts, for cache keys."""
        return json.dumps([sorted(self.go_modules.items()), self.ts_paths], separators=(",", ":"))


def read_repo_facts(root: Path, paths: list[str]) -> RepoFacts:
    facts = RepoFacts()
    for rel in paths:
        name = rel.rpartition("/")[2]  # the walk's paths are clean and relative; a path object per file costs
        if name == "go.mod":
            text = _read(root / rel)
            match = _GO_MODULE_RE.search(text)
            if match:
                parent = str(PurePosixPath(rel).parent)
                facts.go_modules[match.group(1)] = "" if parent == "." else parent
        elif name in ("tsconfig.json", "jsconfig.json") and "/" not in rel:
            facts.ts_paths.extend(_ts_paths(_read(root / rel)))
    return facts


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8", errors="replace")
    except OSError:
        return ""


def _ts_paths(text: str) -> list[tuple[str, list[str]]]:
    """`compilerOptions.paths`, resolved against `baseUrl`; tsconfig allows comments and trailing commas."""
    cleaned = _JSON_COMMENT_RE.sub(lambda m: m.group(1) or "", text)
    cleaned = _TRAILING_COMMA_RE.sub(r"\1", cleaned)
    try:
        options = json.loads(cleaned).get("compilerOptions", {})
    except (ValueError, AttributeError):
        return []
    base = str(options.get("baseUrl", ".")).strip("./")
    result = []
    for alias, targets in (options.get("paths") or {}).items():
        if isinstance(targets, list):
            joined = [str(PurePosixPath(base) / str(t).lstrip("./")) if base else str(t).lstrip("./")
                      for t in targets]
            result.append((str(alias), joined))
    return result

"""Resolve import facts to files of the repository: the edges of the import graph.

One resolver per language family. An import that names nothing in the repository (a third-party or
standard module) stays a fact on its chunk and adds no edge.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import PurePosixPath

from ..lang import name_and_suffix
from ..repo_facts import RepoFacts

JS_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")
JS_LANGUAGES = frozenset({"javascript", "typescript", "tsx"})


class PathIndex:
    """The repository's paths, looked up exactly, by directory, or by trailing components."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = set(paths)
        self.by_dir: dict[str, list[str]] = defaultdict(list)
        self.by_suffix: dict[str, list[str]] = defaultdict(list)
        self.dirs_by_suffix: dict[str, list[str]] = defaultdict(list)
        self.crates: dict[str, str] = {}  # Rust crate name -> the folder holding its lib.rs
        for path in sorted(self.paths):
            parts = path.split("/")
            self.by_dir["/".join(parts[:-1])].append(path)
            for i in range(len(parts)):
                self.by_suffix["/".join(parts[i:])].append(path)
            if parts[-1] == "lib.rs" and len(parts) >= 3 and parts[-2] == "src":
                self.crates.setdefault(parts[-3].replace("-", "_"), "/".join(parts[:-1]))
        for directory in self.by_dir:
            parts = directory.split("/")
            for i in range(len(parts)):
                self.dirs_by_suffix["/".join(parts[i:])].append(directory)

    def suffix(self, tail: str, near: str = "") -> str | None:
        """The path ending in `tail` (whole components); with several, the one closest to `near`."""
        candidates = self.by_suffix.get(tail.strip("/"), [])
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        return max(candidates, key=lambda c: (len(posixpath.commonprefix([c, near])), -len(c), c))


def resolve_imports(
    file_imports: Mapping[str, tuple[str, Iterable[str]]],
    facts: RepoFacts,
    namespaces: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, set[str]]:
    """Map each file to the repository files its imports name. `file_imports`: path -> (language, imports)."""
    index = PathIndex(file_imports)
    python_modules = _python_modules(p for p, (lang, _) in file_imports.items() if lang == "python")
    namespace_files: dict[str, set[str]] = defaultdict(set)
    for path, names in (namespaces or {}).items():
        for name in names:
            namespace_files[name].add(path)
    resolvers: dict[str, Callable[[str, str], Iterable[str]]] = {
        "python": lambda path, name: _python(path, name, python_modules),
        "go": lambda path, name: _go(name, facts, index),
        "rust": lambda path, name: _rust(path, name, index),
        "java": lambda path, name: _java(name, index),
        "c": lambda path, name: _c_include(path, name, index),
        "cpp": lambda path, name: _c_include(path, name, index),
        "ruby": lambda path, name: _ruby(path, name, index),
        "csharp": lambda path, name: sorted(namespace_files.get(name, ())),
        "php": lambda path, name: _php(path, name, index),
        "bash": lambda path, name: _relative_file(path, name, index, ("", ".sh", ".bash")),
    }
    for language in JS_LANGUAGES:
        resolvers[language] = lambda path, name: _javascript(path, name, facts, index)
    edges: dict[str, set[str]] = {}
    for path, (language, imports) in file_imports.items():
        resolver = resolvers.get(language)
        if resolver is None:
            continue
        targets: set[str] = set()
        for name in imports:
            targets.update(resolver(path, name))
        targets.discard(path)
        if targets:
            edges[path] = targets
    return edges


def _python_modules(paths: Iterable[str]) -> dict[str, str]:
    """Dotted module name -> file, for every plausible source root (`src/pkg/a.py` is `pkg.a` too)."""
    modules: dict[str, str] = {}
    for path in sorted(paths, key=lambda p: (p.count("/"), p)):
        suffix = name_and_suffix(path)[1]  # as PurePosixPath has it, without making one per file
        if suffix not in (".py", ".pyi"):
            continue
        plain = not (path.startswith(("/", "./")) or path.endswith(("/", "/.")) or "//" in path or "/./" in path)
        parts = path[:-len(suffix)].split("/") if plain else list(PurePosixPath(path).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        for start in range(len(parts)):
            modules.setdefault(".".join(parts[start:]), path)
    return modules


def _python(path: str, name: str, modules: Mapping[str, str]) -> list[str]:
    if name.startswith("."):
        level = len(name) - len(name.lstrip("."))
        package = PurePosixPath(path).parent
        for _ in range(level - 1):
            package = package.parent
        rest = name[level:]
        base = [] if str(package) == "." else list(package.parts)
        dotted = ".".join(base + ([rest] if rest else []))
        if not dotted:
            return []
        target = modules.get(dotted)
        return [target] if target else []
    target = modules.get(name)
    return [target] if target else []


def _go(name: str, facts: RepoFacts, index: PathIndex) -> list[str]:
    for module, directory in facts.go_modules.items():
        if name == module or name.startswith(module + "/"):
            rel = name[len(module):].strip("/")
            folder = "/".join(part for part in (directory, rel) if part)
            return [p for p in index.by_dir.get(folder, []) if p.endswith(".go") and not p.endswith("_test.go")]
    return []


def _rust(path: str, name: str, index: PathIndex) -> list[str]:
    here = PurePosixPath(path)
    segments = [s for s in name.replace("::", "/").split("/") if s and s != "*"]
    if not segments:
        return []
    if len(segments) == 1 and "::" not in name:  # `mod x;` (or an extern crate)
        base = here.parent if here.name in ("mod.rs", "lib.rs", "main.rs") else here.parent / here.stem
        return _first_existing(index, [f"{base / segments[0]}.rs", f"{base / segments[0]}/mod.rs"])
    head = segments[0]
    if head == "crate":
        base = _rust_crate_root(here, index)
        segments = segments[1:]
    elif head in index.crates:  # another crate of the workspace
        base = PurePosixPath(index.crates[head])
        segments = segments[1:]
        if not segments:
            return _first_existing(index, [f"{base}/lib.rs"])
    elif head in ("self", "super"):
        base = here.parent if here.name in ("mod.rs", "lib.rs", "main.rs") else here.parent / here.stem
        while segments and segments[0] in ("self", "super"):
            if segments[0] == "super":
                base = base.parent
            segments = segments[1:]
    else:
        return []
    for length in range(len(segments), 0, -1):  # the longest prefix that names a module file
        stem = base.joinpath(*segments[:length])
        found = _first_existing(index, [f"{stem}.rs", f"{stem}/mod.rs"])
        if found:
            return found
    return []


def _rust_crate_root(here: PurePosixPath, index: PathIndex) -> PurePosixPath:
    for parent in here.parents:
        if any(str(parent / root_file) in index.paths for root_file in ("lib.rs", "main.rs")):
            return parent
    return here.parent


def _java(name: str, index: PathIndex) -> list[str]:
    parts = name.split(".")
    for length in (len(parts), len(parts) - 1):  # a class, or a static member of one
        found = index.suffix("/".join(parts[:length]) + ".java") if length > 0 else None
        if found:
            return [found]
    for directory in index.dirs_by_suffix.get("/".join(parts), [])[:1]:  # a wildcard names a package
        return [f for f in index.by_dir[directory] if f.endswith(".java")]
    return []


def _c_include(path: str, name: str, index: PathIndex) -> list[str]:
    local = posixpath.normpath(posixpath.join(posixpath.dirname(path), name))
    if local in index.paths:
        return [local]
    found = index.suffix(name, near=path)
    return [found] if found else []


def _ruby(path: str, name: str, index: PathIndex) -> list[str]:
    relative = _relative_file(path, name, index, (".rb", ""))
    if relative:
        return relative
    found = index.suffix(name if name.endswith(".rb") else name + ".rb", near=path)
    return [found] if found else []


def _php(path: str, name: str, index: PathIndex) -> list[str]:
    if name.endswith(".php"):
        return _relative_file(path, name, index, ("",)) or ([f] if (f := index.suffix(name, path)) else [])
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    for start in range(len(parts)):  # PSR-4: the namespace prefix maps to some source folder
        found = index.suffix("/".join(parts[start:]) + ".php", near=path)
        if found:
            return [found]
    return []


def _javascript(path: str, name: str, facts: RepoFacts, index: PathIndex) -> list[str]:
    candidates: list[str] = []
    if name.startswith("."):
        candidates.append(posixpath.normpath(posixpath.join(posixpath.dirname(path), name)))
    else:
        for alias, targets in facts.ts_paths:
            prefix = alias.rstrip("*")
            if alias.endswith("*") and name.startswith(prefix):
                candidates.extend(t.replace("*", name[len(prefix):]) for t in targets)
            elif name == alias:
                candidates.extend(targets)
    for candidate in candidates:
        found = _first_existing(index, [candidate, *(candidate + ext for ext in JS_EXTENSIONS),
                                        *(f"{candidate}/index{ext}" for ext in JS_EXTENSIONS)])
        if found:
            return found
    return []


def _relative_file(path: str, name: str, index: PathIndex, extensions: tuple[str, ...]) -> list[str]:
    base = posixpath.normpath(posixpath.join(posixpath.dirname(path), name))
    return _first_existing(index, [base + ext for ext in extensions])


def _first_existing(index: PathIndex, candidates: Iterable[str]) -> list[str]:
    for candidate in candidates:
        normal = posixpath.normpath(str(candidate))
        if normal.startswith("./"):
            normal = normal[2:]
        if normal in index.paths:
            return [normal]
    return []

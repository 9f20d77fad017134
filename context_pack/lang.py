"""Which language a file is in, and the tree-sitter grammar of each supported language."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

# language id -> (grammar module, function returning the language pointer)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "bash": ("tree_sitter_bash", "language"),
}

CODE_EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".ipp": "cpp", ".tpp": "cpp", ".inl": "cpp",
    ".rb": "ruby", ".rake": "ruby", ".gemspec": "ruby",
    ".cs": "csharp",
    ".php": "php",
    ".sh": "bash", ".bash": "bash",
}
CPP_SOURCE_EXTENSIONS = frozenset({".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx"})

# Text files without a grammar here: chunked in blank-line blocks.
TEXT_EXTENSIONS: dict[str, str] = {
    ".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".txt": "text", ".adoc": "asciidoc",
    ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json", ".jsonc": "json", ".ini": "ini",
    ".cfg": "ini", ".conf": "ini", ".xml": "xml", ".html": "html", ".htm": "html", ".css": "css",
    ".scss": "scss", ".less": "less", ".sql": "sql", ".proto": "protobuf", ".graphql": "graphql",
    ".gradle": "groovy", ".groovy": "groovy", ".cmake": "cmake", ".mk": "make", ".kt": "kotlin",
    ".kts": "kotlin", ".swift": "swift", ".scala": "scala", ".lua": "lua", ".r": "r", ".pl": "perl",
    ".pm": "perl", ".hs": "haskell", ".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".clj": "clojure",
    ".dart": "dart", ".vue": "vue", ".svelte": "svelte", ".zig": "zig", ".nim": "nim", ".m": "objc",
    ".mm": "objc", ".jl": "julia", ".ml": "ocaml", ".fs": "fsharp", ".vb": "vbnet", ".ps1": "powershell",
    ".bat": "batch", ".zsh": "bash", ".fish": "fish", ".tf": "hcl", ".hcl": "hcl", ".nix": "nix",
    ".jq": "jq", ".in": "text", ".tmpl": "text", ".j2": "jinja", ".jinja": "jinja", ".pyx": "cython",
    ".pxd": "cython",
}
TEXT_FILENAMES: dict[str, str] = {
    "Makefile": "make", "makefile": "make", "GNUmakefile": "make", "Dockerfile": "dockerfile",
    "CMakeLists.txt": "cmake", "Gemfile": "ruby", "Rakefile": "ruby", "Jenkinsfile": "groovy",
    "README": "text", "LICENSE": "text", "COPYING": "text", "Vagrantfile": "ruby", "BUILD": "starlark",
    "WORKSPACE": "starlark", "Justfile": "make", "Procfile": "text", "go.mod": "gomod", "go.work": "gomod",
}


def name_and_suffix(path: str) -> tuple[str, str]:
    """`PurePosixPath(path)`'s name and suffix, with string operations for the usual clean relative path
    (the walk asks this of every file; a path object costs more than the rest of the question)."""
    if not path or path == "." or path.endswith(("/", "/.")) or path.startswith("./") or "//" in path \
            or "/./" in path:
        pure = PurePosixPath(path)
        return pure.name, pure.suffix
    name = path.rpartition("/")[2]
    dot = name.rfind(".")
    return name, name[dot:] if 0 < dot < len(name) - 1 else ""


def language_for(path: str, header_is_cpp: bool = False) -> str | None:
    """The language id of a path, or None when it is not a file we read."""
    name, raw_suffix = name_and_suffix(path)
    if name in TEXT_FILENAMES:
        return TEXT_FILENAMES[name]
    suffix = raw_suffix.lower() if raw_suffix not in (".C", ".H") else raw_suffix
    if suffix == ".h":
        return "cpp" if header_is_cpp else "c"
    if suffix in (".C", ".H"):
        return "cpp"
    return CODE_EXTENSIONS.get(suffix) or TEXT_EXTENSIONS.get(suffix)


def repo_has_cpp(paths: Iterable[str]) -> bool:
    """DESIGN.md: `.h` is C++ when the repo has C++ sources, else C."""
    return any(name_and_suffix(p)[1].lower() in CPP_SOURCE_EXTENSIONS for p in paths)


def has_grammar(language: str | None) -> bool:
    return language in GRAMMARS


@cache
def grammar(language: str) -> Any:
    """The tree_sitter.Language of a supported language id."""
    from tree_sitter import Language

    module_name, function_name = GRAMMARS[language]
    module = importlib.import_module(module_name)
    return Language(getattr(module, function_name)())


INHERITS_RE = re.compile(r"^; inherits: ([\w, ]+)$", re.MULTILINE)


@cache
def query_source(language: str) -> str:
    """The text of `languages/<language>.scm` (installed as `context_pack.languages`), with the files it
    names in an `; inherits: a, b` line first — as nvim-treesitter's queries do — so tsx.scm need only add
    JSX to typescript.scm."""
    text = resources.files("context_pack.languages").joinpath(f"{language}.scm").read_text("utf-8")
    inherited = [query_source(parent.strip()) for line in INHERITS_RE.findall(text) for parent in line.split(",")
                 if parent.strip()]
    return "\n".join([*inherited, text])

"""The dataclasses that stages exchange: File (walk), Chunk (parse), ScoredChunk (score), Pack (pack/render)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["full", "signature"]
Section = Literal["diff", "stable", "query", "main"]

Links = tuple[tuple[str, ...], tuple[str, ...]]  # a chunk's (references, imports), for the code graph

FEATURE_NAMES: tuple[str, ...] = ("definitions", "tests", "todo", "recency", "centrality", "query", "focus")

# Fixed wording: the system prompt is the first part of every prompt, so it must not change between questions.
DEFAULT_SYSTEM_PROMPT = (
    "You are an expert software engineer. Answer the question about the repository below using the code "
    "excerpts given, and name the files and functions your answer relies on. Lines marked ⋮ were left out."
)


@dataclass(frozen=True)
class File:
    """A source file found by the walk; `path` is relative to the root, with `/`."""

    path: str
    size: int
    language: str | None = None


@dataclass(frozen=True)
class Definition:
    kind: str
    name: str  # qualified: Class.method
    start_line: int
    end_line: int


@dataclass(frozen=True)
class Chunk:
    """A run of whole lines of one file. The chunks of a file partition it: every line is in exactly one."""

    path: str
    language: str
    kind: str  # imports, function, method, class, struct, ..., block
    name: str  # qualified name; "" for blocks
    start_line: int  # 1-based, inclusive
    end_line: int  # inclusive
    text: str  # the source lines start..end, each ending in "\n"
    signature: str = ""  # the line(s) that stand for the chunk when its body is elided
    signature_line: int = 0  # the first line of `signature` (comments above it are elided with the body)
    symbols: tuple[str, ...] = ()  # qualified names defined in the chunk
    references: tuple[str, ...] = ()  # identifiers used in the chunk
    imports: tuple[str, ...] = ()  # module paths imported by the chunk
    todo_count: int = 0
    is_test: bool = False
    redactions: tuple[tuple[int, str], ...] = ()  # (line, kind) of each secret redacted in `text`

    @property
    def line_count(self) -> int:
        return self.end_line - self.start_line + 1

    @property
    def key(self) -> tuple[str, int]:
        return (self.path, self.start_line)


_new = object.__new__


def make_chunk(path: str, language: str, kind: str, name: str, start_line: int, end_line: int, text: str,
               signature: str = "", signature_line: int = 0, symbols: tuple[str, ...] = (),
               references: tuple[str, ...] = (), imports: tuple[str, ...] = (), todo_count: int = 0,
               is_test: bool = False, redactions: tuple[tuple[int, str], ...] = ()) -> Chunk:
    """`Chunk(...)` for the ~10^5 chunks a parse or an index load makes: the fields are filled in directly,
    at a sixth of the cost of the frozen dataclass's `__init__` (one `object.__setattr__` per field). The
    same object: equal to, and pickled as, a constructed one (tests/test_parse.py)."""
    chunk = _new(Chunk)
    attrs = chunk.__dict__
    attrs["path"], attrs["language"], attrs["kind"], attrs["name"] = path, language, kind, name
    attrs["start_line"], attrs["end_line"], attrs["text"], attrs["signature"] = start_line, end_line, text, signature
    attrs["signature_line"], attrs["symbols"], attrs["references"] = signature_line, symbols, references
    attrs["imports"], attrs["todo_count"], attrs["is_test"] = imports, todo_count, is_test
    attrs["redactions"] = redactions
    return chunk


class LazyChunks(Sequence[Chunk]):
    """Chunks that tell each chunk's path and symbols without making the chunk objects (the index's
    `ChunkList`, whose chunks are decoded when first read): signals that need only those ask `chunk_paths`
    and `chunk_symbols`, and the chunks stay undecoded."""

    @abstractmethod
    def paths(self) -> list[str]: ...

    @abstractmethod
    def symbols(self) -> list[tuple[str, ...]]: ...


def chunk_paths(chunks: Sequence[Chunk]) -> list[str]:
    """Each chunk's path; `LazyChunks` answer without decoding their chunks."""
    return chunks.paths() if isinstance(chunks, LazyChunks) else [chunk.path for chunk in chunks]


def chunk_symbols(chunks: Sequence[Chunk]) -> list[tuple[str, ...]]:
    """Each chunk's symbols; `LazyChunks` answer without decoding their chunks."""
    return chunks.symbols() if isinstance(chunks, LazyChunks) else [chunk.symbols for chunk in chunks]


@dataclass(frozen=True)
class ScoredChunk:
    chunk: Chunk
    score: float
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Redaction:
    """A secret replaced by a marker in the pack text: where, and of what kind (never the value)."""

    path: str
    line: int
    kind: str


@dataclass(frozen=True)
class PackedChunk:
    """A chunk chosen for the pack, in the mode it is rendered in."""

    chunk: Chunk
    mode: Mode
    score: float
    features: dict[str, float]
    tokens: int  # tokens of this chunk's rendered lines in the chosen mode
    section: Section = "main"


@dataclass
class Pack:
    """The result of a build: the pack text (what the model reads) and the chunks it holds."""

    root: str
    budget: int
    tokens: int  # the pack text counted by `tokenizer`; never above `budget`
    tokenizer: str
    query: str | None
    format: str
    text: str
    chunks: list[PackedChunk]
    files_considered: int
    chunks_considered: int
    staged: dict[str, object] | None = None  # with --staged: {"files", "deleted", "diff_tokens"}

    def to_messages(self, question: str, system: str | None = None) -> list[dict[str, str]]:
        """Chat messages for an OpenAI-compatible server: the system prompt, then one user message holding the
        pack text and, after it, the question — the part that changes most goes last, for prefix caching."""
        if self.format == "xml":
            from xml.sax.saxutils import escape

            asked = f"<question>\n{escape(question.strip())}\n</question>\n"
        elif self.format == "plain":
            asked = f"Question:\n{question.strip()}\n"
        else:
            asked = f"## Question\n\n{question.strip()}\n"
        return [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT if system is None else system},
                {"role": "user", "content": self.text + asked}]

    @property
    def redactions(self) -> list[Redaction]:
        """The secrets redacted on the lines this pack shows, in pack order."""
        from .render import shown_redactions  # render builds on this module

        return shown_redactions(self.chunks)

    def to_json_dict(self) -> dict[str, object]:
        return {
            "version": 1,
            "root": self.root,
            "budget": self.budget,
            "tokens": self.tokens,
            "tokenizer": self.tokenizer,
            "query": self.query,
            "text": self.text,
            "chunks": [
                {
                    "path": p.chunk.path,
                    "start_line": p.chunk.start_line,
                    "end_line": p.chunk.end_line,
                    "mode": p.mode,
                    "section": p.section,
                    "kind": p.chunk.kind,
                    "name": p.chunk.name,
                    "language": p.chunk.language,
                    "tokens": p.tokens,
                    "score": round(p.score, 6),
                    "features": {k: round(v, 6) for k, v in p.features.items()},
                }
                for p in self.chunks
            ],
            "files_considered": self.files_considered,
            "chunks_considered": self.chunks_considered,
            **({"staged": self.staged} if self.staged is not None else {}),
            "redactions": [{"path": r.path, "line": r.line, "kind": r.kind} for r in self.redactions],
        }

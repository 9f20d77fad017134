"""Stage 2 — parse: file bytes → chunks that partition the file.

Tree-sitter finds definitions, references and imports with the query in `languages/<language>.scm`.
Top-level definitions become chunks; a class longer than `class_split_lines` becomes a header chunk plus
one chunk per member; the lines between definitions become import-header or gap blocks. Files without a
grammar (Markdown, YAML, ...) and files that fail to parse fall back to blank-line blocks.
Everything here is iterative: a 10,000-deep nesting must not hit Python's recursion limit.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePosixPath
from typing import Any

from .lang import grammar, has_grammar, query_source
from .model import Chunk, Definition, make_chunk

CHUNK_KINDS = frozenset({
    "function", "method", "class", "struct", "interface", "enum", "trait", "impl", "module", "namespace",
    "union",
})
CONTAINER_KINDS = frozenset({"class", "struct", "interface", "enum", "trait", "impl", "module", "namespace",
                             "union"})
CLASS_LIKE_KINDS = CONTAINER_KINDS - {"module", "namespace"}

ATTRIBUTE_NODES = frozenset({"attribute_item", "inner_attribute_item", "decorator", "attribute_list"})
# Tree-sitter's query cursor takes time quadratic in the children of an ERROR node (30,000 stray brackets:
# ~1 s; a 1 MB file of them: minutes). Past this much work (the sum of their squares) a file is read as
# blank-line blocks instead: ~0.1 s of querying at most, decided by the input alone, so still deterministic.
MAX_ERROR_WORK = 100_000_000
LONG_DEFINITION_LINES = 150  # longer, and a definition without members to split at is cut into parts
PART_LINES = 60
TODO_RE = re.compile(r"\b(?:TODO|FIXME|BUG|HACK|XXX)\b")


def count_todos(text: str) -> int:
    # A first look with `in` (C substring scans: 0.11 s over the stdlib's chunks, the regex alternation 0.19 s)
    # before the word-bounded count.
    if "TODO" in text or "FIXME" in text or "BUG" in text or "HACK" in text or "XXX" in text:
        return len(TODO_RE.findall(text))
    return 0


TEST_DIRS = frozenset({"test", "tests", "testing", "spec", "specs", "__tests__", "test_utils", "testdata"})
TEST_FILE_RE = re.compile(
    r"(^test_.*\.py$|_test\.py$|^conftest\.py$|_test\.go$|\.(test|spec)\.[cm]?[jt]sx?$|"
    r"(Test|Tests|IT)\.(java|kt|cs|php)$|_spec\.rb$|_test\.rb$|_test\.(c|cc|cpp)$|^test_.*\.(c|cc|cpp)$)"
)
# A test's name, as any part of a dotted name: test_*, test, Test[A-Z_]*, tests (one search of the whole name).
TEST_NAME_RE = re.compile(r"(?:^|\.)(?:test_|Test[A-Z_]|tests?(?:$|\.))")


@dataclass
class ParseResult:
    chunks: list[Chunk]
    definitions: list[Definition] = field(default_factory=list)
    warning: str | None = None


@dataclass
class _Def:
    kind: str
    name: str
    node: Any
    start_byte: int
    end_byte: int
    start_row: int  # 0-based, comments above included
    node_start_row: int
    end_row: int
    scope: str = ""
    parent: _Def | None = None
    children: list[_Def] = field(default_factory=list)
    qualified: str = ""


@dataclass
class _Facts:
    """What the query found, by 0-based row."""

    references: dict[int, list[str]] = field(default_factory=dict)
    imports: dict[int, list[str]] = field(default_factory=dict)
    import_rows: set[int] = field(default_factory=set)


def split_lines(text: str) -> list[str]:
    """Lines as tree-sitter counts rows: split on \\n only, each line keeping its \\n."""
    if not text:
        return []
    lines = text.split("\n")
    result = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        result.append(lines[-1])
    return result


def is_test_path(path: str) -> bool:
    pure = PurePosixPath(path)
    return any(part.lower() in TEST_DIRS for part in pure.parts[:-1]) or bool(TEST_FILE_RE.search(pure.name))


def parse_file(
    path: str,
    source: bytes,
    language: str,
    class_split_lines: int = 60,
    block_max_lines: int = 40,
    with_definitions: bool = True,
) -> ParseResult:
    """Cut one file into chunks. Never raises on bad input: a failed parse falls back to blocks.
    `with_definitions=False` leaves `definitions` empty (the build reads definitions off the chunks)."""
    if source.startswith(b"\xef\xbb\xbf"):
        source = source[3:]
    text = source.decode("utf-8", errors="replace")
    lines = split_lines(text)
    if not lines:
        return ParseResult(chunks=[])
    test_file = is_test_path(path)
    if has_grammar(language):
        try:
            return _parse_code(path, source, lines, language, test_file, class_split_lines, block_max_lines,
                               with_definitions)
        except Exception as exc:  # a grammar or query failure must not lose the file
            chunks = _block_chunks(path, language, lines, 0, len(lines) - 1, block_max_lines, test_file)
            return ParseResult(chunks=chunks, warning=f"{path}: parse failed ({exc}); using blank-line blocks")
    return ParseResult(chunks=_block_chunks(path, language, lines, 0, len(lines) - 1, block_max_lines,
                                            test_file))


def parse_blocks(path: str, source: bytes, language: str, block_max_lines: int = 40) -> ParseResult:
    """Cut a file into blank-line blocks without its grammar (for a file the grammar cannot survive)."""
    if source.startswith(b"\xef\xbb\xbf"):
        source = source[3:]
    lines = split_lines(source.decode("utf-8", errors="replace"))
    if not lines:
        return ParseResult(chunks=[])
    return ParseResult(chunks=_block_chunks(path, language, lines, 0, len(lines) - 1, block_max_lines,
                                            is_test_path(path)))


@cache
def _query(language: str) -> Any:
    from tree_sitter import Query

    return Query(grammar(language), query_source(language))


@cache
def _parser(language: str) -> Any:
    from tree_sitter import Parser

    return Parser(grammar(language))


def _parse_code(
    path: str, source: bytes, lines: list[str], language: str, test_file: bool,
    class_split_lines: int, block_max_lines: int, with_definitions: bool,
) -> ParseResult:
    from tree_sitter import QueryCursor

    tree = _parser(language).parse(source)
    root = tree.root_node
    if root.type == "ERROR" and root.child_count <= 1:
        chunks = _block_chunks(path, language, lines, 0, len(lines) - 1, block_max_lines, test_file)
        return ParseResult(chunks=chunks, warning=f"{path}: no {language} syntax recognised; using blocks")
    if root.has_error and _error_work(root) > MAX_ERROR_WORK:
        chunks = _block_chunks(path, language, lines, 0, len(lines) - 1, block_max_lines, test_file)
        return ParseResult(chunks=chunks, warning=f"{path}: too damaged to read as {language}; using blocks")
    matches = QueryCursor(_query(language)).matches(root)
    defs, facts = _collect(matches, source, lines)
    _link(defs)
    definitions = ([Definition(d.kind, d.qualified, d.node_start_row + 1, d.end_row + 1) for d in defs]
                   if with_definitions else [])
    chunks = _ChunkBuilder(path, language, lines, defs, facts, test_file, class_split_lines, block_max_lines).build()
    for d in defs:  # no parent <-> child cycles left for the garbage collector to find
        d.parent = None
        d.children = []
    return ParseResult(chunks=chunks, definitions=definitions)


def _error_work(root: Any) -> int:
    """Σ (children of an ERROR node)², over the whole tree, walked iteratively with a cursor."""
    work = 0
    cursor = root.walk()
    while True:
        node = cursor.node
        if node is not None and node.type == "ERROR":
            work += node.child_count ** 2
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return work


def _node_text(node: Any, source: bytes) -> str:
    return source[node.start_byte:node.end_byte].decode("utf-8", errors="replace")


def _clean_name(text: str) -> str:
    """A definition's name as one dotted name: no generic arguments, `::`, `->`, spaces or pointer marks."""
    return text if text.isidentifier() else _normalised_name(text)  # most names: nothing would change


def _normalised_name(text: str) -> str:
    text = re.sub(r"(?<=\w)<[^<>]*>", "", text)  # generic arguments, not operators like <=>
    text = text.replace("::", ".").replace("->", ".").replace("\\", ".")
    text = re.sub(r"[\s*&]+", "", text)
    return text.strip(".")


def _end_row(node: Any) -> int:
    row: int = node.end_point.row
    if node.end_point.column == 0 and row > node.start_point.row:
        row -= 1  # the node ends at the start of the next line
    return row


def _collect(matches: Sequence[tuple[int, dict[str, list[Any]]]], source: bytes,
             lines: list[str]) -> tuple[list[_Def], _Facts]:
    facts = _Facts()
    by_name_node: dict[tuple[int, int], _Def] = {}
    references = facts.references
    for _, captures in matches:
        if len(captures) == 1 and (bare := captures.get("reference")) is not None:  # most matches: a bare reference
            for node in bare:  # (slicing the source: `node.text` costs twice as much)
                references.setdefault(node.start_point.row, []).append(
                    source[node.start_byte:node.end_byte].decode("utf-8", "replace"))
            continue
        kind = next((name[len("definition."):] for name in captures if name.startswith("definition.")), None)
        if kind is not None and captures.get("name"):
            node = captures[f"definition.{kind}"][0]
            name_node = captures["name"][0]
            name = _clean_name(_node_text(name_node, source))
            if not name:
                continue
            key = (name_node.start_byte, name_node.end_byte)
            existing = by_name_node.get(key)
            if existing and existing.end_byte - existing.start_byte >= node.end_byte - node.start_byte:
                continue  # the outer definition node wins
            scope_nodes = captures.get("scope")
            scope = _clean_name(_node_text(scope_nodes[0], source)) if scope_nodes else ""
            start_row = node.start_point.row
            by_name_node[key] = _Def(kind, name, node, node.start_byte, node.end_byte, _comment_start(node, lines),
                                     start_row, max(start_row, _end_row(node)), scope)
        for node in captures.get("reference", ()):
            references.setdefault(node.start_point.row, []).append(_node_text(node, source))
        for node in captures.get("import", ()):
            for row in range(node.start_point.row, _end_row(node) + 1):
                facts.import_rows.add(row)
        for node in captures.get("import.name", ()):
            module = _node_text(node, source).strip().strip("\"'<>`")
            if not module:
                continue
            row_imports = facts.imports.setdefault(node.start_point.row, [])
            row_imports.append(module)
            for member in captures.get("import.member", ()):  # `from pkg import mod`: mod may be a module
                separator = "" if module.endswith(".") else "."
                row_imports.append(f"{module}{separator}{_node_text(member, source)}")
    defs = sorted(by_name_node.values(), key=lambda d: (d.start_byte, -d.end_byte))
    return defs, facts


def _comment_start(node: Any, lines: list[str]) -> int:
    """The first row of the comments (and attributes) directly above a definition, with no blank line between."""
    start = node.start_point.row
    previous = node.prev_sibling
    while (previous is not None and ("comment" in previous.type or previous.type in ATTRIBUTE_NODES)
           and _end_row(previous) >= start - 1):
        row = previous.start_point.row
        if row >= start or lines[row][:previous.start_point.column].strip():
            break  # a trailing comment of the line above belongs to that line
        start = row
        previous = previous.prev_sibling
    return start


def _link(defs: list[_Def]) -> None:
    """Nest definitions by byte containment, then qualify names and promote functions in classes."""
    stack: list[_Def] = []
    for d in defs:
        while stack and stack[-1].end_byte <= d.start_byte:
            stack.pop()
        if stack and stack[-1].start_byte <= d.start_byte and d.end_byte <= stack[-1].end_byte:
            d.parent = stack[-1]
            stack[-1].children.append(d)
        stack.append(d)
    for d in defs:  # parents come before children in this order
        container = d.parent
        while container is not None and container.kind not in CONTAINER_KINDS:
            container = container.parent
        if container is not None:
            d.qualified = f"{container.qualified}.{d.name}"
        elif d.scope:
            d.qualified = f"{d.scope}.{d.name}"
        else:
            d.qualified = d.name
        if d.kind == "function" and (d.scope or (d.parent is not None and d.parent.kind in CLASS_LIKE_KINDS)):
            d.kind = "method"


def _chunk_children(d: _Def | None, top: list[_Def]) -> list[_Def]:
    """The nearest chunk-kind definitions below `d` (or the top level), skipping symbol-only ones."""
    result: list[_Def] = []
    pending = list(reversed(d.children if d is not None else top))
    while pending:
        child = pending.pop()
        if child.kind in CHUNK_KINDS:
            result.append(child)
        else:
            pending.extend(reversed(child.children))
    return result


class _ChunkBuilder:
    def __init__(self, path: str, language: str, lines: list[str], defs: list[_Def], facts: _Facts,
                 test_file: bool, class_split_lines: int, block_max_lines: int) -> None:
        self.path = path
        self.language = language
        self.lines = lines
        self.defs = defs
        self.facts = facts
        self.test_file = test_file
        self.class_split_lines = class_split_lines
        self.block_max_lines = block_max_lines

    def build(self) -> list[Chunk]:
        spans: list[tuple[int, int, str, str, _Def | None]] = []  # start, end, kind, name, definition
        top = [d for d in self.defs if d.parent is None]
        work: list[tuple[int, int, list[_Def], _Def | None]] = [
            (0, len(self.lines) - 1, _chunk_children(None, top), None)
        ]
        while work:
            span_start, span_end, children, owner = work.pop()
            children = self._disjoint(children, span_start, span_end)
            cursor = span_start
            if owner is not None:  # the header of a split container
                header_end = children[0].start_row - 1
                spans.append((span_start, header_end, owner.kind, owner.qualified, owner))
                cursor = header_end + 1
            for child in children:
                if child.start_row > cursor:
                    spans.extend(self._gap(cursor, child.start_row - 1, owner))
                grandchildren = self._disjoint(_chunk_children(child, []), child.start_row, child.end_row)
                if (child.kind in CONTAINER_KINDS and grandchildren
                        and child.end_row - child.start_row + 1 > self.class_split_lines
                        and grandchildren[0].start_row > child.start_row):
                    work.append((child.start_row, child.end_row, grandchildren, child))
                else:
                    spans.extend(self._whole_or_parts(child))
                cursor = child.end_row + 1
            if cursor <= span_end:
                spans.extend(self._gap(cursor, span_end, owner))
        spans.sort(key=lambda s: s[0])
        return self._finish(_merge_blank(spans, self.lines))

    def _whole_or_parts(self, d: _Def) -> list[tuple[int, int, str, str, _Def | None]]:
        """A definition as one chunk; one too long to pack whole (a 500-line struct or function) as its
        head — which keeps the signature — and parts of at most PART_LINES, cut at blank lines."""
        if d.end_row - d.start_row + 1 <= LONG_DEFINITION_LINES:
            return [(d.start_row, d.end_row, d.kind, d.qualified, d)]
        head, *rest = _cut_blocks(self.lines, d.start_row, d.end_row, PART_LINES)
        return [(head[0], head[1], d.kind, d.qualified, d)] + [(s, e, "block", d.qualified, None) for s, e in rest]

    def _disjoint(self, children: list[_Def], span_start: int, span_end: int) -> list[_Def]:
        """Children clipped to the span, with line overlaps removed (two definitions on one line merge)."""
        result: list[_Def] = []
        for child in sorted(children, key=lambda c: (c.node_start_row, -c.end_row)):
            start = max(child.start_row, span_start)
            if result and start <= result[-1].end_row:
                start = result[-1].end_row + 1
                if child.node_start_row <= result[-1].end_row:
                    result[-1].end_row = max(result[-1].end_row, min(child.end_row, span_end))
                    continue
            child.start_row = start
            child.end_row = min(child.end_row, span_end)
            if child.start_row <= child.end_row:
                result.append(child)
        return result

    def _gap(self, start: int, end: int, owner: _Def | None) -> list[tuple[int, int, str, str, _Def | None]]:
        name = owner.qualified if owner is not None else ""
        result = []
        for piece_start, piece_end in _cut_blocks(self.lines, start, end, self.block_max_lines):
            has_import = any(row in self.facts.import_rows for row in range(piece_start, piece_end + 1))
            result.append((piece_start, piece_end, "imports" if has_import else "block", name, None))
        return result

    def _finish(self, spans: list[tuple[int, int, str, str, _Def | None]]) -> list[Chunk]:
        chunks: list[Chunk] = []
        def_starts: dict[int, list[_Def]] = {}
        for d in self.defs:
            def_starts.setdefault(d.node_start_row, []).append(d)
        references_at, imports_at = self.facts.references, self.facts.imports
        # The rows that have something, in order: a chunk looks up its own few, not each of its lines.
        def_rows, reference_rows, import_rows = sorted(def_starts), sorted(references_at), sorted(imports_at)
        for start, end, kind, name, definition in spans:
            symbols = [d.qualified for row in _rows_within(def_rows, start, end) for d in def_starts[row]]
            references = sorted({r for row in _rows_within(reference_rows, start, end) for r in references_at[row]})
            imports = [m for row in _rows_within(import_rows, start, end) for m in imports_at[row]]
            text = "".join(self.lines[start:end + 1])
            signature = _signature(definition, self.lines) if definition is not None else ""
            is_test = self.test_file or TEST_NAME_RE.search(name) is not None
            chunks.append(make_chunk(
                self.path, self.language, kind, name, start + 1, end + 1, text, signature,
                definition.node_start_row + 1 if definition is not None else 0, tuple(dict.fromkeys(symbols)),
                tuple(references), tuple(dict.fromkeys(imports)), count_todos(text), is_test,
            ))
        return chunks


def _rows_within(rows: list[int], start: int, end: int) -> list[int]:
    """The rows of the sorted list `rows` from `start` to `end`, both included."""
    return rows[bisect_left(rows, start):bisect_right(rows, end)]


def _merge_blank(spans: list[tuple[int, int, str, str, _Def | None]],
                 lines: list[str]) -> list[tuple[int, int, str, str, _Def | None]]:
    """Blank-only spans join the span before them (or after, at the top of the file)."""
    merged: list[tuple[int, int, str, str, _Def | None]] = []
    carry_start: int | None = None
    for span in spans:
        start, end, kind, name, definition = span
        blank = kind == "block" and all(not lines[row].strip() for row in range(start, end + 1))
        if blank and merged:
            previous = merged[-1]
            merged[-1] = (previous[0], end, *previous[2:])
        elif blank:
            carry_start = start if carry_start is None else carry_start
        else:
            if carry_start is not None:
                start, carry_start = carry_start, None
            merged.append((start, end, kind, name, definition))
    if carry_start is not None:  # the whole file is blank
        merged.append((carry_start, spans[-1][1], "block", "", None))
    return merged


def _cut_blocks(lines: list[str], start: int, end: int, max_lines: int) -> list[tuple[int, int]]:
    """Cut rows start..end into pieces of at most max_lines, at blank lines where possible."""
    pieces: list[tuple[int, int]] = []
    piece_start = start
    while piece_start <= end:
        limit = min(end, piece_start + max_lines - 1)
        if limit == end:
            pieces.append((piece_start, end))
            break
        cut = limit
        for row in range(limit, piece_start, -1):  # the last blank line inside the window
            if not lines[row].strip():
                cut = row
                break
        pieces.append((piece_start, cut))
        piece_start = cut + 1
    return pieces


def _block_chunks(path: str, language: str, lines: list[str], start: int, end: int, max_lines: int,
                  test_file: bool) -> list[Chunk]:
    """Blank-line blocks of at most max_lines: for text files and files that fail to parse."""
    spans: list[tuple[int, int]] = []
    block_start = start
    for row in range(start, end + 1):
        if not lines[row].strip() and row > block_start and lines[row - 1].strip():
            spans.extend(_cut_blocks(lines, block_start, row, max_lines))
            block_start = row + 1
    if block_start <= end:
        spans.extend(_cut_blocks(lines, block_start, end, max_lines))
    merged = _merge_blank([(s, e, "block", "", None) for s, e in spans], lines)
    chunks = []
    for s, e, _, _, _ in merged:
        text = "".join(lines[s:e + 1])
        first = text.lstrip().split("\n", 1)[0].strip()
        name = first.lstrip("#").strip()[:80] if language in ("markdown", "rst") and first.startswith("#") else ""
        chunks.append(make_chunk(path, language, "block", name, s + 1, e + 1, text, todo_count=count_todos(text),
                                 is_test=test_file))
    return chunks


def _signature(definition: _Def, lines: list[str]) -> str:
    """The definition's head: from its first line (decorators included) to where its body starts."""
    node = definition.node
    body = _find_body(node)
    start = definition.node_start_row
    if body is None:
        end = start
    else:
        body_row = body.start_point.row
        indent = len(lines[body_row]) - len(lines[body_row].lstrip())
        end = body_row if body.start_point.column > indent else body_row - 1
    end = max(start, min(end, definition.end_row, start + 7))
    return "".join(lines[start:end + 1])


def _find_body(node: Any) -> Any | None:
    """The `body` field of the node, or of the definition it wraps (decorators, export, template)."""
    pending = [node]
    for _ in range(3):
        next_level = []
        for candidate in pending:
            body = candidate.child_by_field_name("body")
            if body is not None:
                return body
            next_level.extend(candidate.named_children[:4])
        pending = next_level
    return None

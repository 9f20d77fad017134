"""Stage — render: chosen chunks → pack text (markdown, xml or plain).

Files in path order, a file's lines in line order; what is left out of a file is marked in place
(`⋮ lines 40–120`), at the indentation of the first elided line when it is known.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import UsageError
from .model import Chunk, PackedChunk, Redaction
from .parse import split_lines


# xml.sax.saxutils' escape and quoteattr, character for character (tests/test_pack.py compares them):
# importing it imports urllib.request, http.client and ssl, which every build would pay for.
def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


def quoteattr(text: str) -> str:
    text = escape(text).replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    if '"' not in text:
        return f'"{text}"'
    if "'" not in text:
        return f"'{text}'"
    return '"{}"'.format(text.replace('"', "&quot;"))

FORMATS = ("md", "xml", "plain")
FORMAT_ALIASES = {"md": "md", "markdown": "md", "xml": "xml", "plain": "plain", "text": "plain"}
SECTION_ORDER = {"diff": 0, "stable": 1, "query": 2, "main": 3}
SECTION_TITLES = {"diff": "Staged change", "stable": "Repository overview", "query": "Relevant to the question"}
MAIN_AFTER_DIFF_TITLE = "Code around the change"


def normalise_format(name: str) -> str:
    try:
        return FORMAT_ALIASES[name.lower()]
    except KeyError:
        raise UsageError(f"unknown format {name!r} (expected md, xml, plain or json)") from None


def elision_marker(start: int, end: int, indent: str = "") -> str:
    span = f"line {start}" if start == end else f"lines {start}–{end}"
    return f"{indent}⋮ {span}\n"


def visible_lines(chunk: Chunk, mode: str) -> tuple[int, int]:
    """The line range a chunk shows in a mode: all of it, or only its signature."""
    if mode == "full" or not chunk.signature:
        return chunk.start_line, chunk.end_line
    first = chunk.signature_line or chunk.start_line
    return first, min(chunk.end_line, first + len(split_lines(chunk.signature)) - 1)


@dataclass(frozen=True)
class Style:
    """The frame each format puts around files; bodies are the source lines (escaped for xml)."""

    name: str

    def preamble(self, root_name: str) -> str:
        if self.name == "md":
            return f"# Repository: {root_name}\n\n"
        if self.name == "xml":
            return f"<repository name={quoteattr(root_name)}>\n"
        return f"Repository: {root_name}\n\n"

    def redaction_note(self, redactions: list[Redaction]) -> str:
        """One short line: how many secrets the text shows redacted (the markers say of what kind)."""
        if not redactions:
            return ""
        count = f"{len(redactions)} secret{'s' if len(redactions) != 1 else ''}"
        if self.name == "md":
            return f"> {count} redacted, each marked [REDACTED:kind].\n\n"
        if self.name == "xml":
            return f"<redacted count=\"{len(redactions)}\"/>\n"
        return f"{count} redacted, each marked [REDACTED:kind].\n\n"

    def postamble(self) -> str:
        return "</repository>\n" if self.name == "xml" else ""

    def section(self, section: str, title: str | None = None) -> str:
        title = title or SECTION_TITLES.get(section)
        if not title:
            return ""
        if self.name == "md":
            return f"## {title}\n\n"
        if self.name == "xml":
            return f"<section name={quoteattr(section)}>\n"
        return f"##### {title} #####\n\n"

    def section_close(self, section: str, titled: bool = False) -> str:
        return "</section>\n" if self.name == "xml" and (titled or section in SECTION_TITLES) else ""

    def diff_block(self, diff: str) -> str:
        """The staged diff, first in the pack."""
        if self.name == "md":
            fence = _fence_for(diff)
            return f"{self.section('diff')}{fence}diff\n{diff}{fence}\n\n"
        if self.name == "xml":
            return f"{self.section('diff')}<diff>\n{escape(diff)}</diff>\n{self.section_close('diff')}"
        return f"{self.section('diff')}{diff}\n"

    def file_open(self, path: str, language: str, fence: str = "```") -> str:
        path = display_path(path)
        if self.name == "md":
            return f"### {path}\n\n{fence}{_fence_language(language)}\n"
        if self.name == "xml":
            return f"<file path={quoteattr(path)} language={quoteattr(language)}>\n"
        return f"=== {path} ===\n"

    def file_close(self, fence: str = "```") -> str:
        if self.name == "md":
            return f"{fence}\n\n"
        if self.name == "xml":
            return "</file>\n"
        return "\n"

    def body(self, text: str) -> str:
        return escape(text) if self.name == "xml" else text


def display_path(path: str) -> str:
    """A path as one line: control characters (a newline in a file name) escaped, so no name can forge
    structure in the pack."""
    return path if path.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)


def _fence_language(language: str) -> str:
    return {"csharp": "csharp", "cpp": "cpp", "tsx": "tsx", "text": ""}.get(language, language)


def _fence_for(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=0)
    return "`" * max(3, longest + 1)


def render(
    chosen: Iterable[PackedChunk],
    root_name: str,
    fmt: str,
    line_counts: Mapping[str, int],
    header: str = "",
) -> tuple[str, list[PackedChunk]]:
    """The pack text, and the chunks in the order they appear in it. `header` (the staged diff, rendered
    by `Style.diff_block`) goes first, and then every section is titled."""
    parts, ordered = render_parts(chosen, root_name, fmt, line_counts, header)
    return "".join(parts), ordered


def render_parts(chosen: Iterable[PackedChunk], root_name: str, fmt: str, line_counts: Mapping[str, int],
                 header: str = "") -> tuple[list[str], list[PackedChunk]]:
    """`render`, with the text in its parts (preamble, header, section titles, one part per file, ...): the
    packer counts again only the parts a round changed (`pack._TextCounter`)."""
    style = Style(normalise_format(fmt))
    ordered = sorted(chosen, key=lambda p: (SECTION_ORDER[p.section], p.chunk.path, p.chunk.start_line))
    if not ordered and not header:
        return [], []
    parts = [style.preamble(root_name), style.redaction_note(shown_redactions(ordered)), header]
    sections = sorted({p.section for p in ordered}, key=SECTION_ORDER.__getitem__)
    titled = len(sections) > 1 or bool(header)
    for section in sections:
        in_section = [p for p in ordered if p.section == section]
        if titled:
            parts.append(style.section(section, MAIN_AFTER_DIFF_TITLE if section == "main" else None))
        files: dict[str, list[PackedChunk]] = {}
        for packed in in_section:
            files.setdefault(packed.chunk.path, []).append(packed)
        for path, packed_chunks in files.items():
            parts.append(_render_file(style, path, packed_chunks, line_counts.get(path, 0)))
        if titled:
            parts.append(style.section_close(section, titled=True))
    parts.append(style.postamble())
    return parts, ordered


def shown_redactions(chunks: Iterable[PackedChunk]) -> list[Redaction]:
    """The secrets redacted on the lines the chunks show in their modes."""
    shown = []
    for packed in chunks:
        first, last = visible_lines(packed.chunk, packed.mode)
        shown.extend(Redaction(packed.chunk.path, line, kind) for line, kind in packed.chunk.redactions
                     if first <= line <= last)
    return shown


def _render_file(style: Style, path: str, packed_chunks: list[PackedChunk], line_count: int) -> str:
    body: list[str] = []
    next_line = 1
    for packed in packed_chunks:
        chunk = packed.chunk
        first, last = visible_lines(chunk, packed.mode)
        chunk_lines = split_lines(chunk.text)
        if first > next_line:
            body.append(elision_marker(next_line, first - 1, _indent_of(chunk_lines, chunk, next_line, first)))
        shown = chunk_lines[first - chunk.start_line:last - chunk.start_line + 1]
        if shown and not shown[-1].endswith("\n"):
            shown[-1] += "\n"
        body.extend(shown)
        next_line = last + 1
        if last < chunk.end_line:  # signature mode: the body is elided here
            indent = _indent_of(chunk_lines, chunk, last + 1, chunk.end_line + 1)
            body.append(elision_marker(last + 1, chunk.end_line, indent))
            next_line = chunk.end_line + 1
    if line_count >= next_line:
        body.append(elision_marker(next_line, line_count))
    text = "".join(body)
    fence = _fence_for(text) if style.name == "md" else "```"
    return style.file_open(path, packed_chunks[0].chunk.language, fence) + style.body(text) + style.file_close(fence)


def _indent_of(chunk_lines: list[str], chunk: Chunk, start: int, stop: int) -> str:
    """The indentation of the first non-blank line in start..stop-1, if those lines are in this chunk."""
    for line_number in range(max(start, chunk.start_line), min(stop, chunk.end_line + 1)):
        line = chunk_lines[line_number - chunk.start_line]
        if line.strip():
            return line[: len(line) - len(line.lstrip(" \t"))]
    return ""

"""Stage — pack: scored chunks + budget + tokenizer → the chosen chunks and the pack text.

Greedy by score, with per-piece token estimates; each chunk goes in `full`, or as its `signature` when the
whole does not fit (breadth for depth). The rendered text is then counted exactly and trimmed until it is
within the budget — the estimate only guides, the final count decides — and topped up while room is left.

A tokenizer that costs a request per text (`backend:URL`) offers an `estimator`, a local tokenizer used for
the per-chunk estimates; the rendered text is still counted by the tokenizer itself, a few times per pack.

`pack_split` makes the two-part pack that `ask` sends: a query-independent `stable` section first, chosen by
the ranking without the query for a budget that does not depend on the question, so its text is the same for
every question about the same repo state (a server's prefix cache re-uses it), then the `query` section.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .model import Chunk, PackedChunk, ScoredChunk, Section
from .parse import split_lines
from .render import MAIN_AFTER_DIFF_TITLE, Style, normalise_format, render, render_parts, visible_lines
from .tokens import Tokenizer, joins_exactly

MIN_USEFUL_TOKENS = 12  # below this much room no chunk is worth trying
CHARS_PER_TOKEN_CEILING = 10  # a text longer than this many chars per token of room cannot fit
MARKER_ESTIMATE = 8
MAX_FULL_SHARE = 0.5  # one chunk in full takes at most this share of the budget; beyond, its signature
TOP_UP_ROUNDS = 4


@dataclass
class PackResult:
    text: str
    tokens: int
    chunks: list[PackedChunk]


class _Costs:
    """Token costs of pieces, counted lazily and once."""

    def __init__(self, tokenizer: Tokenizer, style: Style) -> None:
        self.tokenizer = tokenizer
        self.style = style
        self._cache: dict[tuple[str, int, str], int] = {}
        self._files: dict[str, int] = {}

    def visible_text(self, chunk: Chunk, mode: str) -> str:
        first, last = visible_lines(chunk, mode)
        if (first, last) == (chunk.start_line, chunk.end_line):
            return chunk.text
        return "".join(split_lines(chunk.text)[first - chunk.start_line:last - chunk.start_line + 1])

    def chunk(self, chunk: Chunk, mode: str) -> int:
        key = (chunk.path, chunk.start_line, mode)
        if key not in self._cache:
            self._cache[key] = self.tokenizer.count(self.style.body(self.visible_text(chunk, mode)))
        return self._cache[key]

    def file(self, chunk: Chunk) -> int:
        if chunk.path not in self._files:
            frame = self.style.file_open(chunk.path, chunk.language) + self.style.file_close()
            self._files[chunk.path] = self.tokenizer.count(frame) + MARKER_ESTIMATE
        return self._files[chunk.path]


class _TextCounter:
    """Counts pack texts exactly, as rendered in parts. The pack is rendered and counted again after each round,
    and most of its file parts are as before: with a tokenizer whose `splits_after_newline`, each run of parts
    that join exactly (`tokens.joins_exactly`) is counted once per pack and its count summed (counting Django's
    32k-token pack four times over: 0.04 s of a 0.8 s build). Other tokenizers count the joined text."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.by_parts = bool(getattr(tokenizer, "splits_after_newline", False))
        self._counts: dict[str, int] = {}

    def count(self, parts: Sequence[str]) -> int:
        if not self.by_parts:
            return self.tokenizer.count("".join(parts))
        total = 0
        for segment in _segments(parts):
            counted = self._counts.get(segment)
            if counted is None:
                counted = self._counts[segment] = self.tokenizer.count(segment)
            total += counted
        return total


def _segments(parts: Sequence[str]) -> list[str]:
    """The parts, each joined to the one before where they do not join exactly; empty ones dropped."""
    segments: list[str] = []
    for part in parts:
        if not part:
            continue
        if segments and not joins_exactly(segments[-1], part):
            segments[-1] += part
        else:
            segments.append(part)
    return segments


def pack(
    scored: Sequence[ScoredChunk],
    budget: int,
    tokenizer: Tokenizer,
    fmt: str,
    root_name: str,
    line_counts: Mapping[str, int],
    section_of: Callable[[Chunk], Section] | None = None,
    max_full_share: float | None = None,
    pinned: Sequence[PackedChunk] = (),
    header: str = "",
    chunk_counter: Tokenizer | None = None,
) -> PackResult:
    """Choose chunks so that the rendered pack text, counted by `tokenizer`, is ≤ `budget`.

    `pinned` chunks (another section's, already chosen) are always rendered and dropped only as a last resort.
    `header` is rendered text that goes first and is counted in the budget (the staged diff).
    `chunk_counter` counts the chunks while choosing (default: the tokenizer's `estimator`, else the tokenizer);
    the pack text is always counted by `tokenizer`.
    """
    style = Style(normalise_format(fmt))
    costs = _Costs(chunk_counter or chunk_estimator(tokenizer), style)
    frame_cost = tokenizer.count(style.preamble(root_name) + header + style.postamble())
    if header:
        frame_cost += tokenizer.count(style.section("main", MAIN_AFTER_DIFF_TITLE)) + MARKER_ESTIMATE
    if frame_cost + (0 if header else MIN_USEFUL_TOKENS) > budget:
        return PackResult(text="", tokens=0, chunks=[])

    def section(chunk: Chunk) -> Section:
        return section_of(chunk) if section_of else "main"

    chosen: dict[tuple[str, int], PackedChunk] = {p.chunk.key: p for p in pinned}
    fixed = set(chosen)
    open_files: set[tuple[str, str]] = set()  # (section, path): a file shown in two sections is framed twice
    if pinned:  # the pinned text, and the headers two sections add
        headers = "".join(style.section(name) + style.section_close(name) for name in ("stable", "query"))
        pinned_text = render(pinned, root_name, style.name, line_counts, header)[0]
        frame_cost = tokenizer.count(pinned_text) + costs.tokenizer.count(headers)
    full_cap = max(MIN_USEFUL_TOKENS, int(budget * (MAX_FULL_SHARE if max_full_share is None else max_full_share)))

    def fill(room: int) -> int:
        """Add chunks in score order while they fit in `room`; returns the room left."""
        for item in scored:
            if room < MIN_USEFUL_TOKENS:
                break
            chunk = item.chunk
            if chunk.key in chosen:
                continue
            where = (section(chunk), chunk.path)
            overhead = 0 if where in open_files else costs.file(chunk)
            mode = _fit(chunk, room - overhead, full_cap, costs)
            if mode is None:
                continue
            tokens = costs.chunk(chunk, mode)
            room -= tokens + overhead + MARKER_ESTIMATE  # each chunk may open an elision marker
            open_files.add(where)
            chosen[chunk.key] = PackedChunk(chunk=chunk, mode=mode, score=item.score, features=item.features,
                                            tokens=tokens, section=section(chunk))
        return room

    counter = _TextCounter(tokenizer)

    def render_and_count() -> tuple[str, list[PackedChunk], int]:
        parts, ordered = render_parts(chosen.values(), root_name, style.name, line_counts, header)
        return "".join(parts), ordered, counter.count(parts)

    fill(budget - frame_cost)
    text, ordered, count = render_and_count()

    while count > budget and chosen:  # the estimate was short: drop the weakest until the text fits
        overshoot = count - budget
        removable = [p for key, p in chosen.items() if key not in fixed] or list(chosen.values())
        _drop_weakest(chosen, removable, overshoot)
        open_files = _open_files(chosen)
        text, ordered, count = render_and_count()

    margin = MARKER_ESTIMATE
    for _ in range(TOP_UP_ROUNDS):  # room left by the estimate's caution: try the next chunks
        slack = budget - count - margin
        if slack < MIN_USEFUL_TOKENS:
            break
        before, files_before = dict(chosen), set(open_files)
        fill(slack)
        if len(chosen) == len(before):
            break
        new_text, new_ordered, new_count = render_and_count()
        if new_count > budget:  # the estimate was short again: give back this round's weakest chunks
            overshoot = new_count - budget
            kept = _drop_weakest(chosen, [p for key, p in chosen.items() if key not in before], overshoot)
            if kept:
                new_text, new_ordered, new_count = render_and_count()
            if not kept or new_count > budget:  # undo the round, and try again asking for less
                chosen, open_files = before, files_before
                margin += overshoot
                continue
            open_files = _open_files(chosen)
        text, ordered, count = new_text, new_ordered, new_count

    if (not chosen and not header) or count > budget:
        return PackResult(text="", tokens=0, chunks=[])
    return PackResult(text=text, tokens=count, chunks=ordered)


def pack_split(
    stable_ranked: Sequence[ScoredChunk],
    query_ranked: Sequence[ScoredChunk],
    budget: int,
    stable_budget: int,
    tokenizer: Tokenizer,
    fmt: str,
    root_name: str,
    line_counts: Mapping[str, int],
) -> PackResult:
    """A `stable` section (the best chunks by the query-independent ranking, within `stable_budget`) followed by a
    `query` section (the best query chunks not already shown), the whole text ≤ `budget`.

    The stable section depends only on the repo state, the ranking without the query and `stable_budget`, so
    callers that keep `stable_budget` fixed get the same stable text, a shared prompt prefix, for every question.
    """
    stable: list[PackedChunk] = []
    if stable_budget > 0:
        stable = pack(stable_ranked, min(stable_budget, budget), tokenizer, fmt, root_name, line_counts,
                      section_of=lambda _: "stable").chunks
    return pack(query_ranked, budget, tokenizer, fmt, root_name, line_counts, section_of=lambda _: "query",
                pinned=stable)


def _open_files(chosen: dict[tuple[str, int], PackedChunk]) -> set[tuple[str, str]]:
    """The (section, path) frames the chosen chunks open."""
    return {(p.section, p.chunk.path) for p in chosen.values()}


def _drop_weakest(chosen: dict[tuple[str, int], PackedChunk], candidates: list[PackedChunk], overshoot: int) -> int:
    """Take the weakest of `candidates` out of `chosen` until their estimated tokens cover `overshoot`;
    returns how many candidates stay."""
    ordered = sorted(candidates, key=lambda p: (p.score, p.chunk.path, p.chunk.start_line))
    for dropped, packed in enumerate(ordered, start=1):
        del chosen[packed.chunk.key]
        overshoot -= packed.tokens + MARKER_ESTIMATE
        if overshoot <= 0:
            return len(ordered) - dropped
    return 0


def chunk_estimator(tokenizer: Tokenizer) -> Tokenizer:
    """What chunks are counted with while choosing: a costly tokenizer's local `estimator`, else itself."""
    estimator: Tokenizer | None = getattr(tokenizer, "estimator", None)
    return estimator or tokenizer


def _fit(chunk: Chunk, room: int, full_cap: int, costs: _Costs) -> str | None:
    """`full` if the whole chunk fits, else `signature` if that fits, else None."""
    if room < 1:
        return None
    if len(chunk.text) <= room * CHARS_PER_TOKEN_CEILING:
        full = costs.chunk(chunk, "full")
        if full <= room and full <= full_cap:
            return "full"
    if (chunk.signature and len(chunk.signature) <= room * CHARS_PER_TOKEN_CEILING
            and costs.chunk(chunk, "signature") + MARKER_ESTIMATE <= room):
        return "signature"
    return None


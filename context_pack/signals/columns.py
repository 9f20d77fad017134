"""Per-chunk columns that the ranking reads of every chunk: line, file, kind, test, text, definitions, TODOs,
class. Each is a pass over ~10^5 chunk objects (10–40 ms on Django); they depend only on the chunks, so the
index keeps them for the next build of the same files (`Corpus.columns`), which then reads arrays. After an
edit, the next build copies the unchanged files' values of the per-chunk columns (`ChunkColumns.patched`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from operator import attrgetter

import numpy as np

from ..lang import GRAMMARS
from ..model import Chunk, chunk_paths
from . import definitions, todo

OTHER, IMPORTS, BLOCK, FUNCTION, METHOD, CLASS = range(6)
KIND_CODES = {"imports": IMPORTS, "block": BLOCK, "function": FUNCTION, "method": METHOD,
              **dict.fromkeys(("class", "struct", "interface", "enum", "trait", "impl"), CLASS)}

_DTYPES = {  # every column, by name
    "start_lines": np.int64, "file_numbers": np.int64, "kinds": np.int8, "is_test": bool, "is_text": bool,
    "definitions": np.float64, "todo": np.float64, "owners": np.int64, "classes": np.int64,
    "definition_raw": np.float64,
}
# The columns whose values depend on each chunk alone: a build after an edit takes the unchanged files' values
# from the previous build's columns (`ChunkColumns.patched`) and makes only the edited files' again. `classes`
# is patched too (a class lies within one file), then numbered again.
PER_CHUNK = ("start_lines", "kinds", "is_test", "is_text", "todo", "definition_raw")
# What a question reads besides: a build that keeps columns makes these too (`Corpus.remember_columns`).
FOR_QUESTIONS = ("kinds", "is_text", "classes")

Layout = list[tuple[str, str, str, int]]  # per file with chunks, in chunk order: path, content hash, language, count


class _Column:
    """A `ChunkColumns` attribute read through `ChunkColumns._column`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, columns: ChunkColumns, owner: type | None = None) -> np.ndarray:
        return columns._column(self.name)


class ChunkColumns:
    """The columns of a chunk list, each made when first read unless `stored` (a previous build's, for the same
    chunks) holds it; `made` names those this one made."""

    def __init__(self, chunks: Sequence[Chunk], stored: Mapping[str, np.ndarray] | None = None,
                 owner_names: Sequence[str] | None = None, layout: Layout | None = None) -> None:
        """`layout`: which files' chunks these are (kept with the columns, for `patched`)."""
        self.chunks = chunks
        self.layout = layout
        self._values: dict[str, np.ndarray] = {}
        self._owner_names = list(owner_names) if owner_names is not None else None
        for name, value in (stored or {}).items():
            if name in _DTYPES and len(value) == len(chunks):
                self._values[name] = np.asarray(value, dtype=_DTYPES[name])
        if "owners" in self._values and self._owner_names is None:
            del self._values["owners"]
        self.made: list[str] = []

    def __len__(self) -> int:
        return len(self.chunks)

    def _column(self, name: str) -> np.ndarray:
        value = self._values.get(name)
        if value is None:
            value = self._values[name] = np.asarray(getattr(self, f"_make_{name}")(), dtype=_DTYPES[name])
            self.made.append(name)
        return value

    # Each an array with one value per chunk, made by `_make_<name>` unless kept.
    start_lines = _Column()
    file_numbers = _Column()  # the chunk's file, numbered in path order (as `CodeGraph.file_of_chunk`)
    kinds = _Column()  # the chunk's kind as a code (`KIND_CODES`; OTHER for the rest)
    is_test = _Column()
    is_text = _Column()  # plain text: the language has no grammar
    definitions = _Column()  # `signals.definitions`
    definition_raw = _Column()  # `signals.definitions.raw`: before the corpus-wide scaling
    todo = _Column()  # `signals.todo`
    classes = _Column()  # the chunk's class (members of one container in one file), numbered; -1 if none or alone

    @property
    def owners(self) -> tuple[np.ndarray, list[str]]:
        """(each chunk's owner number, the owner names): a member `pkg.Class.method` is owned by `Class`;
        -1 for chunks that are no member."""
        numbers = self._column("owners")
        assert self._owner_names is not None
        return numbers, self._owner_names

    def _make_start_lines(self) -> np.ndarray:
        return np.fromiter(map(attrgetter("start_line"), self.chunks), dtype=np.int64, count=len(self.chunks))

    def _make_file_numbers(self) -> np.ndarray:
        if self.layout is not None:  # from the files, without reading the chunks
            number = {path: i for i, path in enumerate(sorted(path for path, _, _, _ in self.layout))}
            return np.repeat(np.array([number[path] for path, _, _, _ in self.layout], dtype=np.int64),
                             [count for _, _, _, count in self.layout])
        paths = chunk_paths(self.chunks)
        number = {path: i for i, path in enumerate(sorted(set(paths)))}
        return np.fromiter(map(number.__getitem__, paths), dtype=np.int64, count=len(paths))

    def _make_kinds(self) -> np.ndarray:
        code = KIND_CODES.get
        return np.fromiter((code(c.kind, OTHER) for c in self.chunks), dtype=np.int8, count=len(self.chunks))

    def _make_is_test(self) -> np.ndarray:
        return np.fromiter(map(attrgetter("is_test"), self.chunks), dtype=bool, count=len(self.chunks))

    def _make_is_text(self) -> np.ndarray:
        return np.fromiter((c.language not in GRAMMARS for c in self.chunks), dtype=bool, count=len(self.chunks))

    def _make_definitions(self) -> np.ndarray:
        return definitions.normalise(self.definition_raw)

    def _make_definition_raw(self) -> list[float]:
        return definitions.raw(self.chunks)

    def _make_todo(self) -> list[float]:
        return todo.compute(list(self.chunks))

    def _make_owners(self) -> np.ndarray:
        names: dict[str, int] = {}
        number = [-1] * len(self.chunks)
        for i, name in enumerate(map(attrgetter("name"), self.chunks)):
            dot = name.rfind(".")
            if dot > 0:
                container = name[:dot]
                number[i] = names.setdefault(container[container.rfind(".") + 1:], len(names))
        self._owner_names = list(names)
        return np.array(number, dtype=np.int64)

    def _make_classes(self) -> np.ndarray:
        groups: dict[tuple[str, str], int] = {}
        numbers = [-1] * len(self.chunks)
        for i, chunk in enumerate(self.chunks):
            name = chunk.name
            dot = name.rfind(".")
            if dot > 0:
                numbers[i] = groups.setdefault((chunk.path, name[:dot]), len(groups))
        group = np.array(numbers, dtype=np.int64)
        member = np.flatnonzero(group >= 0)
        sizes = np.bincount(group[member], minlength=len(groups))
        group[member[sizes[group[member]] < 2]] = -1  # alone in its class
        return _numbered_in_order(group)

    def to_bytes(self) -> bytes:
        """The columns had so far, as an .npz (read back without pickle)."""
        arrays = dict(self._values)
        if self.layout is not None:
            arrays["layout"] = np.frombuffer(json.dumps(self.layout, ensure_ascii=False).encode(
                "utf-8", "surrogatepass"), dtype=np.uint8)
        if "owners" in arrays:
            names = json.dumps(self._owner_names, ensure_ascii=False).encode("utf-8", "surrogatepass")
            arrays["owner_names"] = np.frombuffer(names, dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, chunks: Sequence[Chunk], value: bytes) -> ChunkColumns:
        """The columns `to_bytes` kept, for these chunks (the same ones); a column that does not fit is made
        again. Raises ValueError (or what numpy raises) on a damaged value."""
        with np.load(io.BytesIO(value), allow_pickle=False) as arrays:
            stored = {name: arrays[name] for name in _DTYPES if name in arrays.files}
            owner_names = None
            if "owner_names" in arrays.files:
                owner_names = json.loads(arrays["owner_names"].tobytes().decode("utf-8", "surrogatepass"))
                if not isinstance(owner_names, list) or not all(isinstance(n, str) for n in owner_names):
                    raise ValueError("bad owner names")
                owners = stored.get("owners")
                if owners is not None and len(owners) and int(np.max(owners)) >= len(owner_names):
                    raise ValueError("owner numbers past the names")
        for name in ("owners", "classes"):  # numbers of a list, or -1
            if name in stored and len(stored[name]) and int(np.min(stored[name])) < -1:
                raise ValueError(f"bad {name}")
        return cls(chunks, stored, owner_names)

    @classmethod
    def patched(cls, chunks: Sequence[Chunk], layout: Layout, previous: bytes) -> ChunkColumns:
        """Columns for `chunks` (laid out as `layout` says) from an earlier build's (`previous`, with its
        layout): each `PER_CHUNK` column it kept, and `classes`, is copied for the files whose path, content,
        language and chunk count are as then, and made for the others' chunks. What it did not keep is made
        when read.
        Raises ValueError (or what numpy raises) on a damaged value."""
        with np.load(io.BytesIO(previous), allow_pickle=False) as arrays:
            if "layout" not in arrays.files:
                raise ValueError("no layout")
            old_layout = json.loads(arrays["layout"].tobytes().decode("utf-8", "surrogatepass"))
            kept = {name: arrays[name] for name in (*PER_CHUNK, "classes") if name in arrays.files}
        if "classes" in kept and len(kept["classes"]) and int(kept["classes"].min()) < -1:
            raise ValueError("bad classes")
        if not isinstance(old_layout, list) or not all(
                isinstance(row, list) and len(row) == 4 and all(isinstance(v, str) for v in row[:3])
                and isinstance(row[3], int) and row[3] >= 0 for row in old_layout):
            raise ValueError("bad layout")
        old_total = sum(row[3] for row in old_layout)
        if sum(count for *_, count in layout) != len(chunks) or any(len(v) != old_total for v in kept.values()):
            raise ValueError("layout does not fit")
        where: dict[tuple[str, str, str, int], int] = {}
        offset = 0
        for path, digest, language, count in old_layout:
            where[(path, digest, language, count)] = offset
            offset += count
        pieces: dict[str, list[np.ndarray]] = {name: [] for name in kept}
        next_group = int(kept["classes"].max(initial=-1)) + 1 if "classes" in kept else 0
        start = 0
        for path, digest, language, count in layout:
            old = where.get((path, digest, language, count))
            fresh = ChunkColumns(chunks[start:start + count]) if old is None else None
            for name, values in kept.items():
                if fresh is None:
                    pieces[name].append(values[old:old + count])
                elif name == "classes":  # a class lies within one file: the file's own, numbered past the rest
                    numbers = fresh.classes
                    pieces[name].append(np.where(numbers >= 0, numbers + next_group, -1))
                    next_group += int(numbers.max(initial=-1)) + 1
                else:
                    pieces[name].append(fresh._column(name))
            start += count
        values = {name: np.concatenate(parts) if parts else np.zeros(0, dtype=_DTYPES[name])
                  for name, parts in pieces.items()}
        if "classes" in values:  # copied numbers stay apart from fresh ones (+ next), then are renumbered
            values["classes"] = _numbered_in_order(values["classes"])
        columns = cls(chunks, values, layout=layout)
        columns.made.extend(name for name in kept if name in columns._values)
        return columns


def _numbered_in_order(group: np.ndarray) -> np.ndarray:
    """Group numbers 0, 1, 2, ... in the order each group first appears; -1 stays."""
    member = group >= 0
    if not member.any():
        return group
    numbers, first = np.unique(group[member], return_index=True)
    rank = np.empty(len(numbers), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(numbers))
    out = group.copy()
    out[member] = rank[np.searchsorted(numbers, group[member])]
    return out

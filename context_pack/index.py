"""Stage — index: parsed files kept in `.ctxpack/index.db`, keyed by content hash.

An unchanged file is never parsed twice: its stat data (size, mtime) is checked first, so it costs no
read; a changed stat costs a read and a hash, and only a changed hash costs a parse. Rows are plain
text, JSON and little-endian integer arrays — never pickle, since a db file in a repository is not to be
trusted. A db that is corrupt,
truncated, foreign or of another schema is rebuilt with a warning; a `.ctxpack/` that cannot be written
falls back to an in-memory index with a warning. One transaction per update, WAL, a busy timeout.
A big update's last part — its full-text rows and the COMMIT — is written by a thread while the build ranks
and packs (`_WriteBehind`); the build reads what it wrote from memory meanwhile.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import logging
import os
import re
import sqlite3
import sys
import threading
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, overload

from .model import Chunk, LazyChunks, Links, make_chunk

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("context_pack")

SCHEMA_VERSION = 12  # 10: structure digests of the stored rows; 11: full-text rows hold the body only;
# 12: the full-text table keeps no copy of its documents
PAGE_SIZE = 65536
# Query terms per chunk, for BM25 (SQLite's FTS5 ranks with Okapi BM25, k1=1.2, b=0.75); Porter stemming, so an
# issue's "formsets" finds the code's `formset`.
# A row is its chunk by rowid alone (`files.terms_from`): a path and ordinal stored per row cost 10 % more.
# Contentless (content=''): FTS5 keeps its index of the documents, not a copy of them (Django: 31 MB of 96), so
# a cold build writes and copies less; a row is removed by giving its document again, made again from the
# file's rows (`_documents`).
TERMS_TABLE = ("CREATE VIRTUAL TABLE terms USING fts5(body, content = '', "
               "tokenize = 'porter unicode61 remove_diacritics 0')")
# FTS5 gathers new rows' terms in memory and writes them out when this many bytes are pending (its own default
# is 1 MB): fewer, bigger segments to write and merge (all stdlib chunks: 0.94 s → 0.85 s of CPU). The same
# BM25 scores, to the bit.
TERMS_HASH_BYTES = 16 * 1024 * 1024
INDEX_DIR = ".ctxpack"
INDEX_FILE = "index.db"
BUSY_TIMEOUT_MS = 10_000
# A write that leaves a WAL this big is copied into the db file by a thread (`Index.checkpoint_in_background`).
CHECKPOINT_BYTES = 4 * 1024 * 1024
TRUNCATE_WAIT_MS = 200
RESULTS = 8  # packs kept (`results`)
# An update that parses this many files leaves its full-text rows and COMMIT to a thread (`_WriteBehind`).
WRITE_BEHIND_FILES = 64
TERMS_PER_STATEMENT = 5000  # full-text rows per INSERT statement when written behind (`_insert_terms`)
SPLIT_QUERY_TERMS = 24  # a query with more terms is asked in two parts (`Index.bm25`)
COMMON_TERM_SHARE = 500  # a term is common when it is in over 1/500 of the chunks
APPLICATION_ID = 0x63747870  # "ctxp": marks the file as ours
# sqlite errors that say the disk or the permissions are at fault, not the db file (SQLITE_READONLY,
# SQLITE_CANTOPEN, SQLITE_IOERR, SQLITE_FULL, SQLITE_NOMEM): fall back to memory and leave the file alone.
_CANNOT_WRITE = ("readonly", "read-only", "unable to open", "disk I/O error", "disk is full", "out of memory")


class Stat(NamedTuple):  # tuples: a build makes and compares one per file, several times (4,000 on Django)
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class FileRows:
    """A file's parse as the index stores it, made where the file was parsed (`encode_file`, in a parse worker):
    a cold build then passes strings between processes instead of ~10^5 chunk objects, and stores them as
    they come."""

    structure: str  # `structure_digest`
    names: str  # `encode_chunks`
    numbers: bytes
    links: str  # `encode_links`
    details: str  # `encode_details`
    source: str  # the chunks' texts, joined
    terms: list[str]  # per chunk: its full-text document


def encode_file(language: str, chunks: Sequence[Chunk], terms: Sequence[str]) -> FileRows:
    names, numbers = encode_chunks(chunks)
    links = encode_links(chunks)
    return FileRows(structure_digest(language, names, links), names, numbers, links, encode_details(chunks),
                    "".join(c.text for c in chunks), list(terms))


@dataclass
class ParsedFile:
    """A fresh parse on its way into the index."""

    hash: str
    stat: Stat
    language: str
    rows: FileRows

    @property
    def structure(self) -> str:
        return self.rows.structure

    def cached(self, path: str) -> CachedFile:
        """The parse as a build reads it from the index (`Index.load`): chunks without their text."""
        return CachedFile(path, self.hash, self.stat, self.language, self.rows.names, self.rows.numbers)


class StoredFile(NamedTuple):
    hash: str
    stat: Stat
    language: str
    structure: str  # `structure_digest` of its chunks


class CachedFile:
    """A file's chunks as the index holds them: without their text (see `Index.bodies`).

    The rows are checked when read, and decoded into chunks when the chunks are first asked for: a build after
    an edit ranks from kept columns and reads the chunks of the files it packs, not of every file (decoding all
    of Django's 78,000: ~0.09 s). Raises ValueError (or TypeError) for rows that would not decode."""

    __slots__ = ("_decoded", "_names", "_numbers", "count", "hash", "language", "path", "stat")

    def __init__(self, path: str, digest: str, stat: Stat, language: str, names: str, numbers: bytes) -> None:
        if not isinstance(names, str) or not isinstance(numbers, bytes) or not isinstance(language, str):
            raise TypeError("bad row types")
        count, rest = divmod(len(numbers), 8 * _NUMBERS)
        if rest:
            raise ValueError("bad numbers")
        self.path, self.hash, self.stat, self.language, self.count = path, digest, stat, language, count
        self._names, self._numbers = names, numbers
        self._decoded: tuple[list[Chunk], list[int]] | None = None
        if not names.startswith(_JOINED):  # JSON (rare): checked by decoding it now
            self._decoded = decode_chunks(path, language, names, numbers)
        elif count and names.count(_FIELD) != 3 * count - 1:  # what `_fields` would find
            raise ValueError("row does not match its chunk count")

    def _decode(self) -> tuple[list[Chunk], list[int]]:
        if self._decoded is None:
            self._decoded = decode_chunks(self.path, self.language, self._names, self._numbers)
        return self._decoded

    def decoded_now(self) -> CachedFile:
        """This file, its chunks decoded now rather than when first read."""
        self._decode()
        return self

    @property
    def decoded(self) -> bool:
        """The chunks were asked for (or the row is JSON, decoded when read)."""
        return self._decoded is not None

    @property
    def chunks(self) -> list[Chunk]:
        return self._decode()[0]

    @property
    def symbols(self) -> list[tuple[str, ...]]:
        """Each chunk's symbols, read without decoding the chunks (the graph reads the symbols of every file)."""
        if self._decoded is not None:
            return [chunk.symbols for chunk in self._decoded[0]]
        return [_items(field) for field in self._names[1:].split(_FIELD)[2::3]] if self.count else []

    @property
    def lengths(self) -> list[int]:
        """Each chunk's text length, in characters."""
        return self._decode()[1]

    @property
    def last_line(self) -> int:
        """The last chunk's end line (0 without chunks), read without decoding the chunks."""
        if not self.count:
            return 0
        at = len(self._numbers) - 8 * (_NUMBERS - 1)  # the last chunk's second number
        return int.from_bytes(self._numbers[at:at + 8], "little", signed=True)


class ChunkList(LazyChunks):
    """The chunks of cached files, file after file, as one sequence. A file's chunks are decoded when one of
    them is first read, so that a build that reads few decodes few; iterating decodes them all."""

    def __init__(self, files: Iterable[CachedFile]) -> None:
        self.files = [file for file in files if file.count]
        self.by_path = {file.path: file for file in self.files}  # in sequence order
        self._starts = list(itertools.accumulate((file.count for file in self.files), initial=0))
        self._block = {file.path: number for number, file in enumerate(self.files)}
        self._flat: list[Chunk] | None = None  # every chunk, once iterated: later passes read a plain list

    def __len__(self) -> int:
        return self._starts[-1]

    @overload
    def __getitem__(self, position: int) -> Chunk: ...

    @overload
    def __getitem__(self, position: slice) -> list[Chunk]: ...

    def __getitem__(self, position: int | slice) -> Chunk | list[Chunk]:
        if self._flat is not None:
            return self._flat[position]
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError("chunk position out of range")
        block = bisect.bisect_right(self._starts, position) - 1
        return self.files[block].chunks[position - self._starts[block]]

    def __iter__(self) -> Iterator[Chunk]:
        if self._flat is None:  # a pass over every chunk (a cold build's graph and columns make several)
            self._flat = [chunk for file in self.files for chunk in file.chunks]
        return iter(self._flat)

    def of_file(self, path: str) -> tuple[int, list[Chunk]]:
        """A file's position in the sequence (of its first chunk) and its chunks; (0, []) for a file without."""
        block = self._block.get(path)
        if block is None:
            return 0, []
        return self._starts[block], self.files[block].chunks

    def paths(self) -> list[str]:
        """Each chunk's path, without decoding any."""
        return [path for file in self.files for path in itertools.repeat(file.path, file.count)]

    def symbols(self) -> list[tuple[str, ...]]:
        """Each chunk's symbols, without decoding any."""
        return [symbols for file in self.files for symbols in file.symbols]



def content_hash(data: bytes) -> str:
    """Git's blob id: the same hash git reports for a clean tracked file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def structure_digest(language: str, names: str, links: str) -> str:
    """What the code graph sees of a file: its language and its chunks' kinds, names, definitions, uses and
    imports (the `names` and `links` rows; not `numbers`, which has the lines).

    An edit that leaves these alone (a comment, a literal, a reformatted body) keeps the digest, so the
    graph and its PageRank are not recomputed for it.
    """
    return hashlib.sha1(f"{language}\0{names}\0{links}".encode()).hexdigest()


# What a packed chunk needs beyond ranking: (signature, signature_line, redactions).
Details = tuple[str, int, tuple[tuple[int, str], ...]]

# Rows are read for every file on every build, so they avoid JSON: strings joined by control characters
# (split in C, ~5x quicker to read than JSON) and integers as one array. A row whose strings hold those
# characters, or that would be ambiguous (one empty item), is stored as JSON instead; JSON starts with "[".
_JOINED = "\x1d"  # first character of a joined row
_FIELD = "\x1f"
_ITEM = "\x1e"
_CONTROL = re.compile("[\x1d-\x1f]")
_NUMBERS = 5  # per chunk: start_line, end_line, text length, todo_count, is_test


def _joined(fields: Sequence[str | Sequence[str]]) -> str | None:
    """Strings and lists of strings as one text; None when a separator could be misread in it."""
    flat: list[str] = []
    parts: list[str] = []
    for field in fields:
        if isinstance(field, str):
            flat.append(field)
            parts.append(field)
        else:
            if len(field) == 1 and not field[0]:
                return None  # [""] would read back as []
            flat.extend(field)
            parts.append(_ITEM.join(field))
    if _CONTROL.search("".join(flat)):
        return None
    return _JOINED + _FIELD.join(parts)


def _fields(text: str, count: int) -> list[str]:
    fields = text[1:].split(_FIELD) if count else []
    if len(fields) != count:
        raise ValueError("row does not match its chunk count")
    return fields


def _items(field: str) -> tuple[str, ...]:
    return tuple(field.split(_ITEM)) if field else ()


def encode_chunks(chunks: Sequence[Chunk]) -> tuple[str, bytes]:
    """What ranking reads of a file's chunks: (kinds, names and symbols as text; numbers as an array).
    The text itself is stored once per file (`source`) and cut back out by each chunk's length; uses and
    imports (`links`) and what only packing needs (`details`) are stored apart."""
    # array, not numpy: this runs in the parse workers, where importing numpy would cost each ~0.05 s.
    values = array("q", [v for c in chunks for v in (c.start_line, c.end_line, len(c.text), c.todo_count,
                                                     int(c.is_test))])
    if sys.byteorder == "big":
        values.byteswap()  # stored little-endian
    numbers = values.tobytes()
    joined = _joined([field for c in chunks for field in (c.kind, c.name, c.symbols)])
    if joined is not None:
        return joined, numbers
    return json.dumps([[c.kind, c.name, list(c.symbols)] for c in chunks], ensure_ascii=False), numbers


def decode_chunks(path: str, language: str, names: str, numbers: bytes) -> tuple[list[Chunk], list[int]]:
    """A file's chunks without their text, references, imports and details, and each text's length."""
    import numpy as np

    values = np.frombuffer(numbers, dtype="<i8").tolist()
    count = len(values) // _NUMBERS
    if len(values) != count * _NUMBERS:
        raise ValueError("bad numbers")
    if names.startswith(_JOINED):
        fields = _fields(names, 3 * count)
        kinds, chunk_names, symbol_lists = fields[0::3], fields[1::3], [_items(f) for f in fields[2::3]]
    else:
        rows = [(str(kind), str(name), tuple(map(str, symbols))) for kind, name, symbols in json.loads(names)]
        if len(rows) != count:
            raise ValueError("row does not match its chunk count")
        kinds, chunk_names, symbol_lists = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
    chunks = [make_chunk(path, language, kind, name, start, end, "", "", 0, symbols, (), (), todo, test == 1)
              for kind, name, symbols, start, end, todo, test in zip(
                  kinds, chunk_names, symbol_lists, values[0::_NUMBERS], values[1::_NUMBERS], values[3::_NUMBERS],
                  values[4::_NUMBERS], strict=True)]
    return chunks, values[2::_NUMBERS]


def encode_links(chunks: Sequence[Chunk]) -> str:
    joined = _joined([field for c in chunks for field in (c.references, c.imports)])
    if joined is not None:
        return joined
    return json.dumps([[c.references, c.imports] for c in chunks], ensure_ascii=False)


def decode_links(text: str, count: int) -> list[Links]:
    if text.startswith(_JOINED):
        fields = _fields(text, 2 * count)
        return [(_items(fields[i]), _items(fields[i + 1])) for i in range(0, 2 * count, 2)]
    links = [(tuple(map(str, refs)), tuple(map(str, imports))) for refs, imports in json.loads(text)]
    if len(links) != count:
        raise ValueError("row does not match its chunk count")
    return links


def encode_details(chunks: Sequence[Chunk]) -> str:
    return json.dumps([[c.signature, c.signature_line, [list(r) for r in c.redactions]] for c in chunks],
                      ensure_ascii=False, separators=(",", ":"))


def decode_details(text: str) -> list[Details]:
    return [(str(signature), int(line), tuple((int(at), str(kind)) for at, kind in redactions))
            for signature, line, redactions in json.loads(text)]


class Index:
    """The per-repository cache. `Index.open(root)` never raises for a bad db: it rebuilds."""

    def __init__(self, connection: sqlite3.Connection, fingerprint: str, location: str) -> None:
        self._db = connection
        self.fingerprint = fingerprint
        self.location = location  # a path, or ":memory:"
        self._prefetch: BM25Prefetch | None = None
        self._checkpoint: threading.Thread | None = None
        self._behind: _WriteBehind | None = None
        self._reader: sqlite3.Connection | None = None
        # path -> (hash, links, source, details) of each file an update written behind stored: what this
        # build reads of them comes from here, not from rows another connection cannot see yet.
        self._written: dict[str, tuple[str, str, str, str]] = {}

    @property
    def db(self) -> sqlite3.Connection:
        """The index's connection, once any write left behind (`_WriteBehind`) has committed."""
        self._settle()
        return self._db

    def _settle(self) -> None:
        """Wait for the write left behind, if any (unless asked by its own thread)."""
        behind = self._behind
        if behind is not None and not behind.is_current():
            behind.wait()
            self._behind = None

    @property
    def _read_db(self) -> sqlite3.Connection:
        """A connection to read committed rows with: while a write is behind (the first connection is its
        thread's until it commits), a second, read-only one."""
        behind = self._behind
        if behind is None or behind.is_current() or behind.finished():
            return self.db
        if self._reader is None:
            self._reader = sqlite3.connect(f"{Path(self.location).resolve().as_uri()}?mode=ro", uri=True,
                                           timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        return self._reader

    def _after_behind(self, write: Callable[[], None]) -> None:
        """Run a write now, or, while a write is behind, after it in its thread (in the order asked)."""
        behind = self._behind
        if behind is None or behind.is_current() or not behind.queue(write):
            write()

    # -- opening ---------------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path, fingerprint: str, use_disk: bool = True) -> Index:
        if not use_disk:
            return cls._memory(fingerprint)
        directory = root / INDEX_DIR
        try:
            _ensure_dir(directory)
        except OSError as exc:
            log.warning("cannot write %s (%s); using an in-memory index", directory, exc.strerror or exc)
            return cls._memory(fingerprint)
        path = directory / INDEX_FILE
        for attempt in range(2):
            connection: sqlite3.Connection | None = None
            try:
                connection = _connect(path)
                index = cls(connection, fingerprint, str(path))
                index._prepare()
                return index
            except sqlite3.OperationalError as exc:
                if connection is not None:
                    connection.close()
                if "locked" in str(exc) or "busy" in str(exc):
                    log.warning("index is busy (%s); using an in-memory index this time", exc)
                    return cls._memory(fingerprint)
                if any(word in str(exc) for word in _CANNOT_WRITE):  # the disk, not the file: keep the file
                    log.warning("cannot write %s (%s); using an in-memory index", path, exc)
                    return cls._memory(fingerprint)
                if attempt:
                    log.warning("cannot rebuild %s (%s); using an in-memory index", path, exc)
                    return cls._memory(fingerprint)
                _discard(path, f"unusable index ({exc})")
            except (sqlite3.DatabaseError, _Foreign) as exc:
                if connection is not None:
                    connection.close()
                if attempt:
                    log.warning("cannot rebuild %s (%s); using an in-memory index", path, exc)
                    return cls._memory(fingerprint)
                _discard(path, str(exc) or "corrupt index")
        return cls._memory(fingerprint)  # pragma: no cover - the loop returns or raises

    @classmethod
    def _memory(cls, fingerprint: str) -> Index:
        index = cls(sqlite3.connect(":memory:", isolation_level=None), fingerprint, ":memory:")
        index._prepare()
        return index

    @contextmanager
    def _transaction(self, commit: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction, rolled back on an exception; `commit=False` leaves it open on success, for
        the caller to end (`_commit_behind`)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")  # take the write lock now: concurrent builds queue here
        try:
            yield db
        except BaseException:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        if commit:
            db.execute("COMMIT")

    def _prepare(self) -> None:
        with self._transaction() as db:
            (application_id,) = db.execute("PRAGMA application_id").fetchone()
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and application_id != APPLICATION_ID:
                raise _Foreign("not a ctxpack index")
            if not tables:
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                # Small columns first: reading a column after `source` walks the row's overflow pages.
                db.execute("CREATE TABLE files (path TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER NOT NULL, "
                           "mtime_ns INTEGER NOT NULL, language TEXT NOT NULL, structure TEXT NOT NULL, "
                           "terms_from INTEGER NOT NULL, terms_to INTEGER NOT NULL, "
                           "names TEXT NOT NULL, numbers BLOB NOT NULL, links TEXT NOT NULL, "
                           "details TEXT NOT NULL, source TEXT NOT NULL)")
                # Token counts of chunk texts, per tokenizer id and text digest (what the packer counts).
                db.execute("CREATE TABLE token_counts (tokenizer TEXT NOT NULL, digest TEXT NOT NULL, "
                           "count INTEGER NOT NULL, PRIMARY KEY (tokenizer, digest)) WITHOUT ROWID")
                # Query-independent results derived from the whole corpus (its centrality), by content key.
                db.execute("CREATE TABLE derived (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
                # Query terms per chunk (TERMS_TABLE). A file's rows have the rowids `files.terms_from` to
                # `terms_to`, so that replacing a file need not scan the table.
                _make_terms(db)
                # Whole packs by the digest of everything they depend on (`pipeline.result_key`), the newest few.
                db.execute("CREATE TABLE results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                               [("schema", str(SCHEMA_VERSION)), ("fingerprint", self.fingerprint)])
                return
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("schema") != str(SCHEMA_VERSION):
                raise _Foreign(f"index schema {meta.get('schema')!r}, expected {SCHEMA_VERSION}")
            db.execute("SELECT path, hash, size, mtime_ns, language, structure, names, numbers, links, details, "
                       "source, terms_from, terms_to FROM files LIMIT 1")
            db.execute("SELECT key, value FROM derived LIMIT 1").fetchall()
            db.execute("SELECT tokenizer, digest, count FROM token_counts LIMIT 1").fetchall()
            db.execute("SELECT body FROM terms LIMIT 1").fetchall()
            db.execute("SELECT key, value FROM results LIMIT 1").fetchall()
            if meta.get("fingerprint") != self.fingerprint:  # parser or settings changed: every parse is stale
                db.execute("DELETE FROM files")
                _empty_terms(db)
                db.execute("DELETE FROM derived")
                db.execute("DELETE FROM token_counts")
                db.execute("DELETE FROM results")
                db.execute("UPDATE meta SET value = ? WHERE key = 'fingerprint'", (self.fingerprint,))

    def close(self) -> None:
        """Wait for the writes left behind and the WAL copy, then close."""
        self._forget_prefetched()
        self._settle()
        self._written.clear()
        if self._reader is not None:
            with suppress(sqlite3.Error):
                self._reader.close()
            self._reader = None
        if self._checkpoint is not None:  # first: the closing connection checkpoints what it left, if it can
            self._checkpoint.join()
            self._checkpoint = None
        with suppress(sqlite3.Error):
            self._db.close()

    def checkpoint_in_background(self) -> None:
        """Copy a big WAL into the db file in a thread: sqlite copies without the GIL, so the build ranks
        and packs meanwhile on the other core (a cold standard library build wrote 110 MB: copying it at
        the commit held the build 0.36 s). The connection's own checkpoints are off (`_connect`), so a commit
        never copies; what a build writes after this, its connection copies as it closes. `update` starts
        one, after its parse workers have forked, and the build another once the ranking has kept what it
        made (graph, columns: ~18 MB of WAL on Django after an edit, 0.04 s to copy at the close); nothing
        forks after either. While a write is behind, the copy starts after it."""
        self._after_behind(self._start_checkpoint)

    def _start_checkpoint(self) -> None:
        if self.location == ":memory:":
            return
        if self._checkpoint is not None:
            if self._checkpoint.is_alive():
                return
            self._checkpoint.join()
            self._checkpoint = None
        try:
            if os.path.getsize(f"{self.location}-wal") < CHECKPOINT_BYTES:
                return
        except OSError:
            return
        self._checkpoint = threading.Thread(target=_checkpoint, args=(self.location,), name="ctxpack-checkpoint",
                                            daemon=True)
        self._checkpoint.start()

    # -- reading and writing ---------------------------------------------------------------------------

    def stored(self) -> dict[str, StoredFile]:
        """What the index knows of every file, without its chunks."""
        rows = self.db.execute("SELECT path, hash, size, mtime_ns, language, structure FROM files")
        return {path: StoredFile(digest, Stat(size, mtime), language, structure)
                for path, digest, size, mtime, language, structure in rows}

    def load(self, paths: Iterable[str]) -> Iterator[tuple[str, CachedFile]]:
        """The cached parse of each path that has one; rows that do not decode are skipped (re-parsed)."""
        wanted = set(paths)
        rows = self.db.execute("SELECT path, hash, size, mtime_ns, language, names, numbers FROM files")
        for path, digest, size, mtime, language, names, numbers in rows:  # one scan beats batches of IN (...)
            if path not in wanted:
                continue
            try:
                cached = CachedFile(path, digest, Stat(size, mtime), language, names, numbers)
            except (ValueError, TypeError, IndexError):
                continue
            yield path, cached

    def links(self, path: str, digest: str, count: int) -> list[Links] | None:
        """Each chunk's (references, imports) of a file as indexed with `digest`; None if that is gone."""
        found = self.all_links({path: (digest, count)})
        return found.get(path)

    def all_links(self, expected: Mapping[str, tuple[str, int]]) -> dict[str, list[Links]]:
        """`links` of many files at once (path -> the hash and chunk count expected); a file indexed with
        another hash, or whose row does not decode, is left out."""
        found = {}
        written = [(path, *self._written[path][:2]) for path in expected if path in self._written]
        rest = [path for path in expected if path not in self._written]
        rows: Iterable[tuple[str, str, str]] = []
        if len(rest) > 64:
            rows = self._read_db.execute("SELECT path, hash, links FROM files")
        elif rest:  # a few files: look them up rather than read every row
            rows = [row for path in rest for row in
                    self._read_db.execute("SELECT path, hash, links FROM files WHERE path = ?", (path,))]
        for path, digest, text in itertools.chain(written, rows):
            if path in found:
                continue
            want = expected.get(path)
            if want is None or want[0] != digest:
                continue
            try:
                found[path] = decode_links(text, want[1])
            except (ValueError, TypeError):
                continue
        return found

    def bodies(self, path: str, digest: str, lengths: Sequence[int]) -> list[tuple[str, Details]] | None:
        """The chunk texts and details of a file as indexed with `digest`, or None if the index now holds
        another version."""
        written = self._written.get(path)
        row = ((written[0], written[2], written[3]) if written is not None else
               self._read_db.execute("SELECT hash, source, details FROM files WHERE path = ?", (path,)).fetchone())
        if row is None or row[0] != digest or len(row[1]) != sum(lengths):
            return None
        source: str = row[1]
        try:
            details = decode_details(row[2])
        except (ValueError, TypeError):
            return None
        if len(details) != len(lengths):
            return None
        return list(zip(_texts(source, lengths), details, strict=True))

    def rows(self, path: str, digest: str) -> FileRows | None:
        """A file's rows as indexed with `digest` (to copy them into another index), or None."""
        row = self.db.execute("SELECT hash, language, structure, names, numbers, links, details, source, terms_from, "
                              "terms_to FROM files WHERE path = ?", (path,)).fetchone()
        if row is None or row[0] != digest:
            return None
        _, language, structure, names, numbers, links, details, source, first, last = row
        terms = _documents(path, language, names, numbers, source, last - first + 1)
        if terms is None or structure != structure_digest(language, names, links):
            return None
        return FileRows(structure, names, numbers, links, details, source, terms)

    def update(self, changed: Iterable[tuple[str, ParsedFile]], restat: Mapping[str, Stat],
               deleted: Iterable[str], replacing: Collection[str] = (), write_behind: bool = False) -> bool:
        """One transaction: new parses (each replacing the file's rows) and their query terms, new stat data,
        vanished files.

        `changed` may be a stream that parses as it goes (`parallel.iter_parse`): each file is stored as it
        comes, so storing overlaps parsing. The first is awaited before the write lock is taken, so that a
        concurrent build holding it costs no parse time. Returns False when the index could not be written
        (the build goes on uncached); the stream may then be left part-way.

        `replacing` names the files `changed` will bring, if known: when they and `deleted` hold most of the
        full-text rows (a branch switch, a checkout far back), the rows are removed in bulk (`_remove_most`).

        `write_behind`: the caller asks no BM25 until it closes the index, so an update of WRITE_BEHIND_FILES
        or more leaves its full-text rows and COMMIT to a thread (`_WriteBehind`) and returns. Should they
        fail, the update is undone, and what the caller reads (links, texts: `_written`) is still right.
        """
        deleted = list(deleted)
        if deleted or replacing:  # the full-text rows change: earlier BM25 answers go stale
            self._forget_prefetched()  # ... and the thread ends before the parse below forks its workers
        files = iter(changed)
        first = next(files, None)
        if first is not None:
            self._forget_prefetched()
        # A big update (a cold build) leaves its full-text rows and COMMIT to a thread (`_WriteBehind`).
        behind = write_behind and len(replacing) >= WRITE_BEHIND_FILES and self.location != ":memory:"
        later: list[tuple[int, str]] = []
        for path in deleted:  # what an earlier update written behind kept of them is stale now
            self._written.pop(path, None)
        try:
            with self._transaction(commit=not behind) as db:  # behind: the thread commits
                if not self._remove_most([*deleted, *replacing]):
                    self._remove(deleted)
                (last,) = db.execute("SELECT COALESCE(MAX(terms_to), 0) FROM files").fetchone()
                held = {row[0] for row in db.execute("SELECT path FROM files")}
                for path, f in itertools.chain([first] if first is not None else [], files):
                    if path in held:
                        self._remove([path])
                    rows = f.rows
                    db.execute(
                        "INSERT INTO files (path, hash, size, mtime_ns, language, structure, names, numbers, "
                        "links, details, source, terms_from, terms_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (path, f.hash, f.stat.size, f.stat.mtime_ns, f.language, rows.structure, rows.names,
                         rows.numbers, rows.links, rows.details, rows.source, last + 1, last + len(rows.terms)))
                    terms = [(last + 1 + ordinal, body) for ordinal, body in enumerate(rows.terms)]
                    if behind:
                        later.extend(terms)
                        self._written[path] = (f.hash, rows.links, rows.source, rows.details)
                    else:
                        self._written.pop(path, None)
                        db.executemany("INSERT INTO terms (rowid, body) VALUES (?, ?)", terms)
                    last += len(rows.terms)
                db.executemany("UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?",
                               [(s.size, s.mtime_ns, path) for path, s in restat.items()])
            if behind:
                self._behind = _WriteBehind(lambda: self._commit_behind(later))
            else:
                self.checkpoint_in_background()
            return True
        except sqlite3.Error as exc:  # a full disk, a lock held too long
            log.warning("could not update the index (%s); continuing without caching", exc)
            return False

    def _commit_behind(self, terms: list[tuple[int, str]]) -> None:
        """The end of an update written behind, in its thread: the full-text rows, the COMMIT, the WAL copy.
        A failure undoes the whole update (one transaction); the build goes on from what it holds."""
        try:
            _insert_terms(self._db, terms)
            self._db.execute("COMMIT")
        except BaseException as exc:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            if not isinstance(exc, sqlite3.Error):
                raise
            log.warning("could not update the index (%s); continuing without caching", exc)
            return
        self._start_checkpoint()

    def _remove_most(self, paths: Sequence[str]) -> bool:
        """Remove the files' rows, if they hold most of the full-text rows, by making the full-text table
        again with only the others' rows; False (nothing done) otherwise.

        When most rows go, copying the rest into a new table (`_empty_terms`) costs less than deleting them
        (a Django checkout 6 years back: 1.8 s of removing → 0.5 s)."""
        going = set(paths)
        if not going:  # a build with nothing changed need not read every file's span
            return False
        if len(going) <= 500:  # a few files (an edit): sums in SQL say whether they hold most rows, no span read
            marks = ",".join("?" * len(going))
            (few,) = self.db.execute(f"SELECT COALESCE(SUM(terms_to - terms_from + 1), 0) FROM files "
                                     f"WHERE path IN ({marks})", sorted(going)).fetchone()
            (every,) = self.db.execute("SELECT COALESCE(SUM(terms_to - terms_from + 1), 0) FROM files").fetchone()
            if few <= every - few:
                return False
        spans = self.db.execute("SELECT path, terms_from, terms_to FROM files").fetchall()
        rows_kept = sum(last - first + 1 for path, first, last in spans if path not in going)
        rows_going = sum(last - first + 1 for path, first, last in spans if path in going)
        if rows_going <= rows_kept:
            return False
        self._remake_terms(going)
        return True

    def _remake_terms(self, going: Collection[str]) -> None:
        """Make the full-text table again with the documents of the files not going, and remove the going
        files' rows. A file whose rows no longer make its documents (a damaged row) goes too: the next build
        parses it again."""
        db = self.db
        saved: list[tuple[int, str]] = []
        broken: list[str] = []
        for row in db.execute(f"SELECT {_DOCUMENT_COLUMNS} FROM files").fetchall():
            if row[0] in going:
                continue
            numbered = _numbered_documents(*row)
            if numbered is None:
                broken.append(row[0])
                continue
            saved.extend(numbered)
        _empty_terms(db)
        _insert_terms(db, saved)
        db.executemany("DELETE FROM files WHERE path = ?", [(path,) for path in [*going, *broken]])

    def _remove(self, paths: list[str]) -> None:
        """Delete the files' rows and their full-text rows, each given its document again (`_documents`),
        as FTS5 removes a row of a contentless table. Should a file's rows no longer make its documents,
        the table is made again without it (`_remake_terms`)."""
        for start in range(0, len(paths), 500):
            batch = paths[start:start + 500]
            marks = ",".join("?" * len(batch))
            removals: list[tuple[int, str]] = []
            for row in self.db.execute(f"SELECT {_DOCUMENT_COLUMNS} FROM files WHERE path IN ({marks})",
                                       batch).fetchall():
                numbered = _numbered_documents(*row)
                if numbered is None:
                    self._remake_terms(set(paths))
                    return
                removals.extend(numbered)
            self.db.executemany("INSERT INTO terms (terms, rowid, body) VALUES ('delete', ?, ?)", removals)
            self.db.execute(f"DELETE FROM files WHERE path IN ({marks})", batch)

    def derived(self, kind: str, key: str) -> bytes | None:
        row = self._read_db.execute("SELECT value FROM derived WHERE key = ?", (f"{kind}:{key}",)).fetchone()
        return bytes(row[0]) if row is not None else None

    def latest_derived(self, kind: str) -> tuple[str, bytes] | None:
        """The one value kept of a kind, whatever its key: (key, value)."""
        prefix = f"{kind}:"
        row = self._read_db.execute("SELECT key, value FROM derived WHERE substr(key, 1, ?) = ?",
                              (len(prefix), prefix)).fetchone()
        return (str(row[0])[len(prefix):], bytes(row[1])) if row is not None else None

    def put_derived(self, kind: str, key: str, value: bytes) -> None:
        """Keep one value per kind (the newest): older ones belong to states of the repo now gone."""
        self._after_behind(lambda: self._put_derived(kind, key, value))

    def _put_derived(self, kind: str, key: str, value: bytes) -> None:
        prefix = f"{kind}:"
        try:
            with self._transaction():
                self.db.execute("DELETE FROM derived WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
                self.db.execute("INSERT INTO derived (key, value) VALUES (?, ?)", (prefix + key, value))
        except sqlite3.Error as exc:  # read-only or busy: the value is recomputed next time
            log.warning("could not store the %s in the index (%s)", kind, exc)

    def result(self, key: str) -> str | None:
        row = self._read_db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row is not None else None

    def put_result(self, key: str, value: str) -> None:
        """Keep the newest RESULTS packs: a few queries or budgets asked in turn are all served."""
        self._after_behind(lambda: self._put_result(key, value))

    def _put_result(self, key: str, value: str) -> None:
        try:
            with self._transaction():
                self.db.execute("INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)", (key, value))
                self.db.execute("DELETE FROM results WHERE rowid NOT IN "
                                "(SELECT rowid FROM results ORDER BY rowid DESC LIMIT ?)", (RESULTS,))
        except sqlite3.Error as exc:  # read-only or busy: the pack is built again next time
            log.warning("could not store the pack in the index (%s)", exc)

    def bm25(self, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """BM25 scores of the chunks holding any of the terms, as (FTS rowids, scores); a rowid may come
        more than once, and its scores add up. Taken from the adopted `BM25Prefetch` if it asked these terms
        of the full-text rows the index holds now."""
        prefetch = self._prefetch
        if prefetch is not None and tuple(terms) in prefetch.keys:
            answer = prefetch.answer(tuple(terms))
            if answer is not None and answer[0] == _rows_state(self.db):
                return answer[1]
        return _bm25(self.db, terms)

    def adopt(self, prefetch: BM25Prefetch) -> None:
        """Take a prefetch's answers for `bm25` (it ends with the index); refused, and cancelled, if it reads
        another file (an in-memory index)."""
        self._forget_prefetched()
        if prefetch.location != self.location:
            prefetch.cancel()
            return
        self._prefetch = prefetch

    def _forget_prefetched(self) -> None:
        if self._prefetch is not None:
            self._prefetch.cancel()  # its connection is closed before the index's
            self._prefetch = None

    def term_spans(self) -> list[tuple[str, int, int]]:
        """(path, first rowid, last rowid) of each file's full-text rows; row `first + n` is its chunk n."""
        return [(str(path), int(first), int(last))
                for path, first, last in self.db.execute("SELECT path, terms_from, terms_to FROM files")]


def read_stats(root: Path, fingerprint: str) -> dict[str, object]:
    """What the index of `root` holds, read without creating or changing anything (a build would empty a stale
    index; `ctxpack stats` only reports it). `state`: current, stale (made by other code or settings: the
    next build parses every file again), none, or unusable (the next build rebuilds it)."""
    path = root / INDEX_DIR / INDEX_FILE
    figures: dict[str, object] = {"location": str(path), "schema": None, "files": 0, "chunk_bytes": 0,
                                  "db_bytes": 0, "languages": {}, "state": "none"}
    if not path.is_file():
        return figures
    figures["db_bytes"] = path.stat().st_size
    try:
        with _read_only(path) as connection:
            meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
            schema = str(meta.get("schema"))
            figures["schema"] = int(schema) if schema.isdigit() else schema
            if schema != str(SCHEMA_VERSION):
                figures["state"] = "unusable: another schema"
                return figures
            files, chunk_bytes = connection.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(names) + LENGTH(numbers) + LENGTH(source)), 0) FROM files"
            ).fetchone()
            figures["languages"] = dict(connection.execute(
                "SELECT language, COUNT(*) FROM files GROUP BY language ORDER BY 2 DESC, 1"))
    except sqlite3.Error as exc:
        figures["state"] = f"unusable: {exc}"
        return figures
    figures["files"], figures["chunk_bytes"] = int(files), int(chunk_bytes)
    figures["state"] = "current" if meta.get("fingerprint") == fingerprint else "stale"
    return figures


def indexed_stats(root: Path, fingerprint: str) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of the files an existing index of `root` holds under `fingerprint`, read
    without creating or changing anything (the walk uses it before the index is opened); {} if none."""
    path = root / INDEX_DIR / INDEX_FILE
    if not path.is_file():
        return {}
    try:
        with _read_only(path) as connection:
            meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("schema") != str(SCHEMA_VERSION) or meta.get("fingerprint") != fingerprint:
                return {}
            rows = connection.execute("SELECT path, size, mtime_ns FROM files").fetchall()
    except sqlite3.Error:
        return {}
    return {rel: (int(size), int(mtime)) for rel, size, mtime in rows}


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection that cannot create or change the db file."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
    try:
        yield connection
    finally:
        connection.close()


def _empty_terms(db: sqlite3.Connection) -> None:
    """Empty the full-text table by making it again: FTS5 deletes a row by tokenizing its text again, as costly
    as inserting it (emptying the Django index row by row took 0.99 s, remade 0.66 s)."""
    db.execute("DROP TABLE terms")
    _make_terms(db)


def _make_terms(db: sqlite3.Connection) -> None:
    db.execute(TERMS_TABLE)
    with suppress(sqlite3.OperationalError):  # an SQLite without the setting builds with its default
        db.execute("INSERT INTO terms (terms, rank) VALUES ('hashsize', ?)", (TERMS_HASH_BYTES,))


def _phrase(term: str) -> str:
    """A term as an FTS5 phrase: quoted, so that no word of it is read as an operator."""
    return '"' + term.replace('"', "") + '"'


def _bm25(db: sqlite3.Connection, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """`Index.bm25` on a connection. Each question is one statement that returns one row, its answer as text,
    so that in a thread (`BM25Prefetch`) it takes the GIL a few times, not once per row.

    FTS5's bm25() costs about (rows matched) × (terms asked) and an issue's text asks hundreds of terms, so a
    long query is asked in two parts, the terms many chunks hold and the rest: BM25 is a sum over terms, each
    with its own IDF, so the parts' scores add up to the whole's, and the many rows that only common terms
    match are scored against a few terms (Django, 705 terms: 1.2 s → 0.7 s). Only rowids are read: each
    row's path and ordinal would cost a fifth more (`term_spans` maps them). Scores are printed with 17
    significant digits, which read back as the same doubles."""
    import numpy as np

    parts = [list(terms)] if terms else []
    if len(terms) > SPLIT_QUERY_TERMS:
        (total,) = db.execute("SELECT COALESCE(SUM(terms_to - terms_from + 1), 0) FROM files").fetchone()
        held = _rows_holding(db, terms)
        common = [term for term in terms if held[term] * COMMON_TERM_SHARE > total]
        rare = [term for term in terms if 0 < held[term] * COMMON_TERM_SHARE <= total]
        parts = [part for part in (common, rare) if part]
    words: list[str] = []
    for part in parts:
        (text,) = db.execute(
            "SELECT group_concat(printf('%d %!.17g', r, s), ' ') FROM "
            "(SELECT rowid AS r, -bm25(terms) AS s FROM terms WHERE terms MATCH ? LIMIT -1)",
            (" OR ".join(map(_phrase, part)),)).fetchone()
        if text:
            words.extend(text.split(" "))
    return np.array(words[0::2], dtype=np.int64), np.array(words[1::2], dtype=np.float64)


def _rows_holding(db: sqlite3.Connection, terms: Sequence[str]) -> dict[str, int]:
    """How many full-text rows hold each term, in one statement per thousand terms."""
    held: dict[str, int] = {}
    distinct = list(dict.fromkeys(terms))
    for start in range(0, len(distinct), 1000):
        batch = distinct[start:start + 1000]
        values = ",".join(f"({n}, ?)" for n in range(len(batch)))
        (text,) = db.execute(
            f"WITH asked(n, phrase) AS (VALUES {values}) SELECT group_concat(n || ' ' || "
            "(SELECT COUNT(*) FROM terms WHERE terms MATCH asked.phrase), ' ') FROM asked",
            [_phrase(term) for term in batch]).fetchone()
        numbers = [int(word) for word in (text or "").split()]
        held.update((batch[n], count) for n, count in zip(numbers[0::2], numbers[1::2], strict=True))
    return held


def _rows_state(db: sqlite3.Connection) -> tuple[int, int]:
    """(files, last full-text rowid): an update that changes the full-text rows changes it (a file's new rows
    always come after the last one; removing files lowers the count)."""
    (files, last) = db.execute("SELECT COUNT(*), COALESCE(MAX(terms_to), 0) FROM files").fetchone()
    return int(files), int(last)


class BM25Prefetch:
    """BM25 questions asked in a thread, on a read-only connection of its own: FTS5 scores with the GIL
    released, so the asking overlaps the build's loading and the ranking's Python work (the python split's
    later calls: 7.6 % quicker at the median; bench/RESULTS.md). `Index.adopt` takes it; `Index.bm25` uses
    an answer only if the index's full-text rows are still those it was read from (`_rows_state`): another
    build may have changed them since."""

    def __init__(self, location: str, fingerprint: str, term_lists: Sequence[Sequence[str]]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.location = location
        self.keys = {tuple(terms) for terms in term_lists}
        self._cancelled = threading.Event()
        self._connection: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctxpack-bm25")
        self._answers = self._pool.submit(self._ask, fingerprint, sorted(self.keys))

    def _ask(self, fingerprint: str, keys: Sequence[tuple[str, ...]]) -> Answers | None:
        try:
            connection = sqlite3.connect(f"{Path(self.location).resolve().as_uri()}?mode=ro", uri=True,
                                         timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error:
            return None
        self._connection = connection
        try:
            connection.execute("BEGIN")  # one snapshot for the state and every answer
            meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("schema") != str(SCHEMA_VERSION) or meta.get("fingerprint") != fingerprint:
                return None
            state = _rows_state(connection)
            answers = {}
            for key in keys:
                if self._cancelled.is_set():
                    return None
                answers[key] = _bm25(connection, key)
            return state, answers
        except sqlite3.Error:  # interrupted by `cancel`, locked, damaged: the index's own connection asks
            return None
        finally:
            self._connection = None
            connection.close()

    def answer(self, key: tuple[str, ...]) -> tuple[tuple[int, int], tuple[np.ndarray, np.ndarray]] | None:
        """(the rows' state, the answer) for these terms, once the thread is done; None if it has none."""
        got = self._answers.result()
        if got is None or key not in got[1]:
            return None
        return got[0], got[1][key]

    def cancel(self) -> None:
        """Stop asking (a build that changes the rows has no use for the answers) and end the thread."""
        self._cancelled.set()
        connection = self._connection
        if connection is not None and not self._answers.done():
            with suppress(sqlite3.Error):
                connection.interrupt()
        self._pool.shutdown(wait=True)


Answers = tuple[tuple[int, int], dict[tuple[str, ...], tuple["np.ndarray", "np.ndarray"]]]


_DOCUMENT_COLUMNS = "path, language, names, numbers, source, terms_from, terms_to"  # `_numbered_documents`'s


def _numbered_documents(path: str, language: str, names: str, numbers: bytes, source: str, first: int,
                        last: int) -> list[tuple[int, str]] | None:
    """(rowid, document) of each of a stored file's full-text rows, from its `_DOCUMENT_COLUMNS`; None if its
    rows do not make them."""
    documents = _documents(path, language, names, numbers, source, last - first + 1)
    return list(zip(range(first, last + 1), documents, strict=True)) if documents is not None else None


def _documents(path: str, language: str, names: str, numbers: bytes, source: str, count: int) -> list[str] | None:
    """A stored file's full-text documents, made again from its rows as the parse made them
    (`terms.chunk_document`); None if the rows do not make `count` of them."""
    from .terms import document

    try:
        chunks, lengths = decode_chunks(path, language, names, numbers)
    except (ValueError, TypeError):
        return None
    if len(chunks) != count or sum(lengths) != len(source):
        return None
    return [document(path, chunk.name, text) for chunk, text in zip(chunks, _texts(source, lengths), strict=True)]


def _texts(source: str, lengths: Sequence[int]) -> list[str]:
    """A file's stored source cut into its chunks' texts."""
    starts = itertools.accumulate(lengths, initial=0)
    return [source[start:start + length] for start, length in zip(starts, lengths, strict=False)]  # starts: one more


class _WriteBehind:
    """Writes a thread runs in order, the first being the end of a big update (its full-text rows and
    COMMIT), while the build ranks and packs on its own thread. FTS5 tokenizes and SQLite writes without the
    GIL, so the two use both cores; done as the parse went, that work took a core from the parse workers
    instead (a cold Django build: 4.26 s → 4.09 s). Writes the build asks for meanwhile (`Index._after_behind`:
    kept columns and graph, token counts, the pack) run after it."""

    def __init__(self, first: Callable[[], None]) -> None:
        self._tasks = [first]
        self._lock = threading.Lock()
        self._running = True
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ctxpack-write-behind")
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._tasks or self._error is not None:
                    self._running = False
                    return
                task = self._tasks.pop(0)
            try:
                task()
            except BaseException as exc:  # not an SQLite error (those are the tasks' own): `wait` raises it
                self._error = exc

    def queue(self, task: Callable[[], None]) -> bool:
        """Run `task` after the writes queued so far; False if the thread has ended (run it yourself)."""
        with self._lock:
            if not self._running:
                return False
            self._tasks.append(task)
            return True

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def finished(self) -> bool:
        with self._lock:
            return not self._running

    def wait(self) -> None:
        self._thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error


def _insert_terms(db: sqlite3.Connection, rows: Sequence[tuple[int, str]]) -> None:
    """Insert full-text rows, many per statement: each statement runs without the GIL, so a thread inserting
    the standard library's 58,000 rows takes the GIL back from the ranking ~12 times, not twice per row
    (1.2 s → 0.8 s for Django's rows while the build ranks)."""
    limit_id = getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", None)  # Python 3.11+
    limit = db.getlimit(limit_id) if limit_id is not None else 999
    per = max(1, min(TERMS_PER_STATEMENT, limit // 2))
    whole = len(rows) - len(rows) % per
    if whole:
        statement = "INSERT INTO terms (rowid, body) VALUES " + ",".join(["(?, ?)"] * per)
        for start in range(0, whole, per):
            db.execute(statement, [value for row in rows[start:start + per] for value in row])
    db.executemany("INSERT INTO terms (rowid, body) VALUES (?, ?)", rows[whole:])


class _Foreign(Exception):
    """The db file is not a ctxpack index of this schema."""


def _ensure_dir(directory: Path) -> None:
    directory.mkdir(exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    if not os.access(directory, os.W_OK):
        raise PermissionError(13, "read-only directory")


def _connect(path: Path) -> sqlite3.Connection:
    # explicit BEGINs; a write left behind (`_WriteBehind`) ends in another thread
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Only a new, empty file takes it (before WAL mode fixes the size). Big pages: a build stores the code
    # graph, megabytes in one value, and freeing and writing its overflow chain costs per page (8 MB:
    # 4 KiB pages 65 ms, 64 KiB pages 12 ms); BM25 and loading the chunks take as long either way.
    connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()
    if mode is None:
        raise sqlite3.DatabaseError("no journal mode")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA wal_autocheckpoint = 0")  # `Index.checkpoint_in_background` copies instead
    return connection


def _checkpoint(location: str) -> None:
    """Copy what the WAL holds into the db file, on a connection of its own, then empty the WAL file.

    The copy is a PASSIVE checkpoint: it waits for no reader or writer. Emptying it waits for readers and
    holds writers off, so it waits a little at most (TRUNCATE_WAIT_MS); it spares the closing connection
    from deleting a WAL of a hundred megabytes (60 ms on the standard library). A failure leaves the WAL as
    it was: the next connection to close copies it."""
    with suppress(sqlite3.Error):
        connection = sqlite3.connect(location, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            connection.execute(f"PRAGMA busy_timeout = {TRUNCATE_WAIT_MS}")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            connection.close()


def _discard(path: Path, reason: str) -> None:
    log.warning("rebuilding the index at %s: %s", path, reason)
    for suffix in ("", "-wal", "-shm"):
        with suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


class CountCache:
    """Token counts kept in the index (`tokens.CountStore`): read per lookup, written once per build."""

    MAX_ROWS = 400_000  # beyond this, the table is emptied: counts of texts long gone are not worth keeping

    def __init__(self, index: Index) -> None:
        self.index = index
        self._pending: dict[tuple[str, str], int] = {}

    def get_counts(self, tokenizer_id: str, digests: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(digests), 500):
            batch = list(digests[start:start + 500])
            marks = ",".join("?" * len(batch))
            try:
                rows = self.index._read_db.execute(
                    f"SELECT digest, count FROM token_counts WHERE tokenizer = ? AND digest IN ({marks})",
                    [tokenizer_id, *batch]).fetchall()
            except sqlite3.Error:
                return found
            found.update((digest, int(count)) for digest, count in rows)
        return found

    def put_counts(self, tokenizer_id: str, counts: Mapping[str, int]) -> None:
        self._pending.update({(tokenizer_id, digest): count for digest, count in counts.items()})

    def flush(self) -> None:
        if not self._pending:
            return
        rows = [(tokenizer, digest, count) for (tokenizer, digest), count in self._pending.items()]
        self._pending.clear()
        self.index._after_behind(lambda: self._store(rows))

    def _store(self, rows: list[tuple[str, str, int]]) -> None:
        try:
            with self.index._transaction() as db:
                (stored,) = db.execute("SELECT COUNT(*) FROM token_counts").fetchone()
                if stored + len(rows) > self.MAX_ROWS:
                    db.execute("DELETE FROM token_counts")
                db.executemany("INSERT OR REPLACE INTO token_counts (tokenizer, digest, count) VALUES (?, ?, ?)", rows)
        except sqlite3.Error as exc:  # read-only, busy or full: the counts are made again next time
            log.debug("token counts not stored: %s", exc)

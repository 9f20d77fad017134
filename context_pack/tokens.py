"""Tokenizers behind one protocol. The pack text is always counted with the chosen one.

Specs: `tiktoken:NAME` (cl100k_base by default, o200k_base), `hf:PATH` (a Hugging Face tokenizer.json, or a
model folder holding one), `gguf:PATH` (the vocabulary of a GGUF model, through llama-cpp-python). The
libraries behind `hf` and `gguf` are optional extras, imported only when such a spec is used.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from .errors import CtxpackError, UsageError

DEFAULT_TOKENIZER = "tiktoken:cl100k_base"
KINDS = ("tiktoken", "hf", "gguf")
PATH_KINDS = ("hf", "gguf")  # kinds whose argument is a file path

log = logging.getLogger("context_pack")


class Tokenizer(Protocol):
    @property
    def name(self) -> str:
        """The spec it was made from, e.g. `tiktoken:cl100k_base` or `hf:models/qwen`; shown in reports."""
        ...

    @property
    def id(self) -> str:
        """What decides its counts (e.g. a vocabulary's content hash); caches of counts are keyed by it."""
        ...

    def count(self, text: str) -> int: ...

    def count_many(self, texts: list[str]) -> list[int]: ...


class _Identified:
    """`name` (the spec as given, for reports) and `id` (what decides the counts, for caches)."""

    _name: str
    _id: str

    @property
    def name(self) -> str:
        return self._name

    @property
    def id(self) -> str:
        return self._id


# Encodings whose pre-tokenizer never lets a piece run over a newline into a following character that is not
# whitespace: in cl100k_base's pattern every alternative that can hold a newline ends with it or with the
# whitespace run it closes, and matching starts afresh after each piece (no lookbehind). So a text cut right
# after a newline, before such a character, counts as the sum of its two parts, exactly (tests/test_tokens.py
# checks it on texts made to break it). Not listed: gpt2's pattern cuts the whitespace run before a letter
# differently at the end of a text; o200k_base's lets punctuation pieces run on over newlines into "/" (which
# `joins_exactly` refuses), and its BPE file is not cached here to test it.
SPLITS_AFTER_NEWLINE = frozenset({"cl100k_base"})


def joins_exactly(left: str, right: str) -> bool:
    """`left + right` counts as `left` and `right` counted apart, for a tokenizer whose `splits_after_newline`:
    `left` ends a line and `right` starts with a character no piece of `left` could take in."""
    first = right[:1]
    return left.endswith("\n") and bool(first) and first != "/" and not first.isspace()


class BlobStore(Protocol):
    """Where a decoded vocabulary may be kept between runs: the index (`Index.derived`/`put_derived`)."""

    def derived(self, kind: str, key: str) -> bytes | None: ...

    def put_derived(self, kind: str, key: str, value: bytes) -> None: ...


class TiktokenTokenizer(_Identified):
    def __init__(self, encoding_name: str, vocabularies: BlobStore | None = None) -> None:
        """`vocabularies`: where the decoded BPE ranks are kept (tiktoken base64-decodes 10^5 lines on every
        load, ~0.05 s); the encoding is made from them when they are there, else loaded and kept there."""
        import tiktoken

        kept = _kept_encoding(encoding_name, vocabularies) if vocabularies is not None else None
        try:
            self._encoding = kept if kept is not None else tiktoken.get_encoding(encoding_name)
        except ValueError as exc:  # unknown encoding name
            raise _unknown_encoding(encoding_name) from exc
        except Exception as exc:  # offline: the BPE file is not cached and cannot be downloaded
            cache = os.environ.get("TIKTOKEN_CACHE_DIR")
            where = f"TIKTOKEN_CACHE_DIR={cache}" if cache else "TIKTOKEN_CACHE_DIR is unset"
            raise CtxpackError(
                f"tiktoken could not load {encoding_name!r}: its BPE file is not cached ({where}) and could not "
                f"be downloaded ({type(exc).__name__}); run once online, or set TIKTOKEN_CACHE_DIR to a folder "
                f"that holds it, or choose another --tokenizer"
            ) from exc
        self._name = f"tiktoken:{encoding_name}"
        self._id = self._name  # an encoding name fixes its vocabulary
        self.splits_after_newline = encoding_name in SPLITS_AFTER_NEWLINE  # see `joins_exactly`
        if vocabularies is not None and kept is None:
            _keep_encoding(self._encoding, vocabularies)

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def count_many(self, texts: list[str]) -> list[int]:
        if len(texts) < 8:  # a thread pool per call costs more than a few texts take (the packer counts one by one)
            return [len(self._encoding.encode_ordinary(text)) for text in texts]
        return [len(tokens) for tokens in self._encoding.encode_ordinary_batch(texts, num_threads=2)]


VOCABULARY_FORMAT = "1"  # of `_keep_encoding`'s blobs


def _vocabulary_key(encoding_name: str) -> str | None:
    """What a kept vocabulary depends on: the encoding's name, tiktoken's version, and the files in
    tiktoken's download cache (where its BPE file is: name, size and mtime of each), found as tiktoken
    finds it. None when tiktoken keeps no files (its cache is off, or empty: it downloads)."""
    import tiktoken

    if "TIKTOKEN_CACHE_DIR" in os.environ:
        folder = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        folder = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        import tempfile  # here: with its cache dir set, as a build usually has, tiktoken needs none

        folder = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not folder:
        return None
    try:
        files = sorted((entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
                       for entry in os.scandir(folder) if entry.is_file())
    except OSError:
        return None
    if not files:
        return None
    identity = json.dumps([VOCABULARY_FORMAT, tiktoken.__version__, os.path.abspath(folder), files])
    return hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()


def _kept_encoding(encoding_name: str, store: BlobStore) -> Any:
    """The encoding made from the ranks kept in `store`, or None (none kept, or not usable: loaded as usual)."""
    import numpy as np
    import tiktoken

    try:
        key = _vocabulary_key(encoding_name)
        value = store.derived(f"vocabulary:{encoding_name}", key) if key is not None else None
        if value is None:
            return None
        with np.load(io.BytesIO(value), allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
            lengths = arrays["lengths"].astype(np.int64)
            rank_array = arrays["ranks"].astype(np.int64)
            blob = arrays["blob"].tobytes()
        name, pattern, special = meta
        ranks = rank_array.tolist()
        ends = np.cumsum(lengths)
        if (name != encoding_name or len(lengths) != len(ranks) or (len(ends) and int(ends[-1]) != len(blob))
                or not isinstance(pattern, str) or not isinstance(special, dict)
                or not all(isinstance(k, str) and isinstance(v, int) for k, v in special.items())):
            raise ValueError("inconsistent vocabulary")
        starts = (ends - lengths).tolist()
        mergeable = dict(zip([blob[a:b] for a, b in zip(starts, ends.tolist(), strict=True)], ranks, strict=True))
        # Duplicate tokens or ranks would make tiktoken's Rust side panic (not an Exception): refuse them here.
        # (Ranks are kept in increasing order, which proves them distinct without a set of 10^5 numbers.)
        distinct = bool(np.all(np.diff(rank_array) > 0)) or np.unique(rank_array).size == rank_array.size
        if (len(mergeable) != len(ranks) or not distinct or len(set(special.values())) != len(special)
                or np.isin(np.array(list(special.values()), dtype=np.int64), rank_array).any()):
            raise ValueError("duplicate tokens or ranks")
        encoding = tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=mergeable, special_tokens=special)
    except Exception as exc:  # damaged, foreign or unreadable: a miss, loaded as usual and kept again
        log.warning("ignoring a damaged kept vocabulary of %s (%s); loading it again", encoding_name,
                    type(exc).__name__)
        return None
    return encoding


def _keep_encoding(encoding: Any, store: BlobStore) -> None:
    """Keep an encoding's ranks in `store` (as arrays: never pickle, the index is not trusted)."""
    import numpy as np

    key = _vocabulary_key(encoding.name)
    if key is None:
        return
    try:
        ranks: dict[bytes, int] = encoding._mergeable_ranks
        meta = [encoding.name, encoding._pat_str, encoding._special_tokens]
    except AttributeError:  # another tiktoken: nothing kept, nothing lost
        return
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
             lengths=np.fromiter(map(len, ranks), dtype="<u4", count=len(ranks)),
             ranks=np.fromiter(ranks.values(), dtype="<i8", count=len(ranks)),
             blob=np.frombuffer(b"".join(ranks), dtype=np.uint8))
    store.put_derived(f"vocabulary:{encoding.name}", key, buffer.getvalue())


class HuggingFaceTokenizer(_Identified):
    """A Hugging Face `tokenizers` tokenizer.json, e.g. the one in the model folder a vLLM server loads."""

    def __init__(self, argument: str) -> None:
        path = _existing_path("hf", argument)
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise CtxpackError(f"hf tokenizer: no tokenizer.json in the folder {path}")
        try:
            from tokenizers import Tokenizer as HfTokenizer
        except ImportError:
            raise CtxpackError("hf tokenizers need the `tokenizers` package (a dependency of context-pack that is "
                               "missing here): pip install tokenizers") from None
        data = _read(file)
        try:
            tokenizer = HfTokenizer.from_str(data.decode("utf-8"))
        except Exception as exc:  # not JSON, or JSON that is not a tokenizer
            raise CtxpackError(f"hf tokenizer: {file} is not a usable tokenizer.json ({_first_line(exc)})") from None
        # A tokenizer.json may carry truncation (e.g. to 512) or padding, which would falsify every count.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._name = f"hf:{argument}"
        self._id = f"hf:sha256:{hashlib.sha256(data).hexdigest()[:20]}"

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False))  # pack text, not a prompt

    def count_many(self, texts: list[str]) -> list[int]:
        return [len(encoding) for encoding in self._tokenizer.encode_batch(texts, add_special_tokens=False)]


class GgufTokenizer(_Identified):
    """The vocabulary inside a GGUF model file, tokenised by llama.cpp itself: exact for llama.cpp servers.

    Loaded with `vocab_only` (no weights, no context) through llama-cpp-python's bindings of llama.cpp's C
    API: `Llama(vocab_only=True)` would also build a context and tokenise every text twice (once to size it).
    """

    def __init__(self, argument: str) -> None:
        path = _existing_path("gguf", argument)
        if path.is_dir():
            raise CtxpackError(f"gguf tokenizer: {path} is a folder; give the .gguf model file")
        with path.open("rb") as handle:
            magic = handle.read(4)
        if magic != b"GGUF":
            raise CtxpackError(f"gguf tokenizer: {path} is not a GGUF file (it does not start with 'GGUF')")
        llama_cpp = _import_llama_cpp()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        with _captured_stderr() as log:  # llama.cpp logs its loading, warnings and errors on fd 2
            llama_cpp.llama_backend_init()
            model = llama_cpp.llama_model_load_from_file(os.fsencode(path), params)
        vocab = llama_cpp.llama_model_get_vocab(model) if model else None
        if not vocab:
            errors = [line.strip() for line in "".join(log).splitlines() if "error" in line.lower()]
            reason = f" ({errors[-1]})" if errors else ""
            raise CtxpackError(f"gguf tokenizer: llama.cpp could not load a vocabulary from {path}{reason}")
        self._llama_cpp = llama_cpp
        self._vocab = vocab
        self._free = weakref.finalize(self, llama_cpp.llama_model_free, model)
        stat = path.stat()
        # Hashing a many-GB model would cost more than the pack; its identity and timestamp stand in.
        fingerprint = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
        self._name = f"gguf:{argument}"
        self._id = f"gguf:{hashlib.sha256(fingerprint.encode()).hexdigest()[:20]}"

    def count(self, text: str) -> int:
        data = text.encode("utf-8", "replace")
        capacity = len(data) + 8  # no vocabulary makes more tokens than bytes (plus a BOS we do not add)
        buffer = (self._llama_cpp.llama_token * capacity)()
        # No BOS and no special-token parsing: we count text the model reads, not a prompt's framing.
        count = self._llama_cpp.llama_tokenize(self._vocab, data, len(data), buffer, capacity, False, False)
        if count < 0:
            raise CtxpackError(f"gguf tokenizer: llama.cpp could not tokenise a text of {len(data)} bytes")
        return int(count)

    def count_many(self, texts: list[str]) -> list[int]:
        return [self.count(text) for text in texts]


class CountStore(Protocol):
    """Counts kept between runs (the index), keyed by tokenizer id and the counted text's digest."""

    def get_counts(self, tokenizer_id: str, digests: Sequence[str]) -> Mapping[str, int]: ...

    def put_counts(self, tokenizer_id: str, counts: Mapping[str, int]) -> None: ...


class CachedTokenizer:
    """A tokenizer whose counts are remembered by the text's digest, in memory and optionally in a store.

    The packer counts through whatever Tokenizer it is given, so wrapping one here is how an index cache
    plugs in; a count is of the exact text, so the pack's final count stays exact.
    """

    def __init__(self, tokenizer: Tokenizer, store: CountStore | None = None) -> None:
        self.tokenizer = tokenizer
        self.store = store
        self._memo: dict[str, int] = {}

    @property
    def name(self) -> str:
        return self.tokenizer.name

    @property
    def id(self) -> str:
        return self.tokenizer.id

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def count_many(self, texts: list[str]) -> list[int]:
        digests = [text_digest(text) for text in texts]
        missing = [d for d in dict.fromkeys(digests) if d not in self._memo]
        if missing and self.store is not None:
            self._memo.update(self.store.get_counts(self.id, missing))
            missing = [d for d in missing if d not in self._memo]
        if missing:
            wanted = set(missing)
            todo = {d: t for d, t in zip(digests, texts, strict=True) if d in wanted}
            fresh = dict(zip(todo, self.tokenizer.count_many(list(todo.values())), strict=True))
            self._memo.update(fresh)
            if self.store is not None:
                self.store.put_counts(self.id, fresh)
        return [self._memo[d] for d in digests]


def text_digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


_FACTORIES: dict[str, Callable[[str], Tokenizer]] = {
    "tiktoken": TiktokenTokenizer,
    "hf": HuggingFaceTokenizer,
    "gguf": GgufTokenizer,
}


_LOADED: dict[str, Tokenizer] = {}  # by spec: each is loaded once per process
MAX_LOADED = 8


def get_tokenizer(spec: str = DEFAULT_TOKENIZER, vocabularies: BlobStore | None = None) -> Tokenizer:
    """Resolve a tokenizer spec `kind:argument`; UsageError for a bad spec or a missing path. A tiktoken
    vocabulary is read from `vocabularies` (the index) when kept there, and kept there when loaded."""
    found = _LOADED.get(spec)
    if found is None:
        found = _load_tokenizer(spec, vocabularies)
        if len(_LOADED) >= MAX_LOADED:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[spec] = found
    return found


def _load_tokenizer(spec: str, vocabularies: BlobStore | None) -> Tokenizer:
    kind, _, argument = spec.partition(":")
    if kind == "backend" and argument:  # the model server's /tokenize; httpx only when asked for
        from .backends.tokenizer import backend_tokenizer

        return backend_tokenizer(argument)
    if kind == "tiktoken" and argument:
        return TiktokenTokenizer(argument, vocabularies)
    factory = _FACTORIES.get(kind)
    if factory is None or not argument:
        raise _unknown_spec(spec)
    return factory(argument)


def check_spec(spec: str) -> None:
    """Raise the UsageError `get_tokenizer` would for an unknown kind, an unknown tiktoken encoding or a
    missing path, without loading anything: a build checks before it starts its parse workers."""
    kind, _, argument = spec.partition(":")
    if kind == "backend" and argument:
        return  # only the server can say
    if kind not in _FACTORIES or not argument:
        raise _unknown_spec(spec)
    if kind == "tiktoken":
        import tiktoken

        if argument not in tiktoken.list_encoding_names():
            raise _unknown_encoding(argument)
    else:
        _existing_path(kind, argument)


def _unknown_spec(spec: str) -> UsageError:
    return UsageError(f"unknown tokenizer {spec!r} (expected tiktoken:NAME, hf:PATH, gguf:PATH or backend:URL, "
                      f"e.g. {DEFAULT_TOKENIZER})")


def _unknown_encoding(name: str) -> UsageError:
    import tiktoken

    return UsageError(f"unknown tiktoken encoding {name!r} (known: {', '.join(tiktoken.list_encoding_names())})")


def resolve_spec_path(spec: str, base: Path) -> str:
    """A path spec from a config file, with its relative path made relative to `base` (the repo root)."""
    kind, colon, argument = spec.partition(":")
    if kind not in PATH_KINDS or not colon or not argument:
        return spec
    path = Path(argument).expanduser()
    return spec if path.is_absolute() else f"{kind}:{base / path}"


def _existing_path(kind: str, argument: str) -> Path:
    path = Path(argument).expanduser()
    if not path.exists():
        raise UsageError(f"{kind} tokenizer: path does not exist: {argument}")
    return path


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise CtxpackError(f"cannot read tokenizer file {file}: {exc.strerror}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise CtxpackError("gguf tokenizers need llama-cpp-python: pip install 'context-pack[gguf]' "
                           "(it compiles llama.cpp, a few minutes)") from None
    except OSError as exc:  # the package is there but its shared library does not load
        raise CtxpackError(f"llama-cpp-python is installed but its library does not load: {_first_line(exc)}") from None
    if not hasattr(llama_cpp, "llama_model_get_vocab"):  # the C API before llama.cpp split out the vocabulary
        raise CtxpackError(f"llama-cpp-python {getattr(llama_cpp, '__version__', '?')} is too old for gguf "
                           "tokenizers: pip install -U 'context-pack[gguf]'")
    return llama_cpp


@contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Catch what is written to file descriptor 2 for a while (C libraries write there, below sys.stderr).

    Yields a list that holds the captured text once the block is left.
    """
    captured: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all: nothing to catch
        yield captured
        return
    import tempfile

    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", "replace"))

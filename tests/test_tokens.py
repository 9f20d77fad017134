"""Tokenizers: tiktoken, Hugging Face tokenizer.json and GGUF vocabularies, all real, behind one protocol."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import context_pack
from conftest import TOKENIZER_KINDS, run_cli, tokenizer_spec
from context_pack.errors import CtxpackError, UsageError
from context_pack.tokens import CachedTokenizer, get_tokenizer
from hf_vocab import qwen2_tokenizer_json, reference_cases
from llama_sdist import vocab

REFERENCE_VOCABS = ("qwen2", "deepseek-coder", "llama-bpe", "llama-spm")


def llama(name: str):
    """llama-cpp-python's own tokenizer for a vocabulary, independent of ctxpack's wrapper."""
    import llama_cpp

    return llama_cpp.Llama(model_path=str(vocab(name)), vocab_only=True, verbose=False)


def sample_texts() -> list[str]:
    """Real source text: a few standard-library modules, plus the awkward corners of Unicode and spacing."""
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [(stdlib / name).read_text("utf-8") for name in ("textwrap.py", "json/decoder.py", "this.py")]
    texts.append("".join(text for text, _ in reference_cases(vocab("qwen2"))))
    texts.append("\t\t  \n\n\n   x = '🦙'  # 数据 e\u0301 Äpfel\r\n")
    return texts


def nfc(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFC", text)


def test_derived_qwen2_tokenizer_json_reproduces_the_original_ids() -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(qwen2_tokenizer_json()))
    cases = reference_cases(vocab("qwen2"))
    assert len(cases) > 40
    for text, expected in cases:  # ids the original Hugging Face Qwen2 tokenizer gave (kept by llama.cpp)
        assert tokenizer.encode(text, add_special_tokens=False).ids == expected, text


def test_hf_fixture_counts_equal_llama_cpp_counts_of_the_same_vocabulary() -> None:
    hf = get_tokenizer(f"hf:{qwen2_tokenizer_json()}")
    reference = llama("qwen2")

    def llama_count(text: str) -> int:
        return len(reference.tokenize(text.encode(), add_bos=False, special=False))

    for text in sample_texts():
        assert hf.count(nfc(text)) == llama_count(nfc(text))
    # The one known difference: Qwen2's tokenizer.json normalises to NFC first, llama.cpp does not.
    assert hf.count("cafe\u0301") == hf.count("café") < llama_count("cafe\u0301")


@pytest.mark.parametrize("name", REFERENCE_VOCABS)
def test_gguf_counts_equal_llama_cpp_python_tokenize(name: str) -> None:
    ours = get_tokenizer(f"gguf:{vocab(name)}")
    reference = llama(name)
    texts = sample_texts()
    expected = [len(reference.tokenize(t.encode(), add_bos=False, special=False)) for t in texts]
    assert [ours.count(t) for t in texts] == expected
    assert ours.count_many(texts) == expected
    assert ours.count("") == 0


@pytest.mark.parametrize("name", ("qwen2", "llama-spm"))
def test_gguf_pack_count_is_llama_cpp_count_of_the_pack_text(stdlib_part: Path, name: str) -> None:
    pack = context_pack.build(stdlib_part, budget=3000, tokenizer=f"gguf:{vocab(name)}", use_cache=False)
    assert pack.tokenizer == f"gguf:{vocab(name)}"
    assert 0.9 * 3000 <= pack.tokens <= 3000
    assert pack.tokens == len(llama(name).tokenize(pack.text.encode(), add_bos=False, special=False))


def test_sentencepiece_and_bpe_counts_are_not_additive() -> None:
    """Why the packer recounts the whole text: the sum of the pieces' counts is not the count of the whole."""
    pieces = ["    ", "    return x", "\n", "\n", "\n", "class A", ":\n"]
    for kind in TOKENIZER_KINDS:
        counter = get_tokenizer(tokenizer_spec(kind))
        assert counter.count("".join(pieces)) != sum(counter.count(p) for p in pieces), kind


def test_hf_accepts_a_model_folder_and_ignores_truncation_and_padding(tmp_path: Path) -> None:
    spec = json.loads(qwen2_tokenizer_json().read_text("utf-8"))
    spec["truncation"] = {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0}
    spec["padding"] = {"strategy": {"Fixed": 64}, "direction": "Right", "pad_to_multiple_of": None,
                       "pad_id": 151643, "pad_type_id": 0, "pad_token": "<|endoftext|>"}
    model = tmp_path / "Qwen2.5-Coder"
    model.mkdir()
    (model / "tokenizer.json").write_text(json.dumps(spec), "utf-8")
    folder = get_tokenizer(f"hf:{model}")
    file = get_tokenizer(f"hf:{qwen2_tokenizer_json()}")
    text = sample_texts()[0]
    assert folder.count(text) == file.count(text) > 1000
    assert folder.count("x") == 1
    assert folder.count_many([text, "x", ""]) == [file.count(text), 1, 0]
    assert folder.name == f"hf:{model}"
    assert folder.id != file.id  # ids follow the file's content


def test_tiktoken_o200k_without_its_data_is_one_clear_error(tmp_path: Path, example_repo: Path) -> None:
    empty = tmp_path / "tiktoken-cache"
    empty.mkdir()
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(empty)}
    import subprocess

    result = subprocess.run([sys.executable, "-m", "context_pack", "build", str(example_repo), "--no-cache",
                             "--tokenizer", "tiktoken:o200k_base"], capture_output=True, text=True, env=env)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "o200k_base" in lines[0] and f"TIKTOKEN_CACHE_DIR={empty}" in lines[0] and "online" in lines[0]


def bad_tokenizers(tmp_path: Path) -> list[tuple[type[Exception], str, str]]:
    """(error, spec, what the message says) for specs that cannot count: missing paths and unusable files."""
    not_a_tokenizer = tmp_path / "notes.txt"
    not_a_tokenizer.write_text("this is not a tokenizer\n")
    json_not_tokenizer = tmp_path / "config.json"
    json_not_tokenizer.write_text('{"model_type": "qwen2"}')
    fake_gguf = tmp_path / "fake.gguf"
    fake_gguf.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    empty_folder = tmp_path / "model"
    empty_folder.mkdir()
    return [
        (UsageError, "hf:" + str(tmp_path / "missing.json"), "path does not exist"),
        (UsageError, "gguf:" + str(tmp_path / "missing.gguf"), "path does not exist"),
        (UsageError, "sentencepiece:model", "unknown tokenizer"),
        (UsageError, "tiktoken:no_such_encoding", "unknown tiktoken encoding"),
        (CtxpackError, "hf:" + str(not_a_tokenizer), "not a usable tokenizer.json"),
        (CtxpackError, "hf:" + str(json_not_tokenizer), "not a usable tokenizer.json"),
        (CtxpackError, "hf:" + str(empty_folder), "no tokenizer.json"),
        (CtxpackError, "gguf:" + str(not_a_tokenizer), "not a GGUF file"),
        (CtxpackError, "gguf:" + str(fake_gguf), "could not load a vocabulary"),
        (CtxpackError, "gguf:" + str(empty_folder), "is a folder"),
    ]


def test_library_errors_for_bad_tokenizers(example_repo: Path, tmp_path: Path) -> None:
    for error, spec, message in bad_tokenizers(tmp_path):
        with pytest.raises(CtxpackError) as caught:
            context_pack.build(example_repo, budget=1000, tokenizer=spec, use_cache=False)
        assert isinstance(caught.value, UsageError) == (error is UsageError), spec  # exit 2 or exit 1
        assert message in str(caught.value) and "\n" not in str(caught.value), spec


def test_a_mistaken_tokenizer_fails_before_any_parse_worker_starts(example_repo: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A build starts its parse workers before it loads the tokenizer (both then run at once), but a spec
    that names no tokenizer (unknown kind or encoding, missing path) fails first; an unusable file is found
    when loading, after the workers started, and they are stopped."""
    from context_pack import parallel

    started: list[int] = []

    class Recorded(parallel.ParseRun):
        def __init__(self, jobs: Any, *args: Any, **kwargs: Any) -> None:
            if jobs:  # (a run with nothing to parse starts no worker)
                started.append(1)
            super().__init__(jobs, *args, **kwargs)

    monkeypatch.setattr(parallel, "ParseRun", Recorded)
    for error, spec, message in bad_tokenizers(tmp_path):
        started.clear()
        with pytest.raises(CtxpackError, match=re.escape(message)):
            context_pack.build(example_repo, budget=1000, tokenizer=spec, use_cache=False)
        assert (started == []) == (error is UsageError), spec
    started.clear()
    context_pack.build(example_repo, budget=1000, use_cache=False)
    assert started == [1]


def test_cli_missing_tokenizer_exits_2_and_unusable_exits_1(example_repo: Path, tmp_path: Path) -> None:
    cases = bad_tokenizers(tmp_path)
    runs = [("build", cases[0]), ("build", cases[4]), ("build", cases[8]), ("explain", cases[1]),
            ("explain", cases[6])]
    for command, (error, spec, message) in runs:
        result = run_cli(command, str(example_repo), "--no-cache", "--tokenizer", spec)
        assert result.returncode == (2 if error is UsageError else 1), (spec, result.stderr)
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ctxpack: error: ") and message in lines[0], (spec, lines)


@pytest.mark.parametrize("kind", ("hf", "gguf-spm"))
def test_cli_build_and_explain_with_each_kind(example_repo: Path, kind: str) -> None:
    spec = tokenizer_spec(kind)
    result = run_cli("build", str(example_repo), "--no-cache", "-b", "1500", "-t", spec, "-f", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tokenizer"] == spec
    assert report["tokens"] == get_tokenizer(spec).count(report["text"]) <= 1500
    assert result.stderr == ""  # llama.cpp's loading log stays out of the way
    explained = run_cli("explain", str(example_repo), "--no-cache", "--top", "3", "-t", spec)
    assert explained.returncode == 0, explained.stderr
    assert "tokens" in explained.stdout and spec.split("/")[-1] in explained.stdout.replace("\n", "")


def test_tokenizer_from_config_is_relative_to_the_repo_and_the_flag_wins(tmp_path: Path) -> None:
    from conftest import init_repo

    repo = init_repo(tmp_path / "r", {"a.py": "def f():\n    return 1\n" * 20,
                                      ".ctxpack.toml": 'tokenizer = "hf:models/qwen"\n'})
    (repo / "models" / "qwen").mkdir(parents=True)
    (repo / "models" / "qwen" / "tokenizer.json").write_bytes(qwen2_tokenizer_json().read_bytes())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli("build", str(repo), "--no-cache", "-f", "json", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tokenizer"] == f"hf:{repo / 'models' / 'qwen'}"
    result = run_cli("build", str(repo), "--no-cache", "-f", "json", "--tokenizer", "tiktoken:cl100k_base")
    assert json.loads(result.stdout)["tokenizer"] == "tiktoken:cl100k_base"
    pack = context_pack.build(repo, use_cache=False, tokenizer=tokenizer_spec("gguf-bpe"))
    assert pack.tokenizer == tokenizer_spec("gguf-bpe")
    (repo / ".ctxpack.toml").write_text("tokenizer = 5\n")
    assert run_cli("build", str(repo), "--no-cache").returncode == 1


class DictStore:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], int] = {}

    def get_counts(self, tokenizer_id, digests):
        return {d: self.rows[(tokenizer_id, d)] for d in digests if (tokenizer_id, d) in self.rows}

    def put_counts(self, tokenizer_id, counts):
        self.rows.update({(tokenizer_id, d): n for d, n in counts.items()})


class CountingTokenizer:
    def __init__(self, inner) -> None:
        self.inner, self.counted = inner, 0
        self.name, self.id = inner.name, inner.id

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def count_many(self, texts: list[str]) -> list[int]:
        self.counted += len(texts)
        return self.inner.count_many(texts)


def test_cached_counts_are_exact_and_keyed_by_tokenizer_id(stdlib_part: Path) -> None:
    store = DictStore()
    texts = sample_texts()
    for kind in ("tiktoken", "gguf-bpe"):
        inner = get_tokenizer(tokenizer_spec(kind))
        first = CountingTokenizer(inner)
        cached = CachedTokenizer(first, store)
        assert cached.count_many([*texts, texts[0]]) == inner.count_many([*texts, texts[0]])
        assert first.counted == len(texts)  # the repeated text is counted once
        second = CountingTokenizer(inner)
        assert CachedTokenizer(second, store).count_many(texts) == inner.count_many(texts)
        assert second.counted == 0  # every count came from the store
        assert cached.name == inner.name and cached.id == inner.id
    assert {tokenizer_id for tokenizer_id, _ in store.rows} == {
        "tiktoken:cl100k_base", get_tokenizer(tokenizer_spec("gguf-bpe")).id}
    # The packer takes a cached tokenizer like any other, and the pack is the same.
    from context_pack.config import load_config
    from context_pack.pack import pack
    from context_pack.pipeline import collect, rank

    config = load_config(stdlib_part)
    corpus = collect(stdlib_part, config, use_cache=False)
    ranked = rank(corpus, config)
    plain = pack(ranked, 4000, get_tokenizer("tiktoken:cl100k_base"), "md", "lib", corpus.line_counts)
    via_cache = pack(ranked, 4000, CachedTokenizer(get_tokenizer("tiktoken:cl100k_base"), store), "md", "lib",
                     corpus.line_counts)
    assert via_cache.text == plain.text and via_cache.tokens == plain.tokens



def test_missing_optional_libraries_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from context_pack.tokens import GgufTokenizer, HuggingFaceTokenizer

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what an environment without the extra looks like
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(CtxpackError, match=r"pip install 'context-pack\[gguf\]'"):
        GgufTokenizer(str(vocab("deepseek-coder")))
    with pytest.raises(CtxpackError, match="pip install tokenizers"):
        HuggingFaceTokenizer(str(qwen2_tokenizer_json()))


class _Blobs:
    """A stand-in for the index's derived table."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def derived(self, kind: str, key: str) -> bytes | None:
        return self.values.get(f"{kind}:{key}")

    def put_derived(self, kind: str, key: str, value: bytes) -> None:
        self.values = {k: v for k, v in self.values.items() if not k.startswith(f"{kind}:")}
        self.values[f"{kind}:{key}"] = value


def test_a_kept_tiktoken_vocabulary_counts_exactly_as_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken

    from context_pack.tokens import TiktokenTokenizer

    reference = tiktoken.get_encoding("cl100k_base")
    blobs = _Blobs()
    TiktokenTokenizer("cl100k_base", blobs)  # loaded as usual, and kept
    assert len(blobs.values) == 1
    with monkeypatch.context() as patch:  # now made from what was kept, without tiktoken's loader
        patch.setattr(tiktoken, "get_encoding", lambda name: pytest.fail("loaded again"))
        kept = TiktokenTokenizer("cl100k_base", blobs)
    assert kept._encoding._mergeable_ranks == reference._mergeable_ranks
    assert kept._encoding._special_tokens == reference._special_tokens
    for text in [*sample_texts(), "", "<|endoftext|> is text here"]:
        assert kept.count(text) == len(reference.encode_ordinary(text))
    assert kept.id == "tiktoken:cl100k_base"


@pytest.mark.parametrize("damage", ["garbage", "duplicate-ranks", "wrong-name", "truncated-blob"])
def test_a_damaged_kept_vocabulary_is_loaded_again_not_trusted(damage: str) -> None:
    import io

    import numpy as np
    import tiktoken

    from context_pack.tokens import TiktokenTokenizer

    blobs = _Blobs()
    TiktokenTokenizer("cl100k_base", blobs)
    (key, value), = blobs.values.items()
    with np.load(io.BytesIO(value), allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    if damage == "garbage":
        blobs.values[key] = b"PK\x03\x04 not a zip"
    else:
        if damage == "duplicate-ranks":
            arrays["ranks"] = np.zeros_like(arrays["ranks"])
        elif damage == "wrong-name":
            meta = json.loads(arrays["meta"].tobytes())
            arrays["meta"] = np.frombuffer(json.dumps(["o200k_base", *meta[1:]]).encode(), dtype=np.uint8)
        else:
            arrays["blob"] = arrays["blob"][:-10]
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        blobs.values[key] = buffer.getvalue()
    again = TiktokenTokenizer("cl100k_base", blobs)
    reference = tiktoken.get_encoding("cl100k_base")
    assert again._encoding._mergeable_ranks == reference._mergeable_ranks
    assert again.count(sample_texts()[0]) == len(reference.encode_ordinary(sample_texts()[0]))
    assert TiktokenTokenizer("cl100k_base", blobs)._encoding._mergeable_ranks == reference._mergeable_ranks  # kept anew


def test_builds_keep_the_vocabulary_in_the_index_and_survive_a_damaged_one(tmp_path: Path) -> None:
    import sqlite3

    from conftest import init_repo

    repo = init_repo(tmp_path / "repo", {"a.py": "def alpha():\n    return 1\n", "b.py": "import a\n"})
    first = run_cli("build", str(repo), "-b", "400", "--format", "json")
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(repo / ".ctxpack" / "index.db") as db:
        kept = db.execute("SELECT COUNT(*) FROM derived WHERE key LIKE 'vocabulary:cl100k_base:%'").fetchone()
        assert kept == (1,)
        db.execute("UPDATE derived SET value = ? WHERE key LIKE 'vocabulary:%'", (b"garbage",))
        db.execute("DELETE FROM results")
    second = run_cli("build", str(repo), "-b", "400", "--format", "json")
    assert second.returncode == 0 and second.stdout == first.stdout
    assert "damaged kept vocabulary" in second.stderr
    third = run_cli("build", str(repo), "-b", "400", "--format", "json", "--query", "alpha")
    assert third.returncode == 0 and "damaged" not in third.stderr  # kept again by the second build


def _exactly_joined_cases() -> list[tuple[str, str]]:
    """Pairs cut where `joins_exactly` allows, made to break additivity if it were wrong: whitespace runs,
    punctuation and contractions on either side of the newline, unicode spaces and letters."""
    import random

    from context_pack.tokens import joins_exactly

    lefts = ["x\n", "x  \n", ")\n", "x)\n\n", "\n \n", "a\r\n", "'\n", "x\u00a0\n", "123\n", "```\n\n", "\t\n",
             "</file>\n", "def f():\n    return 1\n", "é\n", "中文\n", "x \u3000\n", "/\n", "'s\n"]
    rights = ["x", "#", "<file", "=== a ===", "'s", "'re x", "```python", "1234", "é", "中", "\u200b", "/usr", ")",
              "# title\n\n", "Ab\n", "_x", "\u2028x", " x", "\nx"]
    cases = [(left, right) for left in lefts for right in rights if joins_exactly(left, right)]
    alphabet = ["a", "Z", "é", "中", "1", " ", "  ", "\n", "\n\n", "\r\n", "\t", ".", ")", "'", "'s", "/", "#", "<",
                "\u00a0", "\u3000", "_", "`", "-", "x'll"]
    rng = random.Random(5)
    while len(cases) < 1500:
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 40)))
        cut = rng.randint(1, len(text) - 1)
        if joins_exactly(text[:cut], text[cut:]):
            cases.append((text[:cut], text[cut:]))
    return cases


def test_cl100k_counts_a_text_cut_after_a_newline_as_the_sum_of_its_parts() -> None:
    from context_pack.tokens import joins_exactly

    tokenizer = get_tokenizer("tiktoken:cl100k_base")
    assert tokenizer.splits_after_newline  # type: ignore[attr-defined]
    cases = _exactly_joined_cases()
    assert len(cases) >= 1500
    for left, right in cases:
        assert tokenizer.count(left + right) == tokenizer.count(left) + tokenizer.count(right), (left, right)
    # What the check refuses can differ: a whitespace run cut before its newline, a newline before a space.
    assert not joins_exactly("x  ", "\ny") and not joins_exactly("x\n", " y") and not joins_exactly("x\n", "")
    assert tokenizer.count("x \n\n y") != tokenizer.count("x \n") + tokenizer.count("\n y")


@pytest.mark.parametrize("fmt", ["md", "xml", "plain"])
def test_a_pack_counted_by_its_parts_counts_as_its_whole_text(tmp_path: Path, fmt: str) -> None:
    from context_pack.pack import _segments, _TextCounter
    from context_pack.render import render_parts

    files = {f"pkg/mod{i}.py": f"import os\n\n\ndef func_{i}(value):  \n    '''Doc.'''\n    return value * {i}\n\n\n"
             f"class C{i}:\n    x = '/tmp'\n" for i in range(6)}
    files["notes/todo.md"] = "# Notes\n\n  indented\n\n/ slash first\n"
    (tmp_path / "repo").mkdir()
    for rel, text in files.items():
        (tmp_path / "repo" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "repo" / rel).write_text(text)
    pack = context_pack.build(tmp_path / "repo", budget=400, format=fmt, use_cache=False)
    assert pack.chunks
    parts, _ = render_parts(pack.chunks, "repo", fmt, {path: 20 for path in files})
    tokenizer = get_tokenizer("tiktoken:cl100k_base")
    assert len(_segments(parts)) > 2  # split into several, each counted alone
    counter = _TextCounter(tokenizer)
    assert counter.count(parts) == tokenizer.count("".join(parts)) == counter.count(parts)
    assert pack.tokens == tokenizer.count(pack.text) <= 400

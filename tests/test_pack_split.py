"""The two-part pack `ask` sends: a stable, query-independent prefix, then the query part."""

from __future__ import annotations

from pathlib import Path

import pytest

from context_pack.backends.tokenizer import BackendTokenizer
from context_pack.config import load_config
from context_pack.model import DEFAULT_SYSTEM_PROMPT, Pack
from context_pack.pack import pack, pack_split
from context_pack.pipeline import collect, rank
from context_pack.render import SECTION_TITLES


class CountingBackend:
    """Stands in for a server's /tokenize: counts with cl100k, and counts the calls."""

    url = "http://counting.invalid"

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        return self.tokenizer.count(text)


@pytest.fixture(scope="module")
def ranked_twice(stdlib_part: Path):
    config = load_config(stdlib_part)
    corpus = collect(stdlib_part, config)
    first = rank(corpus, config, query="how does the email header parser fold long lines")
    second = rank(corpus, config, query="json decoder error position")
    return corpus, config, first, second, rank(corpus, config)  # the last: the stable part's (no-query) order


def test_stable_part_is_the_same_prefix_for_different_questions(ranked_twice, tokenizer) -> None:
    corpus, _, first, second, stable = ranked_twice
    texts = []
    for ranked in (first, second):
        result = pack_split(stable, ranked, 4000, 2000, tokenizer, "md", corpus.root.name,
                            corpus.line_counts)
        assert tokenizer.count(result.text) == result.tokens <= 4000
        sections = [p.section for p in result.chunks]
        assert sections == ["stable"] * sections.count("stable") + ["query"] * sections.count("query")
        assert sections.count("stable") > 3 and sections.count("query") > 3
        keys = [p.chunk.key for p in result.chunks]
        assert len(keys) == len(set(keys))  # a chunk is shown once
        texts.append(result.text)
    header = f"## {SECTION_TITLES['query']}\n\n"
    stable_first, stable_second = (text[: text.index(header)] for text in texts)
    assert stable_first == stable_second
    assert stable_first.startswith(f"# Repository: {corpus.root.name}\n\n## {SECTION_TITLES['stable']}\n\n")
    assert 1500 <= tokenizer.count(stable_first) <= 2100
    assert texts[0] != texts[1]


def test_no_stable_share_is_a_query_only_pack(ranked_twice, tokenizer) -> None:
    corpus, _, first, _, stable = ranked_twice
    result = pack_split(stable, first, 3000, 0, tokenizer, "md", corpus.root.name,
                        corpus.line_counts)
    assert {p.section for p in result.chunks} == {"query"} and "## Repository overview" not in result.text
    plain = pack(first, 3000, tokenizer, "md", corpus.root.name, corpus.line_counts)
    assert result.text == plain.text  # the same chunks as a plain build with the query, only labelled


@pytest.mark.parametrize("fmt", ["md", "xml", "plain"])
def test_split_budget_holds_in_every_format(ranked_twice, tokenizer, fmt: str) -> None:
    corpus, _, first, _, stable = ranked_twice
    for budget, share in ((300, 150), (1000, 900), (5000, 2500)):
        result = pack_split(stable, first, budget, share, tokenizer, fmt, corpus.root.name,
                            corpus.line_counts)
        assert tokenizer.count(result.text) == result.tokens <= budget


def test_an_expensive_tokenizer_is_called_a_few_times_per_pack(ranked_twice, tokenizer) -> None:
    corpus, _, first, _, stable = ranked_twice
    backend = CountingBackend(tokenizer)
    counting = BackendTokenizer(backend, estimator=tokenizer)  # type: ignore[arg-type]
    result = pack_split(stable, first, 4096, 2048, counting, "md", corpus.root.name,
                        corpus.line_counts)
    assert tokenizer.count(result.text) == result.tokens <= 4096
    assert result.tokens >= 0.9 * 4096
    assert backend.calls <= 20, backend.calls  # estimates by the local tokenizer, exact counts of the text only


def test_backend_tokenizer_caches_counts(tokenizer) -> None:
    backend = CountingBackend(tokenizer)
    counting = BackendTokenizer(backend, estimator=tokenizer)  # type: ignore[arg-type]
    texts = [f"def f{i}(x):\n    return x + {i}\n" for i in range(10)]
    assert counting.count_many(texts + texts) == [tokenizer.count(t) for t in texts + texts]
    assert backend.calls == 10 and counting.calls == 10
    assert counting.name == "backend:http://counting.invalid"


def test_to_messages_puts_the_question_after_the_pack() -> None:
    def pack_in(fmt: str) -> Pack:
        return Pack(root="/r", budget=10, tokens=3, tokenizer="t", query="q", format=fmt, text="# Repository: r\n\n",
                    chunks=[], files_considered=0, chunks_considered=0)

    messages = pack_in("md").to_messages("  Why <x>?\n")
    assert messages == [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
                        {"role": "user", "content": "# Repository: r\n\n## Question\n\nWhy <x>?\n"}]
    assert pack_in("xml").to_messages("Why <x>?", system="S")[1]["content"].endswith(
        "<question>\nWhy &lt;x&gt;?\n</question>\n")
    assert pack_in("plain").to_messages("Why?", system="S")[0] == {"role": "system", "content": "S"}

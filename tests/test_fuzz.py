"""Fuzzing, bounded for CI: random file trees and random bytes never crash a build, never overrun the
budget, never leak a planted secret, and a cached build equals a fresh one. `bench/fuzz.py` runs the same
strategy for thousands of examples and records the figures in bench/RELIABILITY.md."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import context_pack
from context_pack.lang import GRAMMARS
from context_pack.parse import parse_file
from context_pack.tokens import get_tokenizer
from fuzz_trees import Tree, trees, write_tree
from test_parse_languages import assert_partition

BOUNDED = settings(max_examples=25, deadline=None, database=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@BOUNDED
@given(tree=trees(), budget=st.sampled_from([1, 40, 300, 2000, 8000]), query=st.none() | st.text(max_size=40))
def test_random_trees_build_within_budget_and_leak_nothing(tree: Tree, budget: int, query: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "repo"
        write_tree(root, tree)
        fresh = context_pack.build(root, budget=budget, query=query, use_cache=False)
        assert fresh.tokens == get_tokenizer().count(fresh.text) <= budget
        for secret in tree.secrets:
            assert secret not in fresh.text
        cached = context_pack.build(root, budget=budget, query=query)
        assert cached.to_json_dict() == fresh.to_json_dict()


@settings(BOUNDED, max_examples=60)
@given(source=st.binary(max_size=3000), language=st.sampled_from(sorted(GRAMMARS)))
def test_random_bytes_parse_into_a_partition(source: bytes, language: str) -> None:
    result = parse_file(f"fuzz.{language}", source, language)
    text = (source[3:] if source.startswith(b"\xef\xbb\xbf") else source).decode("utf-8", errors="replace")
    if text:
        assert_partition(result.chunks, text)
    else:
        assert result.chunks == []

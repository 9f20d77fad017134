"""Explicit exceptions. The CLI maps UsageError to exit 2 and every other CtxpackError to exit 1."""


class CtxpackError(Exception):
    """The work failed: a file that exists but cannot be used, a tokenizer that cannot load, ..."""


class UsageError(CtxpackError):
    """Bad input from the caller: a path that does not exist, a bad budget, an unknown format."""

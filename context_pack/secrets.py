"""Secrets: files that hold them are not read, and secrets found in content are redacted before parsing.

Detection is Yelp's detect-secrets: its plugin classes, their own regexes, entropy measure and false-positive
heuristics; nothing here decides what a secret looks like. Only the plugins that stay quiet on source code
are used (measured on the Python standard library: see bench/RELIABILITY.md); keyword, IP address and the
vendor plugins whose patterns are keyword guesses (Artifactory, Cloudant, IBM, SoftLayer, ...) are not.

detect-secrets scans line by line, running every plugin on every line. That costs too much here, so each
plugin's own patterns first run once over the whole text: a line none of them matches cannot hold a finding,
and only matched lines are scanned the detect-secrets way. The high-entropy plugins skip quoted strings too
short to reach their entropy limit (Shannon entropy is at most log2 of the length).

A build that parses megabytes (`warm_up(scan_bytes)`) finds those lines with Hyperscan instead, when it is
installed: all ~35 patterns in one pass, compiled in prefilter mode, which reports every match of each pattern
and may report more, never fewer. It scans bytes, so lines with characters beyond ASCII still go through `re`.
The lines are then checked as before, so the findings are the same; on the standard library (31 MB), `find`
over every file takes 0.31 s instead of 1.23 s.

Redaction replaces the secret's characters on its line with `[REDACTED:<kind>]` and never changes the number
of lines, so line numbers, chunks and the index stay those of the file. A private key is redacted from its
BEGIN marker to its END marker, body lines included.
"""

from __future__ import annotations

import fnmatch
import importlib
import math
import os
import re
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

# Files that hold secrets by convention, by name (globs on the file name, any folder) and by folder.
# Never read unless redaction is off.
SECRET_FILE_NAMES = (
    ".env", ".env.*", ".envrc", "*.env",
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.p8", "*.ppk", "*.kdbx", "*.asc", "*.gpg",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.ovpn",
    ".npmrc", ".pypirc", ".netrc", "_netrc", ".git-credentials", ".htpasswd", ".pgpass", ".my.cnf",
    ".dockercfg", ".boto", ".s3cfg", "credentials", "*credentials*.json", "client_secret*.json",
    "*service-account*.json", "*service_account*.json", "secrets.json", "secrets.yml", "secrets.yaml",
    "*.secret", "*.secrets", "terraform.tfstate", "terraform.tfstate.*", "*.tfvars",
)
SECRET_DIRS = frozenset({".ssh", ".gnupg", ".aws", ".docker"})  # everything under these
_SECRET_NAME_RE = re.compile("|".join(fnmatch.translate(glob) for glob in SECRET_FILE_NAMES))

# detect-secrets plugins used by default, by class name (module detect_secrets.plugins.<module>).
PLUGINS: tuple[tuple[str, str], ...] = (
    ("aws", "AWSKeyDetector"),
    ("azure_storage_key", "AzureStorageKeyDetector"),
    ("basic_auth", "BasicAuthDetector"),
    ("discord", "DiscordBotTokenDetector"),
    ("github_token", "GitHubTokenDetector"),
    ("gitlab_token", "GitLabTokenDetector"),
    ("jwt", "JwtTokenDetector"),
    ("npm", "NpmDetector"),
    ("openai", "OpenAIDetector"),
    ("private_key", "PrivateKeyDetector"),
    ("pypi_token", "PypiTokenDetector"),
    ("sendgrid", "SendGridDetector"),
    ("slack", "SlackDetector"),
    ("square_oauth", "SquareOAuthDetector"),
    ("stripe", "StripeDetector"),
    ("twilio", "TwilioKeyDetector"),
    ("high_entropy_strings", "Base64HighEntropyString"),
    ("high_entropy_strings", "HexHighEntropyString"),
)
PRIVATE_KEY = "Private Key"
KEY_END_RE = re.compile(r"END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-*|Private-MAC: *[0-9a-fA-F]*")
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/=.")
KEY_BLOCK_MAX_LINES = 200  # a key body is never longer; an unterminated BEGIN redacts at most this much


def is_secret_file(rel: str) -> bool:
    """Whether a path (relative, with `/`) names a file that holds secrets by convention."""
    folders, _, name = rel.rpartition("/")  # the walk asks of every file: no list, no generator for the name
    return bool(_SECRET_NAME_RE.match(name)) or (bool(folders) and not SECRET_DIRS.isdisjoint(folders.split("/")))


def marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


@dataclass(frozen=True)
class Finding:
    line: int  # 1-based
    kind: str  # the detect-secrets secret type, e.g. "AWS Access Key"
    last_line: int = 0  # a private key's redaction runs to here (0: this line only)

    @property
    def end(self) -> int:
        return max(self.line, self.last_line)


# Patterns that are slow over a whole text (case-insensitive, or with no literal start) and the literal each
# match must contain: a text without it is not scanned with the pattern. Keyed by the plugin's exact pattern,
# so a changed pattern in a new detect-secrets release simply loses its gate, never a finding.
GATES: dict[str, str] = {
    r"aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?[\'\"]([0-9a-zA-Z/+]{40})[\'\"]": "aws",
    r"xox(?:a|b|p|o|s|r)-(?:\d+-)+[a-z0-9]+": "xox",
    r"https://hooks\.slack\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+": "hooks.slack.com/services/",
    r"(?:r|s)k_live_[0-9a-zA-Z]{24}": "k_live_",
}


@dataclass
class _Plugin:
    instance: Any
    entropy: bool


@dataclass
class _Pattern:
    """A pattern whose matches name the lines that may hold a finding of some plugins."""

    regex: re.Pattern[str]
    plugins: tuple[int, ...]
    gate: str | None = None  # a literal every match contains (lower-case when the regex ignores case)
    # For Hyperscan: the same pattern without back-references, matching at least what it matches (a
    # back-reference in prefilter mode matches far too much: 23 M matches of the entropy pattern on the stdlib).
    loose: str | None = None


MULTI_PATTERN_MIN_BYTES = 2_000_000  # below this much text, compiling Hyperscan's database (~0.08 s) costs more
_scanner: Any | None = None  # the compiled Hyperscan database, once a large scan asked for it
# One scan at a time: the database's scratch space is not to be shared by concurrent scans. Made anew in a
# forked child, which must not inherit it held by a thread that does not exist there.
_scan_lock = threading.Lock()


def _new_scan_lock() -> None:
    global _scan_lock
    _scan_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_scan_lock)


def warm_up(scan_bytes: int = 0) -> None:
    """Load the detectors now (before worker processes fork, so they share them); with `scan_bytes` of text
    to come, also the one-pass scanner, if that pays."""
    global _scanner, _compiling
    if _compiling is not None:  # (no thread may run at the fork, and the compiled database is wanted)
        _compiling.join()
        _compiling = None
    _plugins()
    if scan_bytes >= MULTI_PATTERN_MIN_BYTES and _scanner is None:
        _scanner = _multi_pattern()


_compiling: threading.Thread | None = None


def compile_in_background() -> None:
    """Start compiling the one-pass scanner in a thread, for a build that will scan megabytes: Hyperscan
    compiles without holding the GIL (measured), so its ~0.08 s overlap the build's reading of the files.
    `warm_up` waits for it."""
    global _compiling
    if _compiling is None and _scanner is None:
        _plugins()  # the detectors' patterns, in this thread: that part is Python
        _compiling = threading.Thread(target=_multi_pattern, name="ctxpack-hyperscan", daemon=True)
        _compiling.start()


@cache
def _multi_pattern() -> Any | None:
    """Every pattern in one Hyperscan database, by its index in `_plugins()[1]`; None without Hyperscan, or if
    it refuses a pattern (then each runs in Python, as without it)."""
    try:
        import hyperscan
    except ImportError:
        return None
    _, patterns = _plugins()
    flags = []
    for pattern in patterns:
        # Prefilter: a superset of the matches (of the `loose` form of a pattern that has one).
        # Bytes, not UTF-8 with Unicode classes (which took 0.47 s to compile, not 0.08 s): it only scans
        # lines on which bytes and characters match alike (`_candidate_lines`).
        flag = hyperscan.HS_FLAG_PREFILTER
        if pattern.regex.flags & re.IGNORECASE:
            flag |= hyperscan.HS_FLAG_CASELESS
        if pattern.regex.flags & re.MULTILINE:
            flag |= hyperscan.HS_FLAG_MULTILINE
        if pattern.regex.flags & re.DOTALL:
            flag |= hyperscan.HS_FLAG_DOTALL
        flags.append(flag)
    database = hyperscan.Database()
    try:
        database.compile(expressions=[(pattern.loose or pattern.regex.pattern).encode() for pattern in patterns],
                         ids=list(range(len(patterns))), elements=len(patterns), flags=flags)
    except hyperscan.error:
        return None
    return database


def _shortest(entropy_limit: float) -> int:
    """The shortest string whose Shannon entropy can exceed the limit: entropy is at most log2(length)."""
    return math.floor(2 ** entropy_limit) + 1


class _OnFirstUse(types.ModuleType):
    """Stands in for a module while a dependency is imported; the first attribute anyone asks of it imports
    the real module and answers from that."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


@contextmanager
def _imported_on_first_use(name: str) -> Iterator[None]:
    """Modules imported inside bind `name` to a stand-in (`_OnFirstUse`) unless it is imported already."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = _OnFirstUse(name)
    try:
        yield
    finally:
        if isinstance(sys.modules.get(name), _OnFirstUse):
            del sys.modules[name]


@cache
def _plugins() -> tuple[tuple[_Plugin, ...], tuple[_Pattern, ...]]:
    # detect-secrets imports `requests` (~70 ms, a third of loading it) for verifying secrets over the network,
    # which ctxpack never does: it only calls the plugins' `analyze_string` and the heuristics.
    with _imported_on_first_use("requests"):
        import detect_secrets.filters.heuristic  # noqa: F401 (imported here, with the stand-in)
        from detect_secrets.plugins.base import RegexBasedDetector
        from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin

        modules = {name: importlib.import_module(f"detect_secrets.plugins.{name}") for name, _ in PLUGINS}

    plugins: list[_Plugin] = []
    patterns: list[_Pattern] = []
    strings: list[str] = []  # per high-entropy plugin: its charset, as long as its entropy limit needs
    for module_name, class_name in PLUGINS:
        instance = getattr(modules[module_name], class_name)()
        number = len(plugins)
        if isinstance(instance, HighEntropyStringsPlugin):
            plugins.append(_Plugin(instance, entropy=True))
            strings.append(f"[{re.escape(instance.charset)}]{{{_shortest(instance.entropy_limit)},}}")
        elif isinstance(instance, RegexBasedDetector):
            plugins.append(_Plugin(instance, entropy=False))
            for pattern in instance.denylist:
                gate = GATES.get(pattern.pattern)
                if gate is not None and pattern.flags & re.IGNORECASE:
                    gate = gate.lower()
                # MULTILINE: over a whole text, `^` and `$` must still match at each line, as they do per line.
                patterns.append(_Pattern(re.compile(pattern.pattern, pattern.flags | re.MULTILINE), (number,), gate))
    if strings:
        # The high-entropy plugins' quoted-string pattern, in one pass for all of them, asking for the length
        # their entropy limits need: the lines it matches are a superset of those where they report anything.
        regex = re.compile(rf"([\'\"])(?:{'|'.join(strings)})(\1)")
        loose = rf"[\'\"](?:{'|'.join(strings)})[\'\"]"  # either quote closes it
        patterns.append(_Pattern(regex, tuple(n for n, plugin in enumerate(plugins) if plugin.entropy), loose=loose))
    return tuple(plugins), tuple(patterns)


def _heuristics() -> Any:
    from detect_secrets.filters import heuristic

    return heuristic


def _false_positive(secret: str, line: str, plugin: _Plugin) -> bool:
    """detect-secrets' own default heuristic filters, those that judge a secret by its value and line."""
    heuristic = _heuristics()
    return bool(
        heuristic.is_sequential_string(secret)
        or heuristic.is_potential_uuid(secret)
        or heuristic.is_likely_id_string(secret, line, plugin.instance)
        or heuristic.is_templated_secret(secret)
        or heuristic.is_prefixed_with_dollar_sign(secret)
        or (plugin.entropy and heuristic.is_indirect_reference(line))
        or heuristic.is_not_alphanumeric_string(secret)
    )


def _secrets_on_line(plugin: _Plugin, path: str, line: str) -> Iterator[str]:
    instance = plugin.instance
    for secret in instance.analyze_string(line):
        if not secret:
            continue
        if plugin.entropy and (len(secret) < _shortest(instance.entropy_limit)
                               or instance.calculate_shannon_entropy(secret) <= instance.entropy_limit):
            continue
        if not _false_positive(secret, line, plugin):
            yield secret


def find(text: str, path: str = "") -> dict[int, list[tuple[str, str]]]:
    """0-based line -> [(kind, secret value)] for every secret the plugins find in the text."""
    plugins, _ = _plugins()
    candidates = _candidate_lines(text, _scanner) if _scanner is not None else _matched_lines(text)
    found: dict[int, list[tuple[str, str]]] = {}
    if not candidates:
        return found
    lines = text.split("\n")
    for row in sorted(candidates):
        for number in sorted(candidates[row]):
            plugin = plugins[number]
            for secret in _secrets_on_line(plugin, path, lines[row]):
                found.setdefault(row, []).append((plugin.instance.secret_type, secret))
    return found


# Where a pattern on text and the same pattern on bytes may match differently: characters beyond ASCII (one
# character, several bytes; Unicode digits, letters and spaces) and \x1c-\x1f, which Python's `\s` matches.
_SEPARATORS = ("\x1c", "\x1d", "\x1e", "\x1f")


def _like_bytes(text: str) -> bool:
    """Whether patterns match this text as they match its bytes (`str.isascii` and `in` are C scans)."""
    return text.isascii() and not any(separator in text for separator in _SEPARATORS)


def _candidate_lines(text: str, scanner: Any) -> dict[int, set[int]]:
    """Line -> the plugins whose patterns may match it: one Hyperscan pass over the lines where bytes match
    as characters do, and `re` (`_matched_lines`) over the others, if any. A finding lies within one line
    (detect-secrets scans lines), so scanning each kind of line with the others blanked loses none."""
    has_separator = any(separator in text for separator in _SEPARATORS)
    if text.isascii() and not has_separator:  # (`_like_bytes` of the whole text)
        return _scanned_lines(text.encode("ascii"), scanner)
    lines = text.split("\n")
    alike = list(lines)
    rest = [""] * len(lines)
    # Without separators anywhere in the text, a line is alike when it is ASCII (most files: one check per line).
    like_bytes = _like_bytes if has_separator else str.isascii
    for row, line in enumerate(lines):
        if not like_bytes(line):
            alike[row], rest[row] = "", line
    candidates = _scanned_lines("\n".join(alike).encode("ascii"), scanner)
    for row, plugins in _matched_lines("\n".join(rest)).items():
        candidates.setdefault(row, set()).update(plugins)
    return candidates


def _scanned_lines(data: bytes, scanner: Any) -> dict[int, set[int]]:
    """Line -> plugins from one Hyperscan pass over ASCII text: the line of each match's last character."""
    _, patterns = _plugins()
    candidates: dict[int, set[int]] = {}
    position = [0, 0]  # (offset, row): matches come in the order they end, so lines are counted as we go

    def on_match(pattern: int, start: int, end: int, flags: int, context: Any) -> None:
        last = max(end - 1, 0)
        offset, row = position
        if last >= offset:
            row += data.count(b"\n", offset, last)
        else:  # not in order after all: count from the start
            row = data.count(b"\n", 0, last)
        position[0], position[1] = last, row
        candidates.setdefault(row, set()).update(patterns[pattern].plugins)

    with _scan_lock:
        scanner.scan(data, match_event_handler=on_match)
    return candidates


def _matched_lines(text: str) -> dict[int, set[int]]:
    """Line -> the plugins whose patterns matched it, each pattern run over the whole text with `re`."""
    _, patterns = _plugins()
    lowered: str | None = None
    candidates: dict[int, set[int]] = {}  # line -> the plugins whose patterns matched it
    for pattern in patterns:
        if pattern.gate is not None:
            if pattern.regex.flags & re.IGNORECASE:
                lowered = text.lower() if lowered is None else lowered
                if pattern.gate not in lowered:
                    continue
            elif pattern.gate not in text:
                continue
        row, offset = 0, 0
        for match in pattern.regex.finditer(text):
            start, end = match.span()
            row += text.count("\n", offset, start)  # matches come in order: count lines as we go
            offset = start
            for line in range(row, row + text.count("\n", start, max(start, end - 1)) + 1):
                candidates.setdefault(line, set()).update(pattern.plugins)
    return candidates


def redact(text: str, path: str = "") -> tuple[str, list[Finding]]:
    """The text with every secret found replaced by a marker, and the findings (line and kind, never the value).

    A value two plugins both report (a GitHub token is also a high-entropy string) is one finding, of the
    more specific kind. The number of lines never changes.
    """
    found = find(text, path)
    if not found:
        return text, []
    lines = text.split("\n")  # the last piece has no newline; joining restores the text exactly
    findings: list[Finding] = []
    block_until = -1
    for row in sorted(found):
        if row <= block_until:
            continue  # inside a private key already redacted
        kinds = found[row]
        for kind, secret in kinds:
            if kind == PRIVATE_KEY:
                block_until = _redact_key_block(lines, row, secret)
                findings.append(Finding(row + 1, kind, block_until + 1 if block_until > row else 0))
                break
        line, spans = _redact_line(lines[row], [(kind, secret) for kind, secret in kinds if kind != PRIVATE_KEY])
        lines[row] = line
        findings.extend(Finding(row + 1, kind) for kind in spans)
    findings.sort(key=lambda f: f.line)
    return "\n".join(lines), findings


def _redact_line(line: str, secrets: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """Replace each secret on a line, widened to the whole token around it (a JWT's signature too); values
    that overlap become one marker of the first (most specific) kind. Returns the line and the kinds."""
    spans: list[tuple[int, int, int, str]] = []  # start, end, priority, kind
    for priority, (kind, secret) in enumerate(secrets):
        start = line.find(secret)
        while start != -1:
            end = start + len(secret)
            while start > 0 and line[start - 1] in TOKEN_CHARS:
                start -= 1
            while end < len(line) and line[end] in TOKEN_CHARS:
                end += 1
            spans.append((start, end, priority, kind))
            start = line.find(secret, end)
    merged: list[list[Any]] = []
    for start, end, priority, kind in sorted(spans):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            last[1] = max(last[1], end)
            if priority < last[2]:
                last[2], last[3] = priority, kind
        else:
            merged.append([start, end, priority, kind])
    for start, end, _, kind in reversed(merged):
        line = line[:start] + marker(kind) + line[end:]
    return line, [kind for _, _, _, kind in merged]


def _redact_key_block(lines: list[str], row: int, begin: str) -> int:
    """Redact a private key from its BEGIN marker to its END marker; returns the last row touched."""
    line = lines[row]
    start = line.find(begin)
    end = KEY_END_RE.search(line, start + len(begin))
    if end is not None:  # the whole key on one line (a JSON string with \n escapes, say)
        lines[row] = line[:start] + marker(PRIVATE_KEY) + line[end.end():]
        return row
    lines[row] = line[:start] + marker(PRIVATE_KEY)
    last = min(len(lines) - 1, row + KEY_BLOCK_MAX_LINES)
    for next_row in range(row + 1, last + 1):
        current = lines[next_row]
        end = KEY_END_RE.search(current)
        if end is not None:
            lines[next_row] = marker(PRIVATE_KEY) + current[end.end():]
            return next_row
        indent = current[: len(current) - len(current.lstrip())]
        lines[next_row] = indent + marker(PRIVATE_KEY) if current.strip() else current
    return last

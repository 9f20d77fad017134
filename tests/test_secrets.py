"""Secrets: secret files are never read, secrets in content are redacted before parsing, and no value ever
reaches the pack, the JSON report, the verbose log or the index on disk — unless the caller says --no-redact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import context_pack
from conftest import init_repo, run_cli
from context_pack.config import load_config
from context_pack.errors import CtxpackError
from context_pack.secrets import is_secret_file, redact

# Made-up values in the shapes real ones have (none is a live credential).
VALUES = {
    "aws": "AKIAZ4XQ7TLMN2BRWV3P",
    "aws_secret": "wJalrXUtnFEMIK7MDENGbPxRfiCYzq8Ht3kLm9Qp",
    "github": "ghp_R7kq2Lm9XvB4nT8wZ1pD5sF3hJ6gK0aYcE2u",
    "slack": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "stripe": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "jwt_signature": "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "entropy": "q8Zr3LxV0pN7bT2mK9sW4yH6jD1fG5cA8eR0uI3oP7l",
    "password": "s3cr3tPassw0rd",
    "key_body": "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn",
    "key_body2": "aNEKGKaPW8rnJHIYbJVbZVjYpWWr7d0V",
    "json_key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
}
SETTINGS = f'''import os

AWS_ACCESS_KEY_ID = "{VALUES["aws"]}"
CONFIG = "aws_secret_access_key = '{VALUES["aws_secret"]}'"
GITHUB_TOKEN = "{VALUES["github"]}"
SLACK_TOKEN = "{VALUES["slack"]}"
STRIPE_KEY = "{VALUES["stripe"]}"
SESSION = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{VALUES["jwt_signature"]}"
SIGNING_KEY = "{VALUES["entropy"]}"
DATABASE_URL = "postgres://admin:{VALUES["password"]}@db.example.com:5432/app"

PRIVATE_KEY = """-----BEGIN RSA PRIVATE KEY-----
{VALUES["key_body"]}AHB7MhgHcTz6sE2I2yPB
{VALUES["key_body2"]}hgTJAoGBAOYpF9yX
-----END RSA PRIVATE KEY-----"""


def connect():
    return os.environ["DATABASE_URL"]
'''
SERVICE_ACCOUNT = ('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
                   + VALUES["json_key"] + '\\nBKcwggSjAgEAAoIBAQC7\\n-----END PRIVATE KEY-----\\n"}\n')
SECRET_FILES = {
    ".env": "DB_PASSWORD=hunter2\n", "config/.env.production": "API_KEY=abc\n", "deploy/server.pem": "x\n",
    "certs/tls.key": "x\n", "id_rsa": "x\n", ".npmrc": "//registry/:_authToken=x\n", ".pypirc": "[pypi]\n",
    "gcp-credentials.json": "{}\n", "client_secret_123.json": "{}\n", "keystore.p12": "x\n",
}


@pytest.fixture(scope="module")
def secret_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    files = {"app/settings.py": SETTINGS, "app/gcp.json": SERVICE_ACCOUNT,
             "app/ok.py": "def ok():\n    return 1\n", **SECRET_FILES}
    return init_repo(tmp_path_factory.mktemp("secrets") / "repo", files)


def assert_no_value(text: str) -> None:
    for name, value in VALUES.items():
        assert value not in text, name


def test_every_secret_is_redacted_in_place_and_counted() -> None:
    text, findings = redact(SETTINGS, "app/settings.py")
    assert text.count("\n") == SETTINGS.count("\n")  # lines never move
    assert_no_value(text)
    assert [(f.line, f.kind) for f in findings] == [
        (3, "AWS Access Key"), (4, "AWS Access Key"), (5, "GitHub Token"), (6, "Slack Token"),
        (7, "Stripe Access Key"), (8, "JSON Web Token"), (9, "Base64 High Entropy String"),
        (10, "Basic Auth Credentials"), (12, "Private Key"),
    ]
    lines = text.splitlines()
    assert lines[2] == 'AWS_ACCESS_KEY_ID = "[REDACTED:AWS Access Key]"'
    assert lines[7] == 'SESSION = "[REDACTED:JSON Web Token]"'  # the whole token, signature too
    assert lines[9] == 'DATABASE_URL = "postgres://admin:[REDACTED:Basic Auth Credentials]@db.example.com:5432/app"'
    assert lines[11:15] == ['PRIVATE_KEY = """-----[REDACTED:Private Key]', "[REDACTED:Private Key]",
                            "[REDACTED:Private Key]", '[REDACTED:Private Key]"""']
    assert findings[-1].end == 15
    one_line, found = redact(SERVICE_ACCOUNT)
    assert VALUES["json_key"] not in one_line and [f.kind for f in found] == ["Private Key"]
    assert one_line.endswith('-----[REDACTED:Private Key]\\n"}\n')


def one_secret_per_detector() -> str:
    """A line for each detector's pattern (some under non-ASCII text, where bytes and characters differ)."""
    return "\n".join([
        SETTINGS, SERVICE_ACCOUNT,
        "azure = 'DefaultEndpointsProtocol=https;AccountKey=" + "Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF" * 2 + "Gh3kLm9QpXz1Ab3dE6gH9jK2m=='",
        "discord = 'MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs'",
        "gitlab = 'glpat-" + "x1Y2z3A4b5C6d7E8f9G0" + "'",
        "npm = '//registry.npmjs.org/:_authToken=npm_" + "k" * 36 + "'",
        "openai = 'sk-" + "A" * 20 + "T3BlbkFJ" + "B" * 20 + "'",
        "pypi = 'pypi-AgEIcHlwaS5vcmc" + "x" * 70 + "'",
        "sendgrid = 'SG." + "a" * 22 + "." + "b" * 43 + "'",
        "square = 'sq0csp-" + "c" * 43 + "'",
        "twilio = 'AC" + "d" * 32 + "'",
        "hook = 'https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX'",
        "naïve_aws = 'aws" + "é" * 15 + "key = \"" + VALUES["aws_secret"] + "\"'",  # 15 characters, 30 bytes
        "hex = '" + "a8f5f167f44f4964e6c998dee827110cd3e1" + "'  # é",
        "ÄÖÜ = \"" + VALUES["entropy"] + "\"",
        "-----BEGIN OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU", "-----END OPENSSH PRIVATE KEY-----",
        "def ordinary():\n    return 'x'",
    ])


def test_the_one_pass_scanner_finds_what_the_pattern_passes_find(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hyperscan (a large build's pass) flags every line Python's re flags, for the same detectors, so the
    findings are the same."""
    from context_pack import secrets

    scanner = secrets._multi_pattern()
    assert scanner is not None  # installed with ctxpack, and takes every pattern
    texts = [one_secret_per_detector(), SETTINGS.replace("\n", "\r\n"), "é" * 5000 + SETTINGS, "", SETTINGS,
             "npm = '//registry.npmjs.org/:_authToken=\x1cnpm_" + "k" * 36 + "'\n",
             "# é\nnpm = '//registry.npmjs.org/:_authToken=\x1cnpm_" + "k" * 36 + "'\n"]
    for text in texts:
        by_re = secrets._matched_lines(text)
        by_scan = secrets._candidate_lines(text, scanner)
        for row, plugins in by_re.items():
            assert plugins <= by_scan.get(row, set()), (row, text.split("\n")[row])
    monkeypatch.setattr(secrets, "_scanner", None)
    without = [redact(text) for text in texts]
    assert sum(len(found) for _, found in without) >= 30
    monkeypatch.setattr(secrets, "_scanner", scanner)
    assert [redact(text) for text in texts] == without


def test_a_large_scan_turns_the_one_pass_scanner_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from context_pack import secrets

    monkeypatch.setattr(secrets, "_scanner", None)
    secrets.warm_up(secrets.MULTI_PATTERN_MIN_BYTES - 1)
    assert secrets._scanner is None  # a few files: compiling it would cost more than it saves
    secrets.warm_up(secrets.MULTI_PATTERN_MIN_BYTES)
    assert secrets._scanner is secrets._multi_pattern() is not None


def test_a_build_whose_workers_scan_in_one_pass_redacts_the_same(secret_repo: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from context_pack import secrets

    before = context_pack.build(secret_repo, budget=4000, use_cache=False).to_json_dict()
    monkeypatch.setattr(secrets, "MULTI_PATTERN_MIN_BYTES", 0)  # this small repo's parse counts as large
    monkeypatch.setattr(secrets, "_scanner", None)
    secrets._multi_pattern.cache_clear()
    started = []
    in_background = secrets.compile_in_background
    monkeypatch.setattr(secrets, "compile_in_background", lambda: started.append(1) or in_background())
    after = context_pack.build(secret_repo, budget=4000, use_cache=False).to_json_dict()
    assert started == [1]  # compiling began while the scan read the files (nothing was indexed) ...
    assert secrets._compiling is None and secrets._scanner is not None  # ... and ended before the workers forked
    assert after == before
    assert len(after["redactions"]) >= 9
    assert_no_value(after["text"])


def test_ordinary_code_is_left_alone() -> None:
    code = ('import hashlib\n\nALPHABET = "abcdefghijklmnopqrstuvwxyz"\nUUID = "123e4567-e89b-12d3-a456-426614174000"\n'
            'url = "https://example.com/path?query=1"\npassword = get_password()\nuser_id = "a8f5f167f44f4964e6c998dee827110c"\n'
            'TEMPLATE = "${SECRET_TOKEN_FROM_THE_ENVIRONMENT}"\n')
    assert redact(code) == (code, [])


def test_secret_files_are_skipped_by_name() -> None:
    for path in SECRET_FILES:
        assert is_secret_file(path), path
    for path in ("env.py", "src/credentials/__init__.py", "keys.py", "Key.java", "docs/secrets.md", "monkey.py"):
        assert not is_secret_file(path), path


def test_build_ships_no_secret_anywhere(secret_repo: Path, tmp_path: Path) -> None:
    reports = {}
    for fmt in ("md", "xml", "plain", "json"):
        result = run_cli("build", str(secret_repo), "-b", "4000", "-f", fmt, "-v")
        assert result.returncode == 0, result.stderr
        assert_no_value(result.stdout + result.stderr)
        assert "hunter2" not in result.stdout
        reports[fmt] = result
    report = json.loads(reports["json"].stdout)
    assert {c["path"] for c in report["chunks"]} == {"app/settings.py", "app/gcp.json", "app/ok.py"}
    assert report["redactions"] == [
        {"path": "app/gcp.json", "line": 1, "kind": "Private Key"},
        *({"path": "app/settings.py", "line": line, "kind": kind} for line, kind in [
            (3, "AWS Access Key"), (4, "AWS Access Key"), (5, "GitHub Token"), (6, "Slack Token"),
            (7, "Stripe Access Key"), (8, "JSON Web Token"), (9, "Base64 High Entropy String"),
            (10, "Basic Auth Credentials"), (12, "Private Key")]),
    ]
    assert "> 10 secrets redacted, each marked [REDACTED:kind].\n" in report["text"]
    assert '<redacted count="10"/>' in reports["xml"].stdout
    stderr = reports["md"].stderr
    assert "skipped (secret-file): .env" in stderr and "skipped 10 file(s): secret-file" in stderr
    assert "app/settings.py:3 (AWS Access Key)" in stderr
    # Redaction happens before parsing: the index on disk (chunks and full-text table) never saw a value.
    index_bytes = b"".join(p.read_bytes() for p in (secret_repo / ".ctxpack").glob("index.db*"))
    assert index_bytes and not any(value.encode() in index_bytes for value in VALUES.values())
    stats = json.loads(run_cli("stats", str(secret_repo), "--json").stdout)
    assert stats["skipped"]["secret-file"] == 10


def test_a_pack_without_the_secret_lines_reports_none(secret_repo: Path) -> None:
    pack = context_pack.build(secret_repo, budget=4000, config={"include": ["app/ok.py"]}, use_cache=False)
    assert pack.redactions == [] and "redacted" not in pack.text


def test_no_redact_is_loud_and_never_shares_cache_rows(secret_repo: Path, tmp_path: Path) -> None:
    raw = run_cli("build", str(secret_repo), "-b", "6000", "-f", "json", "--no-redact")
    assert raw.returncode == 0, raw.stderr
    assert "redaction is OFF" in raw.stderr
    report = json.loads(raw.stdout)
    assert VALUES["github"] in report["text"] and report["redactions"] == []
    assert "gcp-credentials.json" in {c["path"] for c in report["chunks"]}
    dot_env = context_pack.build(secret_repo, budget=6000, config={"redact": False, "include": [".env"]},
                                 use_cache=False)
    assert "hunter2" in dot_env.text
    # The same index, back to the default: the raw rows are not reused.
    again = run_cli("build", str(secret_repo), "-b", "6000", "-f", "json")
    assert_no_value(again.stdout)
    assert json.loads(again.stdout) == context_pack.build(secret_repo, budget=6000, use_cache=False).to_json_dict()


def test_a_repository_cannot_turn_redaction_off(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "r", {"a.py": "x = 1\n", ".ctxpack.toml": "redact = false\n"})
    with pytest.raises(CtxpackError, match="--no-redact"):
        load_config(repo)
    result = run_cli("build", str(repo))
    assert result.returncode == 1 and "only be turned off by the caller" in result.stderr


def test_loading_the_detectors_does_not_import_requests_until_something_uses_it() -> None:
    """detect-secrets imports `requests` for network verification, which ctxpack never runs: a stand-in is
    bound instead, and the real module is imported the first time anyone uses it through the stand-in."""
    code = (
        "import sys\n"
        "from context_pack.secrets import redact, warm_up\n"
        "warm_up()\n"
        "text, found = redact('key = \"AKIAIOSFODNN7EXAMPLE\"\\n', 'a.py')\n"
        "assert 'REDACTED:AWS Access Key' in text and found, text\n"
        "assert 'requests' not in sys.modules and 'urllib3' not in sys.modules\n"
        "import detect_secrets.plugins.base as base\n"
        "error = base.requests.exceptions.RequestException\n"
        "import requests\n"
        "assert error is requests.exceptions.RequestException and type(requests).__name__ == 'module'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

"""Secret handling for records: known secret values are registered once and never written.

Secrets enter the process from environment variables or a secrets file (see
``params.SECRET_ENV``); every value read that way, and every secret produced at run
time (e.g. a Cognito client secret from a Terraform output), is registered here.
``redact`` replaces registered values in text; ``assert_no_secrets`` refuses to
record anything that contains one.

A secret produced inside a notebook's kernel must also be known to the runner that
archives the notebook (another process). ``register_secret`` therefore also writes a
*fingerprint* of the value to the state folder (``<state>/secrets/fingerprints.json``,
mode 0600): its length, a short prefix (an eighth of the value, 1 to 4 characters,
only used to find candidates quickly) and its SHA-256. The value itself is never
written, yet any process can find and redact it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import SecretLeakError
from ..params import SECRET_ENV

REDACTED = "***REDACTED***"
_MIN_LENGTH = 6  # shorter values would redact ordinary words
_known: set[str] = set()
_fingerprint_cache: tuple[str, float, int, tuple[dict, ...]] | None = None


def _prefix_length(length: int) -> int:
    return max(1, min(4, length // 8))


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def fingerprint_file() -> Path:
    """Where fingerprints of run-time secrets are shared between processes."""
    from ..paths import state_dir

    return state_dir() / "secrets" / "fingerprints.json"


def _read_fingerprints() -> tuple[dict, ...]:
    global _fingerprint_cache
    path = fingerprint_file()
    try:
        stat = path.stat()
    except FileNotFoundError:
        return ()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if _fingerprint_cache and _fingerprint_cache[:3] == key:
        return _fingerprint_cache[3]
    try:
        entries = tuple(json.loads(path.read_text() or "[]"))
    except (OSError, ValueError):
        entries = ()
    _fingerprint_cache = (*key, entries)
    return entries


def _persist_fingerprint(value: str) -> None:
    entry = {"length": len(value), "prefix": value[: _prefix_length(len(value))], "sha256": _digest(value)}
    path = fingerprint_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            entries = json.loads(handle.read() or "[]")
        except ValueError:
            entries = []
        if entry["sha256"] not in {e.get("sha256") for e in entries}:
            entries.append(entry)
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(entries))
            handle.flush()
    os.chmod(path, 0o600)


def register_secret(value: str | None, share: bool = True) -> None:
    """Remember a secret value so that it is redacted and refused everywhere.

    With ``share`` (default) its fingerprint is also written for other processes
    (the runner archiving this notebook, later notebooks of the run).
    """
    if value and len(value) >= _MIN_LENGTH:
        if value in _known:
            return
        _known.add(value)
        if share:
            try:
                _persist_fingerprint(value)
            except OSError:  # a read-only state folder must not break the notebook
                pass


def register_environment_secrets() -> None:
    """Register the values of every secret environment variable that is set."""
    for env_name in SECRET_ENV.values():
        register_secret(os.environ.get(env_name), share=False)


def known_secrets() -> frozenset[str]:
    """Secret values this process knows in clear (environment, secrets file, registered)."""
    register_environment_secrets()
    return frozenset(_known)


def _fingerprint_spans(text: str, entries: tuple[dict, ...] | None = None) -> list[tuple[int, int]]:
    """(start, end) of every substring of ``text`` matching a shared fingerprint (``entries``: as read
    by ``_read_fingerprints``, read now when None)."""
    spans = []
    for entry in _read_fingerprints() if entries is None else entries:
        length, prefix, digest = entry["length"], entry["prefix"], entry["sha256"]
        start = text.find(prefix)
        while start != -1:
            candidate = text[start : start + length]
            if len(candidate) == length and _digest(candidate) == digest:
                spans.append((start, start + length))
            start = text.find(prefix, start + 1)
    return spans


def redact(text: str) -> str:
    """``text`` with every known secret value replaced."""
    for value in sorted(known_secrets(), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    spans = _fingerprint_spans(text)
    if spans:
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        for start, end in reversed(merged):
            text = text[:start] + REDACTED + text[end:]
    return text


def _strings(value: Any):
    """Every string inside ``value`` (keys and values of nested containers)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _strings(item)
    elif value is not None and not isinstance(value, (bool, int, float)):
        yield json.dumps(value, default=str, ensure_ascii=False)


class SecretFinder:
    """:func:`find_secrets` with the known secrets and the shared fingerprints read once, for a scan
    of many strings (a notebook's, a log's lines): the same answers, without reading the environment
    and the fingerprint file again for each string."""

    def __init__(self) -> None:
        self.secrets = known_secrets()
        self.fingerprints = _read_fingerprints()

    def __call__(self, value: Any) -> list[str]:
        found: list[str] = []
        for text in _strings(value):
            for secret in self.secrets:
                if secret in text and secret not in found:
                    found.append(secret)
            if self.fingerprints:
                for start, end in _fingerprint_spans(text, self.fingerprints):
                    if text[start:end] not in found:
                        found.append(text[start:end])
        return found


def find_secrets(value: Any) -> list[str]:
    """Known secret values found in ``value`` (text or any nested JSON-like object)."""
    return SecretFinder()(value)


def contains_secret(value: Any) -> bool:
    """True if ``value`` contains any known secret value."""
    return bool(find_secrets(value))


def assert_no_secrets(value: Any, where: str) -> None:
    """Raise SecretLeakError if ``value`` contains a known secret (the secret is not shown)."""
    if find_secrets(value):
        raise SecretLeakError(f"refusing to record {where}: it contains a secret value")

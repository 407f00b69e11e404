"""Secret handling for records: known secret values are registered once and never written.

Secrets enter the process from environment variables or a secrets file (see
``params.SECRET_ENV``); every value read that way, and every secret produced at run
time (e.g. a Cognito client secret from a Terraform output), is registered here.
``redact`` replaces registered values in text; ``assert_no_secrets`` refuses to
record anything that contains one.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import SecretLeakError
from ..params import SECRET_ENV

REDACTED = "***REDACTED***"
_MIN_LENGTH = 6  # shorter values would redact ordinary words
_known: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is redacted and refused everywhere."""
    if value and len(value) >= _MIN_LENGTH:
        _known.add(value)


def register_environment_secrets() -> None:
    """Register the values of every secret environment variable that is set."""
    for env_name in SECRET_ENV.values():
        register_secret(os.environ.get(env_name))


def known_secrets() -> frozenset[str]:
    register_environment_secrets()
    return frozenset(_known)


def redact(text: str) -> str:
    """``text`` with every known secret value replaced."""
    for value in sorted(known_secrets(), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def find_secrets(value: Any) -> list[str]:
    """Known secret values found in ``value`` (any JSON-serialisable object or text)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return [s for s in known_secrets() if s in text]


def assert_no_secrets(value: Any, where: str) -> None:
    """Raise SecretLeakError if ``value`` contains a known secret (the secret is not shown)."""
    if find_secrets(value):
        raise SecretLeakError(f"refusing to record {where}: it contains a secret value")

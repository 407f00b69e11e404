"""Which Terraform failures are worth retrying, and how long to wait between attempts.

A failure is transient only if every error it reported looks transient (throttling -
``Throttling``, ``ThrottlingException``, ``RequestLimitExceeded``, ``TooManyRequests`` - the
AWS SDK's "exceeded maximum number of attempts" after its own retries, ``ServiceUnavailable``,
dropped or refused connections, timeouts, provider ``RequestError``s, 5xx answers,
"try again" conditions, and a delete that found its object already gone: the next run's
refresh drops it from the state, so the destroy converges). Anything else - invalid variables, configuration errors,
validation failures, access denied - fails at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

TRANSIENT_PATTERNS = tuple(re.compile(p, re.IGNORECASE) for p in (
    r"throttl",
    r"rate exceeded",
    r"request ?limit ?exceeded",  # EC2's throttling code (RequestLimitExceeded) and its message
    r"exceeded maximum number of attempts",  # the AWS SDK gave up retrying a retryable error
    r"priorrequestnotcomplete",
    r"too\s*many\s*requests",
    r"slow ?down",
    r"connection refused",
    r"connection reset",
    r"broken pipe",
    r"\beof\b",
    r"timed? ?out",
    r"timeout",
    r"deadline exceeded",
    r"requesterror",
    r"request send failed",
    r"serviceunavailable",
    r"service unavailable",
    r"internal ?(server )?error",
    r"internalfailure",
    r"status ?code:? 5\d\d",
    r"\b50[0234]\b",
    r"try again",
    r"temporarily unavailable",
    r"dependencyviolation",
    r"resourceinuseexception.*(deleting|creating|in progress)",
    r"conflictingoperationinprogress",
    r"incorrectstate",
    r"deleting\b.*\bnot ?found",  # already gone (eventual consistency, a dependent's delete took it)
))

FATAL_PATTERNS = tuple(re.compile(p, re.IGNORECASE) for p in (
    r"invalid value for (input )?variable",
    r"invalid (input )?variable",
    r"unsupported argument",
    r"reference to undeclared",
    r"error: invalid",
    r"validation",
    r"accessdenied",
    r"unauthorized",
    r"not authorized",
    r"invalidclienttokenid",
    r"no valid credential",
    r"unsupported terraform core version",
    r"inconsistent dependency lock file",
))


def is_transient(message: str) -> bool:
    """True if one error message looks like a temporary condition."""
    if any(p.search(message) for p in FATAL_PATTERNS):
        return False
    return any(p.search(message) for p in TRANSIENT_PATTERNS)


def all_transient(messages: Iterable[str]) -> bool:
    """True if there is at least one error and every one of them is transient."""
    messages = [m for m in messages if m.strip()]
    return bool(messages) and all(is_transient(m) for m in messages)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff: ``attempts`` runs in total."""

    attempts: int = 3
    base_delay: float = 10.0
    factor: float = 3.0
    max_delay: float = 120.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_delay, self.base_delay * self.factor ** (attempt - 1))

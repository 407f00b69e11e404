"""boto3 clients for a target: its endpoint (none for real AWS), its credentials, its region.

Every call names its target; none defaults to one, so AWS code cannot talk to a stand-in by
forgetting an argument.

Retries: every client retries throttling (``Throttling``, ``RequestLimitExceeded``,
``TooManyRequestsException``...), transient errors (``ServiceUnavailable``, any 5xx) and
dropped connections with botocore's *standard* mode: 9 attempts in all, jittered exponential
backoff (up to 1, 2, 4, 8, 16 then 20 s), so a throttled burst waits out a minute or two
before it gives up. Not *adaptive*: its client-side rate limiter learns per client object,
and the runbook makes short-lived clients per step, so what it learns would be thrown away
(boto3 also documents adaptive mode as experimental). A caller may pass a lighter policy
where a call only informs (quotas, prices: they fall back at once).

A call that still fails with a retryable error once its attempts are spent raises
:class:`AwsCallError`: a :class:`~eks_hub_runbook.errors.AwsError` (the message names the
service, the operation, the attempts and the fix) that is also a ``ClientError``, so code
that handles a ``ClientError`` (a fallback, a skip) keeps working.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries import standard

from .. import targets
from ..errors import AwsError

RETRY_MODE = "standard"
MAX_ATTEMPTS = 9  # the first try and 8 retries
_RETRIES = Config(retries={"total_max_attempts": MAX_ATTEMPTS, "mode": RETRY_MODE}, connect_timeout=10,
                  read_timeout=60)
# botocore's own classification of a retryable answer (throttling, transient, 5xx, modeled
# retryable); only its checkers are used here, its attempt limit (2 > the 1st attempt) never bites.
_RETRYABLE = standard.StandardRetryConditions(max_attempts=2)


class AwsCallError(AwsError, ClientError):
    """An AWS error the runbook reports as such: a ``ClientError`` (same ``response`` and
    ``operation_name``) whose message says what to do."""

    def __init__(self, error_response: dict[str, Any], operation_name: str, message: str):
        ClientError.__init__(self, error_response, operation_name)
        self.args = (message,)

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return self.__class__, (self.response, self.operation_name, self.args[0])


def retries_exhausted(service: str, operation: str, response: dict[str, Any]) -> AwsCallError:
    """The error for a retryable answer still given on the last attempt."""
    error = response.get("Error", {})
    metadata = response.get("ResponseMetadata", {})
    attempts = int(metadata.get("RetryAttempts", 0)) + 1
    return AwsCallError(response, operation, (
        f"AWS {service} {operation} still failed after {attempts} attempt{'s' if attempts != 1 else ''}: "
        f"{error.get('Code', 'Unknown')} (HTTP {metadata.get('HTTPStatusCode', '?')}): {error.get('Message', '')}. "
        f"AWS is throttling or briefly unavailable. Fix: wait a minute and run the notebook again "
        f"(`runbook run --resume` continues a run); if it keeps happening, something else in the account "
        f"is using up the API rate (check CloudTrail for the busiest callers) or ask AWS for a higher limit"))


def _raise_if_retries_exhausted(http_response: Any, parsed: dict[str, Any], model: Any, context: dict | None = None,
                                **_: Any) -> None:
    """``after-call`` hook: a retryable error on the last attempt becomes an :class:`AwsCallError`."""
    if http_response is None or http_response.status_code < 300:
        return
    if not parsed.get("ResponseMetadata", {}).get("MaxAttemptsReached"):
        return
    attempt = standard.RetryContext(attempt_number=1, operation_model=model, parsed_response=parsed,
                                    http_response=http_response, request_context={})
    if _RETRYABLE.is_retryable(attempt):
        raise retries_exhausted(model.service_model.service_id, model.name, parsed)


def endpoint_url(target: str) -> str | None:
    """AWS endpoint for a target: None (AWS's own) for ``aws``, the stand-in's URL otherwise."""
    return targets.get(target).endpoint_url()


@functools.lru_cache(maxsize=32)
def _session(target: str, region: str) -> boto3.Session:
    return targets.get(target).session(region)


def client(service: str, target: str, region: str, config: Config | None = None):
    """A boto3 client for ``service`` on ``target`` in ``region``.

    Standard retries by default (see the module's docstring); pass ``config`` for another
    policy (e.g. fewer retries for calls that only inform). Either way a retryable error
    still answered on the last attempt raises :class:`AwsCallError`.
    """
    made = _session(target, region).client(service, endpoint_url=endpoint_url(target), config=config or _RETRIES)
    made.meta.events.register_last("after-call", _raise_if_retries_exhausted)
    return made


def subprocess_env(target: str, region: str) -> dict[str, str]:
    """Environment for CLI tools (terraform, aws, kubectl) run against ``target``.

    For ``aws`` only the region: the caller's own credentials and config apply.
    """
    return targets.get(target).subprocess_env(region)

"""Reading back what was just created: AWS is eventually consistent.

Right after a create, a read of the new resource may still answer NotFound for a few
seconds (ACM ``DescribeCertificate`` after ``ImportCertificate``, EKS ``DescribeCluster``
right after Terraform created the cluster, Cognito ``AdminSetUserPassword`` after
``AdminCreateUser``). botocore does not retry a NotFound (elsewhere it is a real answer),
so the places that read what they have just created call :func:`read_after_create`: the
same call again, with a short bounded backoff, for the NotFound codes named only; then an
:class:`~eks_hub_runbook.aws.session.AwsCallError` naming the operation. Throttling and 5xx
answers are botocore's to retry (see :mod:`.session`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from botocore.exceptions import ClientError

from .session import AwsCallError

T = TypeVar("T")


@dataclass(frozen=True)
class SettlePolicy:
    """How long a just-created resource is given to become readable: ``attempts`` reads in all,
    waiting ``base_delay`` * ``factor`` ** (n - 1) seconds (at most ``max_delay``) after read n."""

    attempts: int = 6
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed read number ``attempt`` (1-based)."""
        return min(self.max_delay, self.base_delay * self.factor ** (attempt - 1))

    @property
    def budget(self) -> float:
        """Seconds waited in all before giving up."""
        return sum(self.delay(n) for n in range(1, self.attempts))


# 6 reads over 15.5 s: AWS's read-after-create lag is usually well under that.
AFTER_CREATE = SettlePolicy()


def error_code(error: ClientError) -> str:
    """The AWS error code of a ``ClientError`` ('' if it has none)."""
    return str(error.response.get("Error", {}).get("Code") or "")


def read_after_create(call: Callable[[], T], operation: str, not_found: Iterable[str],
                      policy: SettlePolicy | None = None, sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, read again while it answers one of the ``not_found`` codes (the resource was
    just created and is not visible yet), at most ``policy.attempts`` times.

    ``operation`` names the call for the error (e.g. ``"ACM DescribeCertificate"``); every other
    error is raised at once. Default policy: :data:`AFTER_CREATE` (read when called, so a test
    may shorten it).
    """
    policy = policy or AFTER_CREATE
    codes = set(not_found)
    waited = 0.0
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except ClientError as exc:
            if error_code(exc) not in codes or isinstance(exc, AwsCallError):
                raise
            if attempt == policy.attempts:
                message = exc.response.get("Error", {}).get("Message", "")
                raise AwsCallError(exc.response, exc.operation_name, (
                    f"AWS {operation} still answered {error_code(exc)} ({message}) {attempt} times over {waited:.1f} s "
                    f"after the resource was created. Fix: run the notebook again (AWS usually catches up within "
                    f"seconds); if it persists, check that nothing deleted the resource meanwhile")) from None
            pause = policy.delay(attempt)
            sleep(pause)
            waited += pause
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

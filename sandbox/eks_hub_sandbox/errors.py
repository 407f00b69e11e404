"""The sandbox's own error type (the cluster emulator's API errors are in ``kube/errors.py``)."""

from __future__ import annotations

from eks_hub_runbook.errors import RunbookError


class SandboxError(RunbookError):
    """A local sandbox service could not be started, reached or stopped."""

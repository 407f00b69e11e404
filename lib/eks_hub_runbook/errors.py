"""Every error type the library raises, each with a message a user can act on."""

from __future__ import annotations


class RunbookError(Exception):
    """Base class for errors the runbook reports to a user."""


class ParameterError(RunbookError, ValueError):
    """A parameter is invalid. Raised before any resource is created.

    The message always names the parameter and says how to fix it.
    """

    def __init__(self, parameter: str, problem: str, fix: str):
        self.parameter = parameter
        self.problem = problem
        self.fix = fix
        super().__init__(f"parameter '{parameter}': {problem}. Fix: {fix}")


class SandboxError(RunbookError):
    """A local sandbox service could not be started, reached or stopped."""


class TerraformError(RunbookError):
    """A Terraform command failed; the message carries the stage and the last error lines."""


class PlatformError(RunbookError):
    """Installing or checking the platform (helm releases, manifests, hub) failed."""


class HubError(RunbookError):
    """JupyterHub refused a login or a server failed to start."""


class SecretLeakError(RunbookError):
    """A record about to be written contains a known secret value."""

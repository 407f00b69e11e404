"""Every error type the library raises, each with a message a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .records.archive import Run


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

    @property
    def errors(self) -> list["ParameterError"]:
        """The single errors this one stands for (itself)."""
        return [self]

    def rows(self) -> list[dict[str, str]]:
        """One row per bad parameter, for a table: parameter, problem, fix."""
        return [{"parameter": e.parameter, "problem": e.problem, "fix": e.fix} for e in self.errors]


class ParameterErrors(ParameterError):
    """Several parameters are invalid: every one of them, each on its own line of the message."""

    def __init__(self, errors: list[ParameterError]):
        self._errors = [single for error in errors for single in error.errors]
        first = self._errors[0]
        self.parameter, self.problem, self.fix = first.parameter, first.problem, first.fix
        ValueError.__init__(self, f"{len(self._errors)} parameters are invalid:\n" + "\n".join(str(e) for e in self._errors))

    @property
    def errors(self) -> list[ParameterError]:
        return list(self._errors)

    @property
    def parameters(self) -> list[str]:
        return [e.parameter for e in self._errors]


def raise_all(errors: list[ParameterError]) -> None:
    """Raise nothing, the one error, or :class:`ParameterErrors` for several (duplicates dropped)."""
    unique: dict[str, ParameterError] = {}
    for error in (single for e in errors for single in e.errors):
        unique.setdefault(str(error), error)
    if len(unique) == 1:
        raise next(iter(unique.values()))
    if unique:
        raise ParameterErrors(list(unique.values()))


class TerraformError(RunbookError):
    """A Terraform command failed; the message carries the stage and the last error lines."""


class PlatformError(RunbookError):
    """Installing or checking the platform (helm releases, manifests, hub) failed."""


class HubError(RunbookError):
    """JupyterHub refused a login or a server failed to start."""


class SecretLeakError(RunbookError):
    """A record about to be written contains a known secret value."""


# -- 05_cleanup ----------------------------------------------------------------------------


class CleanupError(RunbookError):
    """A resource could not be deleted; the message names it and what holds it."""


# -- 00_prerequisites ----------------------------------------------------------------------


class PrerequisiteError(RunbookError):
    """One or more prerequisite checks failed; the table above says which and how to fix them."""


# -- run records (records/) ----------------------------------------------------------------


class SecretsFileError(RunbookError):
    """The secrets file is missing, unreadable by design (too open), or malformed."""



class DeploymentInUse(RunbookError):
    """Another run or notebook holds the deployment (``locks``); ``holder`` says who (None: unknown)."""

    def __init__(self, deployment: str, holder, message: str):
        self.deployment = deployment
        self.holder = holder
        super().__init__(message)


class RunInterrupted(KeyboardInterrupt):
    """The runner was asked to stop (Ctrl-C or SIGTERM); the record says where."""


class RunFailed(RunbookError):
    """A notebook of the run did not succeed. ``run`` holds the record."""

    def __init__(self, run: "Run"):
        from .records.model import Failure

        self.run = run
        failure = run.record.failure or Failure()
        where = failure.notebook or "?"
        if failure.cell_index is not None:
            count = failure.execution_count
            where += f", cell {failure.cell_index}" + (f" (In [{count}])" if count else "")
        what = failure.reason or f"{failure.ename or 'Error'}: {failure.evalue or ''}".strip()
        super().__init__(
            f"run {run.deployment}/{run.run_id} {run.status} at {where}: {what}\n"
            f"record: {run.dir}\n"
            f"fix the cause, then continue with: runbook run --resume --run {run.run_id}"
        )



class RunNotFoundError(RunbookError):
    """No run matches what was asked for."""


# -- AWS (aws/) ----------------------------------------------------------------------------


class CertificateError(RunbookError):
    """ACM refused the certificate, or a given certificate ARN cannot be used."""



class ClusterAccessError(RunbookError):
    """The EKS cluster cannot be described (missing, not ACTIVE, or AWS unreachable)."""



class IdentityError(RunbookError):
    """The AWS credentials are missing or rejected."""


class AwsError(RunbookError):
    """An AWS call still failed after its retries (throttling, unavailable) or a resource just
    created never became readable; the message names the service, the operation and the fix."""


# -- the browser walkthrough (browser/) ----------------------------------------------------


class BrowserError(HubError):
    """A step of the browser walkthrough failed.

    ``user`` and ``step`` say where; ``screenshot`` is the PNG of the page at the moment
    of failure (``None`` if the browser could not even take one).
    """

    def __init__(self, user: str, step: str, problem: str, screenshot: Path | None):
        self.user = user
        self.step = step
        self.problem = problem
        self.screenshot = screenshot
        where = f"; screenshot of the page: {screenshot}" if screenshot else ""
        super().__init__(f"browser walkthrough, {user}, step '{step}': {problem}{where}")


# -- the cluster (kube.py) -----------------------------------------------------------------


class KubeError(RunbookError):
    """A cluster query failed or a wait timed out; the message says what was expected."""


# -- notebook tables (notebook/) -----------------------------------------------------------


class ChecksFailed(RunbookError):
    """A table of checks has failing rows; the table above the error shows which."""


# -- blueprint.tfvars (blueprint.py) -------------------------------------------------------


class TfvarsError(ParameterError):
    """The tfvars file is not one the runbook can read."""

    def __init__(self, path: Path, line: int, problem: str):
        super().__init__(f"--tfvars {path}", f"line {line}: {problem}",
                         "write plain `name = value` lines (strings, numbers, true/false, lists of them)")

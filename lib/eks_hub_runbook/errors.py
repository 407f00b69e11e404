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

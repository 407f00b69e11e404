"""One validation of a notebook's parameters, shared by its validation cell and ``runbook run``.

Given the values a notebook will run with, it checks, and reports all at once
(:class:`~eks_hub_runbook.errors.ParameterErrors`):

- names the notebook does not declare (papermill only warns about them): the nearest
  parameter, or which runbook parameter a blueprint variable is;
- secrets passed as parameters (by name, or by value equal to a known secret);
- the notebook's options (``confirm``, ``timeout_minutes``...) and, where the notebook
  deletes things, that ``confirm`` is True;
- the deployment parameters, completed from what ``02_deploy`` recorded for notebooks that
  work on an existing deployment: there an empty ``target``, ``region`` or ``auth`` means
  the recorded one, and a given one must match it;
- that such a deployment exists here (this state folder holds 02_deploy's record of it),
  naming the deployments that do; a notebook that deletes (05_cleanup) also takes one whose
  record is gone but whose state folder is not (cleaned up already: a harmless no-op);
- that the profile a notebook starts is one the deployment offers.

The result says where every value came from (given, default, sandbox default, recorded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Iterable, Mapping

from .. import params as P, paths
from ..errors import ParameterError
from ..params import Problems

RECORDED = "parameters"  # the record 02_deploy glues: the deployment's parameters
RECORDED_BY = "02_deploy"
# Empty in the notebooks after 02_deploy: "the value 02_deploy recorded"; given, it must match.
FROM_RECORD = ("target", "region", "auth")


@dataclass
class Validated:
    """Validated parameters: the deployment's, the notebook's options, and each value's source."""

    params: P.DeploymentParameters
    options: SimpleNamespace
    sources: dict[str, str] = field(default_factory=dict)

    def rows(self, names: Iterable[str]) -> list[dict[str, str]]:
        """``parameter, value, source`` for ``names`` (deployment parameters and options)."""
        values = {**self.params.as_dict(), **vars(self.options)}
        rows = []
        for name in names:
            if name not in values:
                continue
            value = values[name]
            shown = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            rows.append({"parameter": name, "value": shown if shown != "" else "(empty)",
                         "source": self.sources.get(name, "default")})
        return rows


def secret_parameter(name: str, output_path: str | None = None) -> ParameterError:
    """The error for a secret that arrived as a notebook parameter (papermill has written it already)."""
    canonical = P.SECRET_BLUEPRINT_NAMES.get(name, name)
    env = P.SECRET_ENV.get(canonical, "RUNBOOK_OAUTH_CLIENT_SECRET" if "client" in name else "")
    where = ("standard output" if output_path == "-" else output_path) or "the output notebook papermill writes"
    delete = "discard that output" if output_path == "-" else f"delete {output_path}" if output_path else "delete that output notebook"
    how = f"${env}" if env else "the environment"
    return ParameterError(
        name, f"is a secret, and papermill has already written its value into {where} "
              "(the injected-parameters cell and the notebook's metadata)",
        f"{delete} and rotate the secret; pass it as {how} or with `runbook run --secrets-file FILE` (mode 0600), never with -p",
    )


def confirm_required(action: str) -> ParameterError:
    """The error for a destructive notebook run without ``confirm``."""
    return ParameterError("confirm", f"{action} and confirm is False",
                          "re-run with -p confirm True once you are sure (or tick confirm in the form)")


def convert_option(name: str, value: Any) -> Any:
    """One notebook option converted to its type and checked (range, choices)."""
    from .forms import CHOICES, OPTIONS

    option = OPTIONS[name]
    if option.kind is bool:
        return P._bool(name, value)
    if option.kind is int:
        try:
            number = int(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None:
            raise ParameterError(name, f"{value!r} is not a whole number", "pass e.g. -p " + name + " 30")
        if option.minimum is not None and number < option.minimum or option.maximum is not None and number > option.maximum:
            raise ParameterError(name, f"{number} is out of range", f"use a value from {option.minimum} to {option.maximum}")
        return number
    text = P._text(name, value)
    if name in CHOICES and text not in CHOICES[name]:  # an option with choices (the profile) needs one
        problem = "is empty" if not text else f"{text!r} is not one of {', '.join(CHOICES[name])}"
        raise ParameterError(name, problem, f"use one of: {', '.join(CHOICES[name])}")
    return text


def deployments_here() -> list[str]:
    """The deployments 02_deploy recorded in this state folder (``paths.state_dir()``), sorted."""
    from .. import records

    folder = paths.state_dir() / "deployments"
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return [name for name in names if _recorded(lambda: records.recall(name, RECORDED))]


def _recorded(read) -> bool:
    try:
        return bool(read())
    except (OSError, ValueError):  # an unreadable record is no record
        return False


def left_here(deployment: str) -> bool:
    """True if this state folder holds anything of ``deployment`` besides lock files: records
    (01_certificate's, 02_deploy's, or the emptied ones 05_cleanup leaves), Terraform's working
    folder, a generated certificate. False for a name never used here (a run's lock file alone
    does not count)."""
    folder = paths.deployment_dir(deployment, create=False)
    return folder.is_dir() and any(not entry.name.startswith(".") and not entry.name.endswith(".lock")
                                   for entry in folder.iterdir())


def missing_deployment(deployment: str, deletes: bool = False) -> ParameterError | None:
    """The error for a notebook after 02_deploy run on a deployment 02_deploy did not record here,
    naming the deployments it did record; None when it is fine. ``deletes`` (05_cleanup): a
    deployment whose record is gone but whose state folder remains (cleaned up already, or 02_deploy
    stopped before recording it) is fine: the notebook deletes what is left, maybe nothing."""
    from .. import records

    if _recorded(lambda: records.recall(deployment, RECORDED)):
        return None
    if deletes and left_here(deployment):
        return None
    here = deployments_here()
    listed = ", ".join(here) if here else f"none: run {RECORDED_BY} first"
    if left_here(deployment):
        problem = (f"{RECORDED_BY} has no record of deployment {deployment!r} here (it did not finish, or 05_cleanup "
                   f"removed it); deployments here: {listed}")
        fix = f"run {RECORDED_BY} -p deployment {deployment} (runbook run --resume continues a stopped run)"
    else:
        problem = f"no deployment named {deployment!r}; deployments here: {listed}"
        fix = f"run {RECORDED_BY} -p deployment {deployment} first"
    if here:
        fix += f", or pass -p deployment {here[0]}" if len(here) == 1 else f", or pass -p deployment with one of: {', '.join(here)}"
    fix += f" (deployments live in the state folder {paths.state_dir()}; RUNBOOK_STATE_DIR chooses another)"
    return ParameterError("deployment", problem, fix)


def offered_profile(profile: str, params: P.DeploymentParameters) -> None:
    """``profile`` (a notebook's option) must be one the deployment offers (its ``profiles``; empty: all)."""
    if profile and params.profiles and profile not in params.profiles:
        raise ParameterError("profile", f"deployment {params.deployment!r} does not offer {profile!r} "
                                        f"(its profiles: {', '.join(params.profiles)})",
                             f"use one of: {', '.join(params.profiles)}, or re-run {RECORDED_BY} with it in -p profiles")


def is_secret(name: str, value: Any, declared: bool = False) -> bool:
    """A value equal to a secret this process knows, or (for a name the notebook does not declare)
    a name that carries a secret. A declared name is the notebook's own (``private_key_file`` is
    a path): only its value counts."""
    from ..records.inputs import is_secret_name
    from ..records.redact import contains_secret

    named = not declared and (is_secret_name(name) or name in P.SECRET_BLUEPRINT_NAMES)
    return named or (isinstance(value, str) and contains_secret(value))


def validate(
    values: Mapping[str, Any],
    *,
    declared: Iterable[str],
    given: Iterable[str] = (),
    unknown: Iterable[str] = (),
    record: Mapping[str, Any] | None = None,
    from_record: bool = False,
    confirm_action: str | None = None,
    where: str = "this notebook",
    output_path: str | None = None,
) -> Validated:
    """Check every parameter of one notebook run; raise all the problems at once.

    ``values``: name -> value as the notebook will see it; ``declared``: the names its
    parameters cell defines; ``given``: those set from outside (``-p``, the form);
    ``unknown``: names given that it does not declare. ``from_record``: the notebook works on
    an existing deployment and takes what it does not set from ``record`` (02_deploy's).
    ``confirm_action`` (e.g. "05_cleanup deletes the deployment"): ``confirm`` must be True.
    With ``from_record``, a ``record`` that is empty means the deployment was not deployed here
    (:func:`missing_deployment`; a notebook with a ``confirm_action`` deletes, and takes what a
    cleanup left); ``record=None``: not known yet (an earlier notebook of the run records it).
    """
    from .forms import OPTIONS

    declared, given, values = list(declared), set(given), dict(values)
    problems = Problems()
    for name in unknown:
        if is_secret(name, values.get(name)):
            problems.errors.append(secret_parameter(name, output_path))
        else:
            problems.errors.append(P.unknown_parameter(name, declared, f"a parameter of {where}"))
        values.pop(name, None)
    for name in sorted(given - set(unknown)):
        if is_secret(name, values.get(name), declared=name in declared):
            problems.errors.append(secret_parameter(name, output_path))
            values.pop(name)  # checked no further: no other message may echo it

    options = SimpleNamespace(**{name: problems.check(convert_option, name, values[name]) for name in OPTIONS if name in values})
    if confirm_action and getattr(options, "confirm", None) is False:
        problems.errors.append(confirm_required(confirm_action))

    deployment_values = {name: values[name] for name in P.parameter_names() if name in values}
    sources = {name: "given" for name in deployment_values if name in given}
    sources.update({name: "given" for name in vars(options) if name in given})
    if from_record:
        if record is not None and not record:
            deployment = Problems().check(P.deployment_name, deployment_values.get("deployment", P.DeploymentParameters.deployment))
            missing = missing_deployment(deployment, deletes=confirm_action is not None) if deployment else None  # a bad name: resolve says so
            if missing is not None:
                problems.errors.append(missing)
        deployment_values = _completed(deployment_values, record or {}, problems, sources)
    resolved = problems.check(P.resolve, **deployment_values)
    if resolved is not None and getattr(options, "profile", None):
        problems.check(offered_profile, options.profile, resolved)
    problems.raise_all()
    sources.update({name: "sandbox default" for name in resolved.defaulted})
    return Validated(resolved, options, sources)


def _completed(values: dict[str, Any], record: Mapping[str, Any], problems: Problems, sources: dict[str, str]) -> dict[str, Any]:
    """``values`` with what the notebook leaves empty taken from 02_deploy's ``record``."""
    deployment = values.get("deployment", P.DeploymentParameters.deployment)
    for name in FROM_RECORD:
        if name not in values:
            continue
        given = P._text(name, values[name]).lower() if not isinstance(values[name], bool) else values[name]
        if given == "":
            del values[name]
        elif record.get(name) and given != record[name]:
            problems.add(name, f"deployment {deployment!r} was deployed with {name} {record[name]!r} "
                               f"(recorded by {RECORDED_BY}), not {given!r}",
                         f"pass -p {name} {record[name]} or leave it empty, or use another -p deployment")
    known = set(P.parameter_names())
    filled = {name: value for name, value in record.items() if name in known and name not in values}
    sources.update({name: f"recorded by {RECORDED_BY}" for name in filled})
    return {**filled, **values}

"""Parameter forms for the runbooks: ipywidgets built from the parameters cell.

A runbook's ``parameters`` cell holds the defaults (papermill overrides them).
``parameter_form(globals())`` collects the runbook parameters found there; when
``interactive`` is true it shows a form (dropdowns for choices, text with live
validation for domains, a password field for secrets, checkboxes, numbers) and
otherwise shows nothing. The next cell calls ``resolve_from(form)``, which reads the
widgets (or the plain values) and validates everything (:mod:`.validation`): names
papermill injected that the notebook does not take, secrets passed as parameters, the
options and the deployment parameters, every problem at once (a table in the notebook
and one ``parameter 'x': ... Fix: ...`` line each), before anything is created.

In a workshop (``runbook lab``) the kernels carry ``RUNBOOK_FORMS=1``, so every notebook
shows its form without editing ``interactive``; a papermill ``-p interactive False`` still
wins. A form re-run in the same kernel ("Run All" after changing a field) keeps what was
typed into it, unless the parameters cell itself changed that value since.

Nothing here ever calls ``input()``: headless runs never block.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Mapping

from .. import params as P, targets
from ..aws.quotas import PROFILE_NODES
from ..errors import ParameterError
from ..records.redact import register_secret
from . import injection
from .validation import FROM_RECORD, RECORDED, RECORDED_BY, Validated, convert_option, validate


@dataclass(frozen=True)
class Option:
    """A notebook parameter that is not a deployment parameter (e.g. ``confirm``)."""

    kind: type
    help: str
    minimum: int | None = None
    maximum: int | None = None


# Notebook-specific parameters: name -> type and help. Deployment parameters are in params.py.
OPTIONS: dict[str, Option] = {
    "interactive": Option(bool, "show this form (True) or take the parameters cell as is (False)"),
    "confirm": Option(bool, "must be True for steps that delete or replace resources"),
    "certificate_file": Option(str, "existing certificate (PEM); empty: generate a self-signed one"),
    "private_key_file": Option(str, "its private key (PEM, unencrypted)"),
    "chain_file": Option(str, "intermediate certificates (PEM), optional"),
    "wildcard": Option(bool, "add the wildcard certificate_domain as a SAN of a generated certificate"),
    "validity_days": Option(int, "validity of a generated certificate, in days", 1, 825),
    "route53_zone_id": Option(str, "Route 53 hosted zone to create the hub's CNAME in (empty: print it only)"),
    "profile": Option(str, "profile slug to start for the GPU sharing demo"),
    "keep_servers": Option(bool, "leave the users' servers running at the end"),
    "keep_sandbox": Option(bool, "leave the sandbox services running after cleanup"),
    "delete_certificate": Option(bool, "also delete the ACM certificate imported for this deployment"),
    "timeout_minutes": Option(int, "give up waiting after this many minutes", 1, 240),
    "plan_only": Option(bool, "stop after the plan: create nothing, show what the apply would create and cost"),
    "mig": Option(bool, "also run the MIG section: two users on slices of one A100 (AWS: a p4d.24xlarge)"),
    "wait_for_cull": Option(bool, "after the demo, leave a server idle and watch the idle culler stop it"),
    "load_users": Option(int, "after the demo, this many users start the profile at once (0: no load check)", 0, 100),
}

# Short help for the deployment parameters (widget tooltips).
HELP: dict[str, str] = {
    "target": "sandbox (local, free) or aws (real account, billable)",
    "deployment": "name of the deployment; runs with the same name share state",
    "region": "AWS region",
    "auth": "login method: dummy (type 1) | cognito (type 2) | oauth (type 3)",
    "domain": "the hub's DNS name (types 2 and 3)",
    "certificate_domain": "name the certificate covers; empty: *.<parent of domain>",
    "certificate_arn": "reuse this ACM certificate; empty: the one 01_certificate made",
    "oauth_domain": "host of the OIDC provider (type 3)",
    "oauth_realm": "Keycloak realm (type 3)",
    "oauth_client_id": "OAuth client id registered for the hub (type 3)",
    "oauth_username_claim": "claim that becomes the JupyterHub user name",
    "allowed_users": "users allowed to log in, comma-separated",
    "allow_all": "allow every user the login provider accepts",
    "admin_users": "hub admins, comma-separated",
    "kubernetes_version": "EKS Kubernetes version",
    "public_access_cidrs": "CIDRs allowed to reach the EKS API, comma-separated",
    "nat_gateway_mode": "single NAT gateway or one per AZ",
    "enable_monitoring": "install kube-prometheus-stack",
    "enable_kubecost": "install kubecost",
    "gpu_spot": "GPU pools may use spot instances (cheaper, can be interrupted)",
    "cull_timeout_minutes": "stop servers idle this many minutes (0: never)",
    "profiles": "profile slugs the hub offers, comma-separated; empty: all",
    **{name: option.help for name, option in OPTIONS.items()},
}

CHOICES: dict[str, tuple[str, ...]] = {
    "target": targets.names(),
    "auth": P.AUTH_METHODS,
    "region": P.REGIONS,
    "kubernetes_version": P.KUBERNETES_VERSIONS,
    "nat_gateway_mode": P.NAT_MODES,
    "profile": tuple(PROFILE_NODES),
}
HOSTNAMES = ("domain", "certificate_domain", "oauth_domain")
FORMS_ENV = "RUNBOOK_FORMS"  # "1": show the forms by default (the workshop's kernels, see ``lab``)

# What was typed into this kernel's last form: name -> (the cell's default then, the widget's value).
_typed: dict[str, tuple[Any, Any]] = {}


def forms_by_default() -> bool:
    """True in kernels started for a workshop (``RUNBOOK_FORMS=1``)."""
    return os.environ.get(FORMS_ENV, "").strip().lower() in ("1", "true", "yes")


def runbook_parameter_names() -> list[str]:
    """Every name a runbook parameters cell may define."""
    return [*P.parameter_names(), *OPTIONS]


def _pick(namespace: Mapping[str, Any]) -> dict[str, Any]:
    return {name: namespace[name] for name in runbook_parameter_names() if name in namespace}


class ParameterForm:
    """The runbook parameters of a notebook, optionally as an ipywidgets form.

    ``values`` are the parameters cell's values; when interactive, ``current()``
    reads the widgets instead. ``secrets`` names secret parameters that get a
    password field (their values go to the environment, never into a record).
    """

    def __init__(self, values: Mapping[str, Any], interactive: bool = False, secrets: tuple[str, ...] = (),
                 injected: injection.Injection | None = None, injected_values: Mapping[str, Any] | None = None):
        self.values = dict(values)
        self.interactive = interactive
        self.secrets = tuple(secrets)
        self.injection = injected or injection.Injection()
        self.injected_values = dict(injected_values or {})  # values of injected names the notebook does not take
        self.validated: Validated | None = None
        self.widgets: dict[str, Any] = {}
        self.feedback: dict[str, Any] = {}
        self.status = None
        self.box = None
        if interactive:
            self._build()

    # -- widgets

    def _widget(self, name: str, value: Any):
        import ipywidgets as w

        style = {"description_width": "170px"}
        layout = w.Layout(width="560px")
        tooltip = HELP.get(name, "")
        if name in CHOICES:
            options: list = list(CHOICES[name])
            if value == "" and name in FROM_RECORD:
                options.insert(0, (f"(as {RECORDED_BY} recorded)", ""))
            elif value not in options and value not in ("", None):
                options.append(value)  # keep an out-of-list default visible; resolve will name the problem
            options = [o if isinstance(o, tuple) else (str(o), o) for o in options]  # ipywidgets: pairs or none
            values = [o[1] for o in options]
            return w.Dropdown(options=options, value=value if value in values else values[0], description=name,
                              description_tooltip=tooltip, style=style, layout=layout)
        if isinstance(value, bool):
            return w.Checkbox(value=value, description=name, description_tooltip=tooltip, indent=False, style=style)
        if isinstance(value, int):
            return w.IntText(value=value, description=name, description_tooltip=tooltip, style=style, layout=layout)
        if isinstance(value, float):  # e.g. cull_timeout_minutes: a text field would hand back "60.0", a change
            return w.FloatText(value=value, description=name, description_tooltip=tooltip, style=style, layout=layout)
        if isinstance(value, (list, tuple)):
            return w.Text(value=", ".join(map(str, value)), description=name, description_tooltip=tooltip,
                          placeholder="comma-separated", style=style, layout=layout)
        return w.Text(value="" if value is None else str(value), description=name, description_tooltip=tooltip,
                      placeholder=tooltip, style=style, layout=layout)

    def _build(self) -> None:
        import ipywidgets as w

        rows = []
        for name, value in self.values.items():
            if name == "interactive":
                continue
            widget = self._widget(name, value)
            default, typed = _typed.get(name, (None, None))
            if name in _typed and default == _widget_value(value) and typed != widget.value:
                try:
                    widget.value = typed  # "Run All" again keeps what the presenter chose
                except Exception:  # noqa: BLE001 - a value the widget no longer offers: the cell's stays
                    pass
            self.widgets[name] = widget
            self.feedback[name] = w.HTML()
            rows.append(w.HBox([widget, self.feedback[name]]))
        for name in self.secrets:
            widget = w.Password(value="", description=name, placeholder="not shown, not recorded",
                                description_tooltip=f"read from ${P.SECRET_ENV.get(name, '')} if left empty",
                                style={"description_width": "170px"}, layout=w.Layout(width="560px"))
            self.widgets[name] = widget
            rows.append(widget)
        self.status = w.HTML()
        for widget in self.widgets.values():
            widget.observe(lambda _change: self._validate(), names="value")
        self._validate()
        self.box = w.VBox([w.HTML("<b>Runbook parameters</b> (the next cell reads this form)"), *rows, self.status])

    def _validate(self) -> None:
        """Live feedback: each bad value's problem beside its field, the overall result below."""
        current = self.current()
        for name, widget in self.widgets.items():
            if name not in self.secrets:
                _typed[name] = (_widget_value(self.values.get(name)), widget.value)
        problems: dict[str, str] = {}
        for name in HOSTNAMES:
            text = str(current.get(name) or "")
            if name in self.feedback and text:
                try:
                    P._hostname(name, text, wildcard=(name == "certificate_domain"))
                except ParameterError as exc:
                    problems[name] = exc.problem
        error = None
        given = {name: current[name] for name in P.parameter_names() if name in current}
        if any(given.get(name) == "" for name in FROM_RECORD):  # a notebook after 02: check against its record
            recorded = recorded_parameters(str(current.get("deployment", "")))
            given = {**{k: v for k, v in recorded.items() if k in P.parameter_names() and k not in self.values}, **given}
            for name in FROM_RECORD:  # "" means "as 02_deploy recorded" (nothing recorded yet: the defaults)
                if given.get(name) == "":
                    if name in recorded:
                        given[name] = recorded[name]
                    else:
                        given.pop(name)
        try:
            P.resolve(**given)
        except ParameterError as exc:
            error = exc
            for single in exc.errors:
                problems.setdefault(single.parameter, f"{single.problem}. Fix: {single.fix}")
        if "confirm" in self.widgets and not current.get("confirm"):
            problems["confirm"] = "not ticked: this notebook stops before it deletes or replaces anything"
        for name, label in self.feedback.items():
            if name in problems:
                label.value = f"<span class='runbook-problem' style='color:#b00'>&#10008; {_escape(problems[name])}</span>"
            elif name in HOSTNAMES and current.get(name):
                label.value = "<span style='color:green'>&#10004;</span>"
            else:
                label.value = ""
        if self.status is not None:
            if error is None:
                self.status.value = "<span class='runbook-valid' style='color:green'>&#10004; parameters are valid</span>"
            else:
                self.status.value = f"<span class='runbook-invalid' style='color:#b00'>&#10008; {_escape(str(error))}</span>"

    # -- values

    def current(self) -> dict[str, Any]:
        """The parameter values now: the widgets' when interactive, else the cell's."""
        result = dict(self.values)
        for name, widget in self.widgets.items():
            if name in self.secrets:
                continue
            result[name] = widget.value
        return result

    def given(self) -> set[str]:
        """Names set from outside the parameters cell: injected by papermill, or changed in the form."""
        changed = {name for name, widget in self.widgets.items() if name not in self.secrets
                   and name in self.values and widget.value != _widget_value(self.values[name])}
        return set(self.injection.injected) | changed

    def secret_values(self) -> dict[str, str]:
        """Secrets typed into password fields (empty ones left out)."""
        return {name: self.widgets[name].value for name in self.secrets if name in self.widgets and self.widgets[name].value}

    def _ipython_display_(self) -> None:
        if self.box is not None:
            from IPython.display import display

            display(self.box)

    def __repr__(self) -> str:  # never shows secret values
        return f"ParameterForm(interactive={self.interactive}, parameters={sorted(self.current())})"


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)


def parameter_form(namespace: Mapping[str, Any], secrets: tuple[str, ...] | list[str] = ()) -> ParameterForm:
    """Collect the runbook parameters from a notebook's ``globals()``; show a form if interactive.

    ``interactive`` (default False) comes from the namespace too, or from ``RUNBOOK_FORMS=1``
    (a workshop's kernels) when papermill did not inject it. Headless runs get a form object
    with no widgets, so the same next cell works either way.
    """
    from .. import kernel

    executed = kernel.executed_cells()
    injected = injection.read(executed if executed is not None else namespace.get("In") or [])
    values = _pick(namespace)
    if injected.declared:  # what the parameters cell declares, not every runbook name in globals()
        values = {name: value for name, value in values.items() if name in injected.declared}
    unknown = {name: namespace.get(name) for name in injected.unknown()}
    if "interactive" in injected.injected:  # papermill -p interactive ...: the caller's word wins
        interactive = convert_option("interactive", values["interactive"])
    else:
        interactive = convert_option("interactive", values.get("interactive", False)) or forms_by_default()
    form = ParameterForm(values, interactive=interactive, secrets=tuple(secrets), injected=injected, injected_values=unknown)
    if interactive:
        from IPython.display import display

        _short_parameter_errors()
        display(form)
    return form


def _short_parameter_errors() -> None:
    """With a form on screen a refused parameter (e.g. ``confirm`` not ticked yet) is a message
    beside the table, not a traceback: the cell still fails, so "Run All" stops there."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return

    def short(shell, etype, value, tb, tb_offset=None):
        lines = [f"\x1b[31m{etype.__name__}\x1b[0m: {value}"]
        shell._showtraceback(etype, value, lines)  # IPython shows what a custom handler shows, nothing more
        return lines

    shell.set_custom_exc((ParameterError,), short)


def _values(source: ParameterForm | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(source, ParameterForm):
        return source.current()
    return _pick(source)


def _widget_value(value: Any) -> Any:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def resolve_from(source: ParameterForm | Mapping[str, Any], recorded: bool = False,
                 confirm: str | None = None, lock: bool = True) -> P.DeploymentParameters:
    """Validate a form's (or a ``globals()`` mapping's) parameters and return the deployment's.

    Every problem is reported at once, as a table in the notebook and one line each in the
    error (:mod:`.validation`). With ``recorded=True`` (notebooks after 02_deploy) what the
    notebook does not set comes from what 02_deploy recorded for the deployment, so ``auth``,
    ``domain`` and the rest need not be repeated; a given ``target``, ``region`` or ``auth``
    that contradicts the record is an error naming both. ``confirm`` (what the notebook
    destroys, e.g. "deletes the deployment") makes ``confirm = True`` required.

    Secrets typed into the form's password fields are put into their environment
    variables for this kernel (and registered for redaction), never returned.

    In a notebook's kernel, valid parameters then take the deployment (:mod:`..locks`) until the
    notebook ends (``nb.archive``, a failing cell, the kernel's death): another run or notebook on
    it is refused at once (:class:`~eks_hub_runbook.errors.DeploymentInUse`), as this one is when
    another holds it. ``lock=False`` for notebooks that only read (00_prerequisites, 03_verify).
    """
    form = source if isinstance(source, ParameterForm) else None
    if form is not None:
        for name, value in form.secret_values().items():
            register_secret(value)
            os.environ[P.SECRET_ENV[name]] = value
    values = _values(source)
    declared = list(form.values) if form is not None else list(values)
    deployment = P._text("deployment", values.get("deployment", P.DeploymentParameters.deployment)).lower()
    try:
        validated = validate(
            {**values, **(form.injected_values if form is not None else {})},
            declared=declared,
            given=form.given() if form is not None else (),
            unknown=list(form.injected_values) if form is not None else (),
            record=recorded_parameters(deployment) if recorded else None,
            from_record=recorded,
            confirm_action=f"this notebook {confirm}" if confirm else None,
            output_path=injection.papermill_output_path() if form is not None and form.injection.found else None,
        )
    except ParameterError as exc:
        _show_problems(exc)
        raise
    if lock:
        _take_deployment(validated.params.deployment)
    if form is not None:
        form.validated = validated
    return validated.params


def _take_deployment(deployment: str) -> None:
    """In a notebook's kernel: hold ``deployment`` until the notebook ends (say so when a killed
    run's lock was taken over). Outside a kernel (library calls, tests) nothing is held."""
    from IPython import get_ipython

    if get_ipython() is None:
        return
    from .. import locks

    lease = locks.enter_notebook(deployment)
    if lease.note():
        from .display import note

        note(lease.note())


def _show_problems(error: ParameterError) -> None:
    """The bad parameters as a table above the error (in a notebook)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        from .display import table

        display(table(error.rows(), index="parameter"))


def parameter_rows(form: ParameterForm) -> list[dict[str, str]]:
    """The notebook's parameters as it runs with them: ``parameter, value, source`` (given, default,
    sandbox default, recorded by 02_deploy), after :func:`resolve_from`; plus the values the sandbox
    filled in. Secrets are never among them."""
    if form.validated is None:
        raise RuntimeError("call resolve_from(form) first")
    names = [name for name in form.values if name != "interactive"]
    names += [name for name, source in form.validated.sources.items() if source == "sandbox default" and name not in names]
    return form.validated.rows(names)


def recorded_parameters(deployment: str) -> dict[str, Any]:
    """The parameters 02_deploy recorded for ``deployment`` (empty if it never ran)."""
    from ..records import recall

    try:
        return dict(recall(deployment, RECORDED) or {})
    except (OSError, ValueError):
        return {}


def options_from(source: ParameterForm | Mapping[str, Any]) -> SimpleNamespace:
    """The notebook-specific parameters (``confirm``, ``keep_servers``...), converted and checked.

    Returned as a namespace (``options.confirm``) holding only the options the
    notebook defines (the ones :func:`resolve_from` checked, when it ran).
    """
    if isinstance(source, ParameterForm) and source.validated is not None:
        return source.validated.options
    values = _values(source)
    return SimpleNamespace(**{name: convert_option(name, values[name]) for name in OPTIONS if name in values})

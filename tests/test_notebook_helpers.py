"""Notebook helpers: parameter forms (headless and widgets), tables, progress."""

from __future__ import annotations

import pandas as pd
import pytest

from eks_hub_runbook import notebook as nb
from eks_hub_runbook.errors import ParameterError, ParameterErrors
from eks_hub_runbook.params import DeploymentParameters


def cell_globals(**overrides):
    values = {"target": "aws", "deployment": "jupyterhub-on-eks", "region": "us-west-2", "auth": "dummy",
              "domain": "", "interactive": False, "confirm": False, "keep_servers": False, "timeout_minutes": 30,
              "allowed_users": ["user-1", "user-2"], "__name__": "__main__", "nb": nb, "In": []}
    values.update(overrides)
    return values


def test_headless_form_has_no_widgets_and_resolves():
    form = nb.parameter_form(cell_globals())
    assert form.widgets == {} and not form.interactive
    params = nb.resolve_from(form)
    assert isinstance(params, DeploymentParameters) and params.auth == "dummy"
    assert nb.resolve_from(cell_globals()) == params


def test_resolve_from_ignores_other_globals_and_names_bad_parameter():
    with pytest.raises(ParameterError, match="parameter 'auth'"):
        nb.resolve_from(cell_globals(auth="github"))
    with pytest.raises(ParameterError, match="parameter 'domain'"):
        nb.resolve_from(cell_globals(auth="cognito", target="aws"))


def test_options_are_converted_and_checked():
    options = nb.options_from(cell_globals(confirm="true", timeout_minutes="15"))
    assert options.confirm is True and options.timeout_minutes == 15 and options.keep_servers is False
    assert not hasattr(options, "certificate_file")
    with pytest.raises(ParameterError, match="timeout_minutes.*out of range"):
        nb.options_from(cell_globals(timeout_minutes=0))
    with pytest.raises(ParameterError, match="parameter 'profile'"):
        nb.options_from(cell_globals(profile="no-such-profile"))
    with pytest.raises(ParameterError, match="parameter 'confirm': this notebook deletes the deployment and confirm is False.*-p confirm True"):
        nb.resolve_from(nb.parameter_form(cell_globals()), confirm="deletes the deployment")
    assert nb.resolve_from(nb.parameter_form(cell_globals(confirm=True)), confirm="deletes the deployment").auth == "dummy"


def test_interactive_form_builds_widgets_with_the_defaults():
    import ipywidgets as w

    values = cell_globals(interactive=True, auth="cognito", domain="hub.example.com")
    form = nb.parameter_form(values, secrets=["oauth_client_secret"])
    assert isinstance(form.widgets["target"], w.Dropdown)
    assert isinstance(form.widgets["auth"], w.Dropdown) and form.widgets["auth"].value == "cognito"
    assert isinstance(form.widgets["region"], w.Dropdown)
    assert isinstance(form.widgets["confirm"], w.Checkbox)
    assert isinstance(form.widgets["timeout_minutes"], w.IntText)
    assert isinstance(form.widgets["oauth_client_secret"], w.Password)
    assert form.widgets["allowed_users"].value == "user-1, user-2"
    # the form resolves to the same parameters as the cell it was built from
    assert nb.resolve_from(form) == nb.resolve_from({**values, "interactive": False})
    assert "valid" in form.status.value


def test_interactive_feedback_and_secret_never_echoed(monkeypatch):
    monkeypatch.delenv("RUNBOOK_OAUTH_CLIENT_SECRET", raising=False)
    form = nb.parameter_form(cell_globals(interactive=True, auth="cognito", domain="hub.example.com"),
                             secrets=["oauth_client_secret"])
    form.widgets["domain"].value = "not a domain"
    assert "not a valid DNS name" in form.feedback["domain"].value
    assert "parameter 'domain'" in form.status.value
    with pytest.raises(ParameterError, match="parameter 'domain'"):
        nb.resolve_from(form)
    form.widgets["domain"].value = "hub.example.org"
    form.widgets["oauth_client_secret"].value = "typed-secret-123"
    assert "typed-secret-123" not in repr(form)
    nb.resolve_from(form)
    import os

    assert os.environ["RUNBOOK_OAUTH_CLIENT_SECRET"] == "typed-secret-123"
    from eks_hub_runbook.records.redact import redact

    assert "typed-secret-123" not in redact("the secret is typed-secret-123")


def test_table_marks_status_and_indexes():
    frame = nb.table([{"check": "a", "status": "pass"}, {"check": "b", "status": "fail"}], index="check")
    assert list(frame["status"]) == ["✔ pass", "✘ fail"]
    assert frame.index.name == "check"
    plain = nb.table([{"x": 1}, {"x": 2}])
    assert list(plain.index) == [1, 2]
    empty = nb.table([], columns=["resource", "id"])
    assert isinstance(empty, pd.DataFrame) and empty.empty and list(empty.columns) == ["resource", "id"]
    assert nb.failures(frame) == [{"check": "b", "status": "✘ fail"}]
    with pytest.raises(nb.ChecksFailed, match="verify: 1 check.*b"):
        nb.require_pass(frame, "verify")


def test_progress_final_rendering_has_no_times():
    progress = nb.Progress("apply", ["network", "cluster"])
    with progress:
        progress("network", "running", "aws_vpc.this")
        progress("network", "done")
        progress("cluster", "running", "aws_eks_cluster.this")
    text = repr(progress)
    assert text.splitlines()[0] == "apply: 2 of 2 steps done"
    assert "aws_eks_cluster" not in text and "s)" not in text
    assert [r["state"] for r in progress.rows()] == ["done", "done"]
    assert all(isinstance(r["seconds"], float) for r in progress.rows())
    failing = nb.Progress("apply", ["network"])
    with pytest.raises(RuntimeError):
        with failing:
            failing("network", "running")
            raise RuntimeError("boom")
    assert failing.failed and "✘ network  (boom)" in repr(failing)


def test_a_wait_with_nothing_to_wait_for_ends_full():
    progress = nb.Progress("starting MIG servers", [])
    assert repr(progress) == "starting MIG servers: starting" and "value='0' max='1'" in progress._repr_html_()
    with progress:
        pass
    assert repr(progress) == "starting MIG servers: nothing to do"
    assert "value='1' max='1'" in progress._repr_html_()


PARAMETERS_CELL = 'target: str = "sandbox"  # where\ndeployment: str = "jupyterhub-on-eks"  # name\nauth: str = "dummy"  # login\ninteractive: bool = False  # form'


def papermill_globals(injected: str, **values):
    """A kernel's globals after papermill ran the parameters cell and its injected cell."""
    history = ["", PARAMETERS_CELL, "# Parameters\n" + injected, "form = nb.parameter_form(globals())"]
    return {**cell_globals(**values), "In": history}


def test_injected_names_the_notebook_does_not_declare_are_refused_all_at_once():
    namespace = papermill_globals('jupyterhub_domain = "hub.example.com"\ndeploymnet = "hub"\ndomain = "x.example.com"\n',
                                  jupyterhub_domain="hub.example.com", deploymnet="hub", domain="x.example.com")
    form = nb.parameter_form(namespace)
    assert "domain" not in form.values, "a runbook name this notebook does not declare is not taken from globals()"
    with pytest.raises(ParameterErrors) as error:
        nb.resolve_from(form)
    by_name = {e.parameter: e for e in error.value.errors}
    assert set(by_name) == {"jupyterhub_domain", "deploymnet", "domain"}
    assert "`domain`" in by_name["jupyterhub_domain"].problem and "-p domain" in by_name["jupyterhub_domain"].fix
    assert by_name["deploymnet"].fix == "did you mean `deployment`?"
    assert by_name["domain"].problem == "is not a parameter of this notebook"


def test_a_secret_injected_as_a_parameter_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    form = nb.parameter_form(papermill_globals('oauth_jupyter_client_secret = "s3cret-abcdef"\n',
                                               oauth_jupyter_client_secret="s3cret-abcdef"))
    with pytest.raises(ParameterError) as error:
        nb.resolve_from(form)
    assert error.value.parameter == "oauth_jupyter_client_secret"
    assert "papermill has already written its value" in error.value.problem
    assert "rotate the secret" in error.value.fix and "$RUNBOOK_OAUTH_CLIENT_SECRET" in error.value.fix
    assert "--secrets-file" in error.value.fix
    assert "s3cret-abcdef" not in str(error.value)


def test_a_declared_parameter_whose_value_is_a_known_secret_is_refused(monkeypatch):
    from eks_hub_runbook.records.redact import register_secret

    register_secret("a-registered-secret-value", share=False)
    form = nb.parameter_form(papermill_globals('auth = "a-registered-secret-value"\n', auth="a-registered-secret-value"))
    with pytest.raises(ParameterError) as error:
        nb.resolve_from(form)
    assert [e.parameter for e in error.value.errors][0] == "auth" and "is a secret" in str(error.value)
    assert "a-registered-secret-value" not in str(error.value)


@pytest.mark.sandbox
def test_parameter_rows_say_where_each_value_came_from():
    form = nb.parameter_form(papermill_globals('auth = "cognito"\n', auth="cognito", target="sandbox"))
    params = nb.resolve_from(form)
    rows = {r["parameter"]: r for r in nb.parameter_rows(form)}
    assert rows["auth"] == {"parameter": "auth", "value": "cognito", "source": "given"}
    assert rows["target"]["source"] == "default"
    assert rows["domain"] == {"parameter": "domain", "value": "hub.example.com", "source": "sandbox default"}
    assert params.domain == "hub.example.com"


def test_recorded_notebooks_take_empty_values_from_the_record_and_refuse_a_contradiction(monkeypatch):
    from eks_hub_runbook.notebook import forms

    record = {"target": "aws", "deployment": "jupyterhub-on-eks", "region": "eu-west-1", "auth": "cognito",
              "domain": "hub.example.org", "allowed_users": ["user-1@example.org"]}
    monkeypatch.setattr(forms, "recorded_parameters", lambda deployment: dict(record))
    namespace = cell_globals(target="", region="", auth="")
    del namespace["domain"]  # 03_verify and the rest do not declare it
    form = nb.parameter_form(namespace)
    params = nb.resolve_from(form, recorded=True)
    assert (params.region, params.auth, params.domain) == ("eu-west-1", "cognito", "hub.example.org")
    sources = {r["parameter"]: r["source"] for r in nb.parameter_rows(form)}
    assert (sources["target"], sources["region"], sources["auth"]) == ("recorded by 02_deploy",) * 3
    assert sources["deployment"] == "default"
    assert "domain" not in sources, "only the notebook's own parameters (and sandbox defaults) are listed"
    with pytest.raises(ParameterError) as error:
        nb.resolve_from(nb.parameter_form(cell_globals(target="", region="", auth="oauth")), recorded=True)
    assert error.value.parameter == "auth" and "'cognito'" in error.value.problem and "'oauth'" in error.value.problem

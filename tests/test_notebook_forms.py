"""The parameter forms as a workshop uses them: on by environment, kept across "Run All", feedback
beside each field, the recorded notebooks' "(as 02_deploy recorded)" choices (issue 14)."""

from __future__ import annotations

import ipywidgets as w
import pytest

from eks_hub_runbook import notebook as nb
from eks_hub_runbook.errors import ParameterError
from eks_hub_runbook.notebook import forms

from test_notebook_helpers import cell_globals, papermill_globals


@pytest.fixture(autouse=True)
def fresh_kernel(monkeypatch):
    """Each test is a new kernel: nothing typed into an earlier form, no workshop environment."""
    monkeypatch.setattr(forms, "_typed", {})
    monkeypatch.delenv(forms.FORMS_ENV, raising=False)


def test_the_workshop_environment_shows_the_form_without_editing_interactive(monkeypatch):
    assert not nb.parameter_form(cell_globals()).interactive
    monkeypatch.setenv(forms.FORMS_ENV, "1")
    form = nb.parameter_form(cell_globals())
    assert form.interactive and isinstance(form.widgets["auth"], w.Dropdown)


def test_an_explicit_interactive_false_from_papermill_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(forms.FORMS_ENV, "1")
    form = nb.parameter_form(papermill_globals("interactive = False\n", interactive=False))
    assert not form.interactive and form.widgets == {}


def test_run_all_again_keeps_what_was_typed_unless_the_cell_changed():
    form = nb.parameter_form(cell_globals(interactive=True, domain="hub.example.com"))
    form.widgets["auth"].value = "cognito"
    form.widgets["timeout_minutes"].value = 5
    again = nb.parameter_form(cell_globals(interactive=True, domain="hub.example.com"))  # "Run All": the form cell runs again
    assert again.widgets["auth"].value == "cognito" and again.widgets["timeout_minutes"].value == 5
    assert again.given() == {"auth", "timeout_minutes"}
    assert nb.resolve_from(again).auth == "cognito"
    edited = nb.parameter_form(cell_globals(interactive=True, domain="hub.example.com", timeout_minutes=45))  # the cell itself changed
    assert edited.widgets["timeout_minutes"].value == 45 and edited.widgets["auth"].value == "cognito"


def test_each_bad_value_is_shown_beside_its_own_field():
    form = nb.parameter_form(cell_globals(interactive=True))
    form.widgets["domain"].value = "hub..example.com"
    form.widgets["timeout_minutes"].value = 0
    assert "not a valid DNS name" in form.feedback["domain"].value
    assert form.feedback["auth"].value == "" and "runbook-invalid" in form.status.value
    form.widgets["domain"].value = ""
    assert form.feedback["domain"].value == "" and "runbook-valid" in form.status.value


def test_an_unticked_confirm_says_the_notebook_will_stop_there():
    form = nb.parameter_form(cell_globals(interactive=True))
    assert "stops before it deletes" in form.feedback["confirm"].value
    form.widgets["confirm"].value = True
    assert form.feedback["confirm"].value == ""
    assert nb.resolve_from(form, confirm="deletes the deployment").target == "aws"


def test_recorded_notebooks_offer_as_recorded_and_check_the_record(monkeypatch):
    """03-05's empty target/region/auth are a choice of their own, valid when nothing is recorded yet."""
    recorded = {"target": "aws", "region": "us-west-2", "auth": "cognito", "domain": "hub.example.com"}
    monkeypatch.setattr(forms, "recorded_parameters", lambda deployment: recorded)
    values = cell_globals(interactive=True, target="", region="", auth="")
    del values["domain"]  # 03-05 declare no domain: it comes from the record
    form = nb.parameter_form(values)
    assert form.widgets["auth"].options[0] == ("(as 02_deploy recorded)", "") and form.widgets["auth"].value == ""
    assert form.widgets["target"].value == "" and "runbook-valid" in form.status.value, form.status.value


def test_a_refused_parameter_in_a_form_is_a_short_message_not_a_traceback():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.user_ns.update(cell_globals(interactive=True))
        shown = []
        shell._showtraceback = lambda etype, value, stb: shown.append(stb)
        shell.run_cell("form = nb.parameter_form(globals())")
        result = shell.run_cell("nb.resolve_from(form, confirm='deletes the deployment')")
        assert isinstance(result.error_in_exec, ParameterError)  # the cell still fails: "Run All" stops there
        assert len(shown) == 1 and len(shown[0]) == 1 and "parameter 'confirm'" in shown[0][0]
        assert "Traceback" not in shown[0][0] and "File " not in shown[0][0]
    finally:
        shell.set_custom_exc((), None)
        InteractiveShell.clear_instance()


def test_a_number_with_a_fraction_is_a_number_field_and_untouched_is_not_a_change():
    """02's cull_timeout_minutes (60.0): a text field handed back "60.0", which the workshop record
    listed as a parameter the presenter changed."""
    form = nb.parameter_form(cell_globals(interactive=True, cull_timeout_minutes=60.0))
    assert isinstance(form.widgets["cull_timeout_minutes"], w.FloatText)
    assert "cull_timeout_minutes" not in form.given()
    form.widgets["cull_timeout_minutes"].value = 0.5
    assert "cull_timeout_minutes" in form.given() and nb.resolve_from(form).cull_timeout_minutes == 0.5

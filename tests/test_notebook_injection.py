"""Reading back what papermill injected: the kernel's input history, and papermill's command line."""

from __future__ import annotations

import os

from eks_hub_runbook.notebook import injection

PARAMETERS = 'target: str = "sandbox"  # where\nauth: str = "dummy"  # login\ninteractive: bool = False  # form'


def test_the_injected_cell_and_the_parameters_cell_before_it_are_found():
    history = ["", PARAMETERS, '# Parameters\nauth = "cognito"\nvpc_cidr = "10.1.0.0/33"\n', "form = nb.parameter_form(globals())"]
    found = injection.read(history)
    assert found.found and found.declared == {"target", "auth", "interactive"}
    assert found.injected == ("auth", "vpc_cidr") and found.unknown() == ["vpc_cidr"]


def test_no_injected_cell_means_nothing_injected():
    assert injection.read(["", PARAMETERS, "x = 1"]) == injection.Injection()
    assert injection.read([]).unknown() == []


def test_a_re_executed_notebook_uses_the_last_injected_cell():
    history = ["", PARAMETERS, '# Parameters\nauth = "oauth"\n', "...", PARAMETERS, '# Parameters\ncolour = "red"\n']
    assert injection.read(history).injected == ("colour",)


def test_papermill_output_path_from_its_command_line():
    read = injection.output_path_from_argv
    assert read(["/v/bin/python", "/v/bin/papermill", "in.ipynb", "out.ipynb", "-p", "auth", "cognito"]) == "out.ipynb"
    assert read(["/v/bin/python", "/v/bin/papermill", "runbooks/02_deploy.ipynb", "-p", "auth", "cognito"]) == "-"
    assert read(["python", "-m", "papermill", "-k", "python3", "-p", "a", "b", "in.ipynb", "o.ipynb"]) == "o.ipynb"
    assert read(["python", "-m", "pytest", "tests"]) is None


def test_the_parent_process_is_read_from_proc():
    assert injection.papermill_output_path(str(os.getpid())) is None  # pytest is not papermill
    assert injection.papermill_output_path("999999999") is None

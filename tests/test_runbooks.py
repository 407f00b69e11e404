"""The six runbooks: well-formed notebooks with documented parameters, and the whole sequence
executed by papermill on the sandbox, in order, for deployment types 1 (dummy) and 2 (cognito)."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import papermill as pm
import pytest

RUNBOOKS = Path(__file__).resolve().parents[1] / "runbooks"
SEQUENCE = ("00_prerequisites", "01_certificate", "02_deploy", "03_verify", "04_gpu_sharing", "05_cleanup")
COMMON = ("target", "deployment", "region", "interactive")


def notebook(name: str):
    return nbformat.read(RUNBOOKS / f"{name}.ipynb", as_version=4)


def code_cells(name: str):
    return [c for c in notebook(name).cells if c.cell_type == "code"]


def test_the_six_runbooks_exist():
    assert sorted(p.stem for p in RUNBOOKS.glob("*.ipynb")) == list(SEQUENCE)


@pytest.mark.parametrize("name", SEQUENCE)
def test_committed_clean(name):
    nb = notebook(name)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: commit without outputs"


@pytest.mark.parametrize("name", SEQUENCE)
def test_every_parameter_has_a_type_and_help(name):
    parameters = pm.inspect_notebook(str(RUNBOOKS / f"{name}.ipynb"))
    assert set(COMMON) <= set(parameters), f"{name} lacks common parameters"
    for parameter in parameters.values():
        assert parameter["inferred_type_name"] not in ("None", ""), f"{name}: {parameter['name']} has no type"
        assert parameter["help"].strip(), f"{name}: {parameter['name']} has no help comment"
    # the notebooks after 02_deploy take target, region and auth from its record unless given
    later = name in ("03_verify", "04_gpu_sharing", "05_cleanup")
    assert parameters["target"]["default"] == ('""' if later else '"sandbox"')
    assert parameters["auth"]["default"] == ('""' if later else '"dummy"')
    assert parameters["interactive"]["default"] == "False"
    tagged = [c for c in notebook(name).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1


def test_destructive_notebook_takes_confirm():
    parameters = pm.inspect_notebook(str(RUNBOOKS / "05_cleanup.ipynb"))
    assert parameters["confirm"]["default"] == "False"


def test_no_secret_parameters():
    for name in SEQUENCE:
        for parameter in pm.inspect_notebook(str(RUNBOOKS / f"{name}.ipynb")):
            assert "secret" not in parameter and "password" not in parameter and "token" not in parameter, (name, parameter)


@pytest.mark.parametrize("name", SEQUENCE)
def test_cells_only_call_the_library(name):
    """Thin cells: no function or class definitions, no target branches, short; every step explained."""
    nb = notebook(name)
    for cell in code_cells(name):
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), \
                f"{name}: logic belongs in the library:\n{cell.source}"
            if isinstance(node, ast.If):
                assert "target" not in ast.unparse(node.test), f"{name}: no per-target branches in notebooks"
        if "parameters" not in cell.metadata.get("tags", []):
            assert len(cell.source.splitlines()) <= 6, f"{name}: cell too long:\n{cell.source}"
        assert "input(" not in cell.source
    kinds = [c.cell_type for c in nb.cells]
    assert kinds[0] == "markdown" and kinds.count("markdown") >= 5


@pytest.mark.sandbox
def test_interactive_form_headless_resolves_like_the_defaults(tmp_path, state_dir):
    """interactive=True builds the widgets headless (no input()) and resolves to the same parameters."""
    out = tmp_path / "01.ipynb"
    pm.execute_notebook(str(RUNBOOKS / "01_certificate.ipynb"), str(out), parameters={"interactive": True},
                        kernel_name="python3", progress_bar=False, cwd=str(RUNBOOKS))
    executed = nbformat.read(out, as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


# --------------------------------------------------------------------------- the sequence on the sandbox

# 00 -> 05 in order on the sandbox, each notebook finding what the earlier ones recorded: in JupyterLab
# (tests/test_workshop.py), headless under nbval (tests/test_golden.py) and as typed (tests/test_fresh_clone.py).

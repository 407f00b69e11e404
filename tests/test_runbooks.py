"""The six runbooks: well-formed notebooks with documented parameters, and the whole sequence
executed by papermill on the sandbox, in order, for deployment types 1 (dummy) and 2 (cognito)."""

from __future__ import annotations

import ast
import json
import time
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

# Type 2 (cognito) runs 00 -> 05 in JupyterLab in test_workshop.py and headless in the goldens.
SCENARIOS = {
    "dummy": {},
}


def _scraps(path: Path) -> dict:
    """Scrapbook scraps of an executed notebook (name -> value)."""
    found = {}
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            for mimetype, data in output.get("data", {}).items():
                if mimetype.startswith("application/scrapbook.scrap."):  # .json+json, .text+json ...
                    found[data["name"]] = data["data"]
    return found


@pytest.mark.sandbox
@pytest.mark.terraform
@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_sequence_on_the_sandbox(scenario, tmp_path, monkeypatch):
    """00 -> 05 with papermill, each notebook's own parameters only: later notebooks find what
    earlier ones recorded. Ends with no leftovers and the sandbox stopped."""
    import eks_hub_sandbox as sandbox

    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))  # its own sandbox, ports and records
    deployment = f"seq-type{1 if scenario == 'dummy' else 2}"  # never 'cognito' in a cognito deployment's name
    first = {"deployment": deployment, **SCENARIOS[scenario]}
    later = {"deployment": deployment}
    parameters = {"00_prerequisites": first, "01_certificate": first, "02_deploy": first, "03_verify": later,
                  "04_gpu_sharing": later, "05_cleanup": {**later, "confirm": True, "delete_certificate": True}}
    timings = {}
    try:
        for name in SEQUENCE:
            started = time.monotonic()
            pm.execute_notebook(str(RUNBOOKS / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                                parameters=parameters[name], kernel_name="python3", progress_bar=False,
                                cwd=str(RUNBOOKS))
            timings[name] = round(time.monotonic() - started, 1)
        scraps = {name: _scraps(tmp_path / f"{name}.ipynb") for name in SEQUENCE}
        assert scraps["00_prerequisites"]["prerequisites"]["passed"] is True
        assert bool(scraps["01_certificate"]["certificate_arn"]) == (scenario == "cognito")
        assert scraps["02_deploy"]["hub_url"].startswith("http://127.0.0.1:")
        assert scraps["02_deploy"]["parameters"]["auth"] == SCENARIOS[scenario].get("auth", "dummy")
        assert scraps["03_verify"]["verified"] is True
        placement = scraps["04_gpu_sharing"]["gpu_sharing"]["placement"]
        assert len({row["node"] for row in placement}) == 1 and len(placement) == 2
        assert scraps["05_cleanup"]["cleanup"]["leftovers"] == 0
        assert not sandbox.is_up("aws") and not sandbox.is_up("kube") and not sandbox.is_up("hub")
        print(json.dumps({"scenario": scenario, "seconds": timings}))
    finally:
        sandbox.down()  # after a failure: the local AWS keeps nothing once stopped

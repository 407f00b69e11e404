"""What the runner reads from each runbook: its parameters and its validation call's arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from eks_hub_runbook.notebook import contract

RUNBOOKS = Path(__file__).resolve().parents[1] / "runbooks"


@pytest.fixture(scope="module")
def contracts():
    return {p.stem: contract.read(p) for p in sorted(RUNBOOKS.glob("*.ipynb"))}


def test_the_notebooks_after_02_take_the_record_and_05_needs_confirm(contracts):
    assert {name for name, c in contracts.items() if c.from_record} == {"03_verify", "04_gpu_sharing", "05_cleanup"}
    assert {name for name, c in contracts.items() if c.records_parameters} == {"02_deploy"}
    assert {name: c.confirm for name, c in contracts.items() if c.confirm} == {"05_cleanup": "deletes the deployment"}


def test_every_notebook_takes_auth_and_the_later_ones_default_to_the_record(contracts):
    for name, c in contracts.items():
        assert "auth" in c.declared, name
        if c.from_record:
            assert (c.declared["target"], c.declared["region"], c.declared["auth"]) == ("", "", ""), name
        else:
            assert c.declared["target"] == "sandbox" and c.declared["auth"] == "dummy", name


def test_a_fixture_without_the_calls_has_an_empty_contract(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('colour: str = "red"')
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("print(colour)")]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    path = tmp_path / "plain.ipynb"
    nbformat.write(nb, path)
    assert contract.read(path) == contract.Contract("plain", {"colour": "red"})
    assert not contract.read(path).validates

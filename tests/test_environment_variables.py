"""environment.exported: variables are visible to child processes and restored afterwards."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from eks_hub_runbook import environment
from eks_hub_runbook.processes import pid_alive


def test_exported_reaches_children_and_restores_both_set_and_unset(monkeypatch):
    monkeypatch.setenv("RUNBOOK_TEST_KEPT", "before")
    monkeypatch.delenv("RUNBOOK_TEST_NEW", raising=False)
    with pytest.raises(RuntimeError):
        with environment.exported({"RUNBOOK_TEST_KEPT": "during", "RUNBOOK_TEST_NEW": "added"}):
            seen = subprocess.run([sys.executable, "-c", "import os; print(os.environ['RUNBOOK_TEST_KEPT'],"
                                   " os.environ['RUNBOOK_TEST_NEW'])"], capture_output=True, text=True).stdout
            assert seen.split() == ["during", "added"]
            raise RuntimeError("a failure inside still restores")
    assert os.environ["RUNBOOK_TEST_KEPT"] == "before"
    assert "RUNBOOK_TEST_NEW" not in os.environ


@pytest.mark.sandbox
def test_isolated_points_state_and_outputs_under_root_and_stops_its_sandbox(tmp_path):
    import eks_hub_sandbox as sandbox
    from eks_hub_sandbox import services

    before = os.environ.get("RUNBOOK_STATE_DIR")
    with environment.isolated(tmp_path) as env:
        assert env == {"RUNBOOK_STATE_DIR": str(tmp_path / "state"), "RUNBOOK_OUTPUTS_DIR": str(tmp_path / "outputs")}
        assert str(sandbox.kubeconfig_path()).startswith(str(tmp_path / "state"))
        sandbox.up(only=("aws",))
        pid = services.status("aws").pid
    assert os.environ.get("RUNBOOK_STATE_DIR") == before
    assert pid and not pid_alive(pid), "the sandbox started inside was stopped on the way out"

"""environment.exported: variables are visible to child processes and restored afterwards."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from eks_hub_runbook import environment


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

"""Every import in the sandbox package resolves, including those inside functions."""

from __future__ import annotations

from conftest import unresolved_imports


def test_every_import_of_the_sandbox_resolves():
    assert unresolved_imports("eks_hub_sandbox") == []

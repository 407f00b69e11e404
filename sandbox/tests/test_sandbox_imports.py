"""Every import in the sandbox package resolves, including those inside functions."""

from __future__ import annotations


def test_every_import_of_the_sandbox_resolves(unresolved_imports):
    assert unresolved_imports("eks_hub_sandbox") == []

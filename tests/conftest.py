"""Shared fixtures. Sandbox services run in a per-session temporary state folder so tests
never touch a developer's own sandbox, and are always stopped at the end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("RUNBOOK_SHARED_DIR", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Upstream schemas read in place (../shared beside the clone)."""
    assert SHARED_DIR.is_dir(), f"{SHARED_DIR} is missing: the upstream schemas are read from ../shared"
    return SHARED_DIR


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory) -> Path:
    """A private RUNBOOK_STATE_DIR for the whole test session."""
    path = tmp_path_factory.mktemp("runbook-state")
    os.environ["RUNBOOK_STATE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def aws_sandbox(state_dir):
    """The sandbox's local AWS (moto + EKS layer) on loopback, for the whole session."""
    from eks_hub_runbook import sandbox

    sandbox.up(only=("aws",))
    yield sandbox.aws_endpoint_url()
    sandbox.down()


@pytest.fixture(scope="session")
def full_sandbox(state_dir):
    """All core sandbox services: local AWS and the cluster emulator."""
    from eks_hub_runbook import sandbox

    sandbox.up()
    yield sandbox
    sandbox.down()

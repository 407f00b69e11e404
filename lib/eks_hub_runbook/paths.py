"""Where things live: the repository, the git-ignored state folder, shared upstream data."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
RUNBOOKS_DIR = REPO_ROOT / "runbooks"
OUTPUTS_DIR = Path(os.environ.get("RUNBOOK_OUTPUTS_DIR", REPO_ROOT / "outputs"))


def state_dir() -> Path:
    """Git-ignored folder for pid files, logs, Terraform state and generated files.

    ``RUNBOOK_STATE_DIR`` overrides it (tests use a temporary folder).
    """
    path = Path(os.environ.get("RUNBOOK_STATE_DIR", REPO_ROOT / ".runbook"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sandbox_dir() -> Path:
    """State of the local sandbox services (pid files, logs, ports, CA)."""
    path = state_dir() / "sandbox"
    path.mkdir(parents=True, exist_ok=True)
    return path


def deployment_dir(deployment: str) -> Path:
    """Per-deployment state: Terraform working dir and state, rendered values, generated keys."""
    path = state_dir() / "deployments" / deployment
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_dir() -> Path:
    """Upstream schemas and reference data, read in place (``../shared`` beside the clone)."""
    return Path(os.environ.get("RUNBOOK_SHARED_DIR", REPO_ROOT.parent / "shared"))


def node_bin(tool: str) -> Path:
    """A tool installed by ``npm ci`` into the repository's node_modules."""
    return REPO_ROOT / "node_modules" / ".bin" / tool

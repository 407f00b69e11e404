"""Where things live: the repository and the git-ignored state folder."""

from __future__ import annotations

import os
import tempfile
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


def deployment_dir(deployment: str, create: bool = True) -> Path:
    """Per-deployment state: Terraform working dir and state, rendered values, generated keys.

    Readers that only look (``create=False``) leave no folder behind for a deployment that
    does not exist."""
    path = state_dir() / "deployments" / deployment
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def node_bin(tool: str) -> Path:
    """A tool installed by ``npm ci`` into the repository's node_modules."""
    return REPO_ROOT / "node_modules" / ".bin" / tool


def write_file(path: Path, data: str | bytes, private: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically: readers see the old file or the whole new one,
    never a missing or half-written file. ``private`` files (keys, tokens, kubeconfigs,
    values with secrets) are readable by the owner only (0600) from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        if not private:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

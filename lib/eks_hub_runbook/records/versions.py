"""What a run was made with: tool, provider, chart and package versions, and the git commit.

Everything here is best effort: a missing tool is recorded as missing, never an error,
so a record can always be written.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from ..paths import REPO_ROOT, TERRAFORM_DIR, state_dir

PACKAGES = (
    "eks-hub-runbook", "papermill", "nbclient", "nbconvert", "scrapbook", "ipykernel", "boto3",
    "moto", "kubernetes", "jupyterhub", "jupyterhub-kubespawner", "oauthenticator", "pandas",
)
_LOCK_PROVIDER = re.compile(r'provider\s+"([^"]+)"\s*\{[^}]*?version\s*=\s*"([^"]+)"', re.S)


def _run(argv: list[str], cwd: Path | None = None, timeout: float = 20) -> str | None:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of the Python packages a run depends on."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def terraform_version() -> str:
    """``terraform version`` (or 'not installed')."""
    if not shutil.which("terraform"):
        return "not installed"
    out = _run(["terraform", "version", "-json"])
    try:
        return json.loads(out)["terraform_version"] if out else "unknown"
    except (ValueError, KeyError):
        return "unknown"


def provider_versions(deployment: str | None = None) -> dict[str, str]:
    """Provider versions selected in the dependency lock file(s) of the root module."""
    candidates = [TERRAFORM_DIR / ".terraform.lock.hcl"]
    if deployment:
        deployments = state_dir() / "deployments" / deployment
        if deployments.is_dir():
            candidates += sorted(deployments.rglob(".terraform.lock.hcl"))
    providers: dict[str, str] = {}
    for lock in candidates:
        if lock.is_file():
            for source, version in _LOCK_PROVIDER.findall(lock.read_text()):
                providers[source] = version
    return providers


def chart_versions() -> dict[str, str]:
    """Helm chart versions pinned in ``terraform/charts.yaml``."""
    path = TERRAFORM_DIR / "charts.yaml"
    if not path.is_file():
        return {}
    try:
        steps = (yaml.safe_load(path.read_text()) or {}).get("steps", [])
    except yaml.YAMLError:
        return {}
    return {s["release"]: str(s.get("version", "")) for s in steps if isinstance(s, dict) and "release" in s}


def git_info(root: Path = REPO_ROOT) -> dict[str, Any]:
    """Commit, branch and whether the working tree had changes."""
    commit = _run(["git", "rev-parse", "HEAD"], cwd=root)
    if commit is None:
        return {"commit": None, "branch": None, "dirty": None}
    branch = _run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=root)
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root)
    return {"commit": commit.strip(), "branch": (branch or "").strip() or None, "dirty": bool(status and status.strip())}


def collect(deployment: str | None = None) -> dict[str, Any]:
    """The ``versions`` block of run.json."""
    return {
        "python": platform.python_version(),
        "terraform": terraform_version(),
        "providers": provider_versions(deployment),
        "charts": chart_versions(),
        "packages": package_versions(),
    }

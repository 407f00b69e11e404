"""Where the sandbox keeps its state: a folder of the runbook's state folder (pid files, logs,
ports, the cluster's CA and kubeconfig, the hub's database)."""

from __future__ import annotations

from pathlib import Path

from eks_hub_runbook.paths import state_dir


def sandbox_dir() -> Path:
    """State of the local sandbox services (``<state>/sandbox``, created on first use)."""
    path = state_dir() / "sandbox"
    path.mkdir(parents=True, exist_ok=True)
    return path

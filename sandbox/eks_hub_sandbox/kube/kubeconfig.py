"""Admin kubeconfig of the sandbox cluster (self-contained: CA data and token embedded)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from eks_hub_runbook.paths import write_file

CONTEXT = "sandbox"


def admin_kubeconfig(server: str, ca_pem: bytes, token: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server,
                                                  "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": f"{CONTEXT}-admin", "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": f"{CONTEXT}-admin"}}],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_private_yaml(path: Path, document: dict) -> None:
    """Write YAML readable by the owner only (it holds a credential)."""
    write_file(path, yaml.safe_dump(document, sort_keys=False), private=True)

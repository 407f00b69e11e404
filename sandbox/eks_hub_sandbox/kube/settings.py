"""Settings of the cluster emulator: command-line arguments plus environment knobs.

Environment variables (all optional):

- ``RUNBOOK_SANDBOX_NODE_DELAY``: seconds Karpenter takes to bring up a node (default 5);
- ``RUNBOOK_SANDBOX_PULL_DELAY``: seconds an image pull takes on a node the first time (default 3);
- ``RUNBOOK_SANDBOX_AWS_SYNC``: seconds between node-group syncs with the local AWS (default 10);
- ``RUNBOOK_SANDBOX_KUBE_ACCESS_LOG``: ``1`` logs every API request;
- ``AWS_DEFAULT_REGION``: region of the local AWS (default us-west-2).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def emulated_delays() -> dict[str, float]:
    """The waits the emulator is configured with in this environment: ``node launch`` (Karpenter
    bringing up a node) and ``image pull`` (a node's first pull of an image), in seconds."""
    return {"node launch": _float_env("RUNBOOK_SANDBOX_NODE_DELAY", 5.0),
            "image pull": _float_env("RUNBOOK_SANDBOX_PULL_DELAY", 3.0)}


@dataclass
class Settings:
    port: int
    aws_endpoint: str | None
    state_dir: Path
    kubeconfig: Path | None
    ca_file: Path | None
    node_delay: float = 5.0
    pull_delay: float = 3.0
    aws_sync_interval: float = 10.0
    region: str = "us-west-2"
    access_log: bool = False
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> "Settings":
        parser = argparse.ArgumentParser(prog="python -m eks_hub_sandbox.kube",
                                         description="Kubernetes API-server emulator of the local sandbox.")
        parser.add_argument("--port", type=int, required=True, help="HTTPS port on 127.0.0.1")
        parser.add_argument("--aws-endpoint", default=None, help="URL of the local AWS (moto) for the controllers")
        parser.add_argument("--state-dir", type=Path, required=True, help="folder for certificates, pod folders, volumes")
        parser.add_argument("--kubeconfig", type=Path, default=None, help="where to write the admin kubeconfig")
        parser.add_argument("--ca-file", type=Path, default=None, help="where to write the CA certificate (PEM)")
        args = parser.parse_args(argv)
        delays = emulated_delays()
        return cls(
            port=args.port, aws_endpoint=args.aws_endpoint, state_dir=args.state_dir.resolve(),
            kubeconfig=args.kubeconfig, ca_file=args.ca_file,
            node_delay=delays["node launch"], pull_delay=delays["image pull"],
            aws_sync_interval=_float_env("RUNBOOK_SANDBOX_AWS_SYNC", 10.0),
            region=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-west-2",
            access_log=os.environ.get("RUNBOOK_SANDBOX_KUBE_ACCESS_LOG") == "1",
        )

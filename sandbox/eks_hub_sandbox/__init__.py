"""The local sandbox: a stand-in for AWS and EKS on 127.0.0.1.

Core services, started by ``runbook sandbox up``:

- ``aws``: a moto server behind a small layer that serves the EKS APIs moto lacks
  (``eks_hub_sandbox.aws_server``);
- ``kube``: a Kubernetes API-server emulator with in-process controllers
  (``eks_hub_sandbox.kube``).

The platform adds ``hub`` (a real JupyterHub) and ``oidc`` (a local OpenID Connect
provider) when it is installed. ``down`` stops all of them.
"""

from __future__ import annotations

import os
from pathlib import Path

from eks_hub_sandbox.paths import sandbox_dir
from . import services

SANDBOX_REGION = "us-west-2"
# moto accepts any credentials; these are the documented test values, not secrets.
SANDBOX_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
CORE_SERVICES = ("kube", "aws")
# Services added by the platform layer; stopped first on ``down``.
PLATFORM_SERVICES = ("oidc",)  # host services of the platform (the hub runs as pods)


def kubeconfig_path() -> Path:
    """Admin kubeconfig for the sandbox cluster, written by the kube service when it starts."""
    return sandbox_dir() / "kubeconfig"


def kube_ca_path() -> Path:
    """CA certificate of the sandbox API server (PEM), written by the kube service."""
    return sandbox_dir() / "kube-ca.pem"


def aws_endpoint_url() -> str:
    return f"http://{services.LOOPBACK}:{services.reserved_port('aws')}"


def kube_url() -> str:
    return f"https://{services.LOOPBACK}:{services.reserved_port('kube')}"


def core_specs() -> dict[str, services.ServiceSpec]:
    """Start specs of the core services, with ports chosen once and kept."""
    aws_port = services.reserved_port("aws")
    kube_port = services.reserved_port("kube")
    return {
        "kube": services.ServiceSpec(
            name="kube",
            argv=services.python_module(
                "eks_hub_sandbox.kube",
                "--port", str(kube_port),
                "--aws-endpoint", aws_endpoint_url(),
                "--state-dir", str(sandbox_dir() / "cluster"),
                "--kubeconfig", str(kubeconfig_path()),
                "--ca-file", str(kube_ca_path()),
            ),
            port=kube_port,
            scheme="https",
            env={**SANDBOX_CREDENTIALS, "AWS_DEFAULT_REGION": SANDBOX_REGION},
        ),
        "aws": services.ServiceSpec(
            name="aws",
            argv=services.python_module(
                "eks_hub_sandbox.aws_server",
                "--port", str(aws_port),
                "--kube-url", kube_url(),
                "--kube-ca-file", str(kube_ca_path()),
            ),
            port=aws_port,
            env={"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
        ),
    }


def up(only: tuple[str, ...] = CORE_SERVICES) -> list[services.ServiceStatus]:
    """Start the core sandbox services (reusing running ones) and return their status."""
    specs = core_specs()
    return [services.start(specs[name]) for name in CORE_SERVICES if name in only]


def down() -> list[str]:
    """Stop every sandbox service this state folder started. Returns the names stopped."""
    stopped = []
    for name in (*PLATFORM_SERVICES, *reversed(CORE_SERVICES)):
        if services.stop(name):
            stopped.append(name)
    return stopped


def status() -> list[services.ServiceStatus]:
    """Status of every known sandbox service."""
    return [services.status(name) for name in (*CORE_SERVICES, *PLATFORM_SERVICES)]


def is_up(name: str = "aws") -> bool:
    return services.status(name).running


def environment() -> dict[str, str]:
    """Environment variables that point awscli, boto3, terraform and kubectl at the sandbox."""
    env = {
        "AWS_ENDPOINT_URL": aws_endpoint_url(),
        **SANDBOX_CREDENTIALS,
        "AWS_DEFAULT_REGION": SANDBOX_REGION,
        "AWS_REGION": SANDBOX_REGION,
    }
    if kubeconfig_path().exists():
        env["KUBECONFIG"] = str(kubeconfig_path())
    return env


def export_lines() -> str:
    """``export`` lines for ``eval "$(runbook sandbox env)"``."""
    import shlex

    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in environment().items())


def apply_environment() -> None:
    """Point this process (boto3, subprocesses) at the sandbox."""
    os.environ.update(environment())

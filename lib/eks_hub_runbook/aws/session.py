"""boto3 clients for a target: real AWS (default credential chain) or the sandbox's moto."""

from __future__ import annotations

import functools

import boto3
from botocore.config import Config

from .. import sandbox

_RETRIES = Config(retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=10, read_timeout=60)


def endpoint_url(target: str) -> str | None:
    """AWS endpoint for a target: None (the real one) for ``aws``, moto's URL for ``sandbox``."""
    return sandbox.aws_endpoint_url() if target == "sandbox" else None


@functools.lru_cache(maxsize=32)
def _session(target: str, region: str) -> boto3.Session:
    if target == "sandbox":
        return boto3.Session(region_name=region, **{k.lower(): v for k, v in sandbox.SANDBOX_CREDENTIALS.items()})
    return boto3.Session(region_name=region)


def client(service: str, target: str = "sandbox", region: str = sandbox.SANDBOX_REGION, config: Config | None = None):
    """A boto3 client for ``service`` on ``target`` in ``region``.

    Standard retries by default; pass ``config`` for another policy (e.g. fewer
    retries for calls that only inform).
    """
    return _session(target, region).client(service, endpoint_url=endpoint_url(target), config=config or _RETRIES)


def subprocess_env(target: str, region: str) -> dict[str, str]:
    """Environment for CLI tools (terraform, aws, kubectl) run against ``target``.

    For ``aws`` this is empty: the caller's own credentials and config apply.
    """
    if target != "sandbox":
        return {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    env = sandbox.environment()
    env.update({"AWS_REGION": region, "AWS_DEFAULT_REGION": region})
    return env

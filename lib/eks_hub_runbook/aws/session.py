"""boto3 clients for a target: its endpoint (none for real AWS), its credentials, its region.

Every call names its target; none defaults to one, so AWS code cannot talk to a stand-in by
forgetting an argument.
"""

from __future__ import annotations

import functools

import boto3
from botocore.config import Config

from .. import targets

_RETRIES = Config(retries={"max_attempts": 8, "mode": "standard"}, connect_timeout=10, read_timeout=60)


def endpoint_url(target: str) -> str | None:
    """AWS endpoint for a target: None (AWS's own) for ``aws``, the stand-in's URL otherwise."""
    return targets.get(target).endpoint_url()


@functools.lru_cache(maxsize=32)
def _session(target: str, region: str) -> boto3.Session:
    return targets.get(target).session(region)


def client(service: str, target: str, region: str, config: Config | None = None):
    """A boto3 client for ``service`` on ``target`` in ``region``.

    Standard retries by default; pass ``config`` for another policy (e.g. fewer
    retries for calls that only inform).
    """
    return _session(target, region).client(service, endpoint_url=endpoint_url(target), config=config or _RETRIES)


def subprocess_env(target: str, region: str) -> dict[str, str]:
    """Environment for CLI tools (terraform, aws, kubectl) run against ``target``.

    For ``aws`` only the region: the caller's own credentials and config apply.
    """
    return targets.get(target).subprocess_env(region)

"""The controllers' door to the local AWS (moto at ``--aws-endpoint``): boto3 clients
with short timeouts, called from worker threads so the event loop never blocks.

When no endpoint is configured, or the local AWS is down, calls raise
``AwsUnavailable`` and controllers retry later; the cluster itself keeps working.
"""

from __future__ import annotations

import asyncio
import os
import threading

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, EndpointConnectionError

_CONFIG = Config(connect_timeout=2, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"})


class AwsUnavailable(Exception):
    """The local AWS cannot be reached (or none is configured)."""


class AwsGateway:
    def __init__(self, endpoint: str | None, region: str):
        self.endpoint = endpoint
        self.region = region
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()
        self._session = boto3.session.Session(
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            region_name=region)

    @property
    def configured(self) -> bool:
        return bool(self.endpoint)

    def client(self, service: str):
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(service, endpoint_url=self.endpoint, config=_CONFIG)
            return self._clients[service]

    async def call(self, service: str, operation: str, **params):
        """Run one API call in a thread. Raises ``AwsUnavailable`` when AWS cannot be reached."""
        if not self.endpoint:
            raise AwsUnavailable("no local AWS endpoint configured")
        client = self.client(service)
        try:
            return await asyncio.to_thread(getattr(client, operation), **params)
        except (EndpointConnectionError, BotoCoreError) as exc:
            if isinstance(exc, EndpointConnectionError) or "Could not connect" in str(exc):
                raise AwsUnavailable(str(exc)) from exc
            raise

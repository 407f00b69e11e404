"""Runs the emulator: TLS, admin kubeconfig, bootstrap objects, controllers, HTTP API.

Stops cleanly on SIGTERM/SIGINT: watches are closed, the kubelet stops every pod
process tree, then the HTTP server shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl

from aiohttp import web

from eks_hub_runbook.paths import write_file
from . import bootstrap, kubeconfig, tls
from .api import ApiServer
from .auth import Authenticator, ServiceAccountTokens, load_or_create_admin_token
from .aws import AwsGateway
from .cluster import Cluster
from .controllers import build_controllers
from .runtime import Runtime
from .settings import Settings
from .stalls import StallWatch
from .storage import VolumeStore

log = logging.getLogger("eks_hub_sandbox.kube")


def _write_identity(settings: Settings, ca_pem: bytes, token: str) -> None:
    if settings.ca_file:
        write_file(settings.ca_file, ca_pem)
    if settings.kubeconfig:
        kubeconfig.write_private_yaml(settings.kubeconfig, kubeconfig.admin_kubeconfig(settings.url, ca_pem, token))


async def serve(settings: Settings, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or a termination signal arrives)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    cert, key, ca_pem = tls.ensure_certificates(settings.state_dir / "pki")
    token = load_or_create_admin_token(settings.state_dir / "pki")
    cluster = Cluster()
    cluster.ca_pem = ca_pem
    bootstrap.install(cluster)
    runtime = Runtime(cluster, settings, tokens=ServiceAccountTokens.load_or_create(settings.state_dir / "pki"))
    runtime.aws = AwsGateway(settings.aws_endpoint, settings.region)
    runtime.volumes = VolumeStore(settings.state_dir, runtime.aws)
    controllers = build_controllers(runtime)
    api = ApiServer(cluster, Authenticator(token, runtime.tokens), f"{settings.host}:{settings.port}",
                    logs=runtime.controller("kubelet"))
    app = web.Application(client_max_size=64 * 1024 * 1024)
    api.install(app)
    runner = web.AppRunner(app, access_log=log if settings.access_log else None, handle_signals=False,
                           shutdown_timeout=2.0)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    site = web.TCPSite(runner, settings.host, settings.port, ssl_context=context, backlog=512)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    for controller in controllers:
        controller.start()
    stalls = StallWatch()
    stalls.start()
    # before the port opens: whoever waits for the port (``runbook sandbox up``) then finds them
    _write_identity(settings, ca_pem, token)
    await site.start()
    log.info("cluster emulator listening on %s (state in %s)", settings.url, settings.state_dir)
    if ready:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        stalls.stop()
        api.closing.set()
        cluster.store.close_all_watchers()
        for controller in reversed(controllers):
            try:
                await controller.stop()
            except Exception:
                log.exception("stopping %s failed", controller.name)
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_args(argv)
    asyncio.run(serve(settings))

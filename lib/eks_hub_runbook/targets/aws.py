"""The product's own target: a real AWS account, reached with the caller's credentials.

The platform is installed with helm (explicit values files, pinned charts, bounded retries);
type 1 hubs are reached with ``kubectl port-forward``, types 2 and 3 at their domain behind
the NLB.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .base import Rows, Target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def port_forward(kubeconfig: Path, namespace: str, service: str, remote_port: int = 80,
                 timeout: float = 60.0) -> Iterator[str]:
    """``kubectl port-forward svc/<service>`` on a free loopback port for the duration; yields its URL."""
    from ..errors import PlatformError

    port = _free_port()
    process = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(kubeconfig), "port-forward", "-n", namespace,
         f"svc/{service}", f"{port}:{remote_port}", "--address", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise PlatformError(f"kubectl port-forward exited: {(process.stderr.read() if process.stderr else '')[-300:]}")
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.3)
        else:
            raise PlatformError(f"kubectl port-forward to svc/{service} did not open within {timeout:.0f} s")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class AwsTarget(Target):
    """Your AWS account (billable)."""

    name = "aws"
    billable = True
    tools = ("terraform", "kubectl", "helm")

    @property
    def description(self) -> str:
        return "AWS"

    def install_platform(self, context, kubeconfig: Path | None) -> Rows:
        from ..errors import PlatformError
        from ..platform import install

        if kubeconfig is None:
            raise PlatformError("installing on AWS needs the cluster's kubeconfig (03_verify / kube.kubeconfig builds it)")
        return install.install_helm(context, kubeconfig)

    def hub_url(self, params) -> str:
        from ..platform.values import PORT_FORWARD_PORT

        return f"https://{params.domain}" if params.uses_domain else f"http://localhost:{PORT_FORWARD_PORT}"

    @contextlib.contextmanager
    def hub_endpoint(self, params) -> Iterator[tuple[str, bool | str]]:
        """Types 2/3: ``https://<domain>`` (the CNAME must exist), verified against the self-signed
        certificate 01_certificate generated, if that is the one in use. Type 1: a port-forward to
        ``svc/proxy-public``, stopped when the block ends."""
        from ..aws import eks
        from ..platform.values import PROXY_SERVICE, hub_namespace
        from ..tls import CERTIFICATE_FILE, certificate_dir

        if params.uses_domain:
            generated = certificate_dir(params.deployment, create=False) / CERTIFICATE_FILE
            yield f"https://{params.domain}", str(generated) if generated.exists() else True
            return
        with port_forward(eks.write_kubeconfig(params), hub_namespace(), PROXY_SERVICE) as url:
            yield url, True

"""The product's own target: a real AWS account, reached with the caller's credentials.

The platform is installed with helm (explicit values files, pinned charts, bounded retries);
type 1 hubs are reached with ``kubectl port-forward``, types 2 and 3 at their domain behind
the NLB.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from .base import Rows, Target


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
        from ..walkthrough import port_forward

        if params.uses_domain:
            generated = certificate_dir(params.deployment, create=False) / CERTIFICATE_FILE
            yield f"https://{params.domain}", str(generated) if generated.exists() else True
            return
        with port_forward(eks.write_kubeconfig(params), hub_namespace(), PROXY_SERVICE) as url:
            yield url, True

"""Build the sandbox's AWS app (fault injection, the EKS layer, moto) and serve it on loopback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from . import moto_fixes
from .eks_layer import EksLayer
from .faults import FaultInjector
from .eks_state import EksExtensionState, Scope

LOOPBACK = "127.0.0.1"


def _moto_cluster(scope: Scope, name: str) -> Any:
    """moto's EKS cluster object, or None."""
    from moto.eks.models import eks_backends

    return eks_backends[scope.account][scope.region].clusters.get(name)


def _caller_arn(scope: Scope, access_key: str) -> str:
    """The IAM principal EKS would see as the cluster creator (assumed roles map to their role)."""
    from moto.sts.models import sts_backends

    _, arn, _ = sts_backends[scope.account]["global"].get_caller_identity(access_key, scope.region)
    parts = arn.split(":", 5)
    resource = parts[5]
    if resource.startswith("assumed-role/"):
        resource = "role/" + resource.split("/")[1]
    return f"arn:{parts[1]}:iam::{parts[4]}:{resource}"


def build_app(kube_url: str | None = None, kube_ca_file: Path | None = None) -> FaultInjector:
    """moto's own server app (as ``ThreadedMotoServer`` runs it) wrapped in the EKS layer, with
    the fault injector (``/_sandbox/faults``) in front of both."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    moto_fixes.apply()
    moto_app = DomainDispatcherApplication(create_backend_app)
    state = EksExtensionState(cluster_exists=lambda scope, name: _moto_cluster(scope, name) is not None)
    return FaultInjector(EksLayer(moto_app, state, _moto_cluster, _caller_arn, kube_url=kube_url, kube_ca_file=kube_ca_file))


def make_aws_server(port: int, kube_url: str | None = None, kube_ca_file: Path | None = None,
                    host: str = LOOPBACK) -> BaseWSGIServer:
    """A threaded werkzeug server for the app, bound to ``host:port`` (port 0 picks a free one)."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return make_server(host, port, build_app(kube_url, kube_ca_file), threaded=True, request_handler=MotoRequestHandler)

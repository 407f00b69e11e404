"""The platform on the sandbox: the same plan (``terraform/charts.yaml``) as on EKS.

The manifest groups are applied to the cluster emulator exactly as on EKS (server-side
apply through the kubernetes client); the controllers the helm releases would install are
played by the emulator (the Karpenter release contributes its CRDs, as its chart does); the
chart's ``proxy-public`` Service and hub database PVC are created as the chart renders them;
then the hub runs as a real JupyterHub process (:mod:`.hub`), with the local OpenID Connect
provider (:mod:`.oidc`) for cognito / oauth.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from eks_hub_sandbox.errors import SandboxError
from eks_hub_runbook.platform import charts, values
from eks_hub_runbook.platform.context import InstallContext
from eks_hub_runbook.platform.install import StepStatus, apply_step, api_client, apply_objects, karpenter_crds
from . import hub, is_up, kubeconfig_path, oidc


def chart_objects(hub_values: Mapping[str, Any]) -> list[dict]:
    """The chart's objects the sandbox mirrors: ``proxy-public`` (type and annotations from
    the values, as the chart renders it) and the hub database PVC."""
    service = hub_values["proxy"]["service"]
    https = (hub_values["proxy"].get("https") or {}).get("enabled")
    ports = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    if https:
        ports.append({"name": "https", "port": 443, "targetPort": "http", "protocol": "TCP"})
    pvc = hub_values["hub"]["db"]["pvc"]
    labels = {"app": "jupyterhub", "release": "jupyterhub"}
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "proxy-public", "namespace": "jupyterhub", "labels": {**labels, "component": "proxy-public"},
                      "annotations": dict(service.get("annotations") or {})},
         "spec": {"type": service.get("type", "LoadBalancer"), "ports": ports,
                  "selector": {"component": "proxy", "release": "jupyterhub"}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": "hub-db-dir", "namespace": "jupyterhub", "labels": {**labels, "component": "hub"}},
         "spec": {"accessModes": pvc.get("accessModes", ["ReadWriteOnce"]), "storageClassName": pvc["storageClassName"],
                  "resources": {"requests": {"storage": pvc.get("storage", "1Gi")}}}},
    ]


def install(context: InstallContext) -> list[dict]:
    """The same manifests on the sandbox cluster, then the hub (and its OIDC provider) as processes."""
    if not kubeconfig_path().exists() or not is_up("kube"):
        raise SandboxError("the sandbox cluster is not running: run `runbook sandbox up` first")
    params, outputs = context.params, context.outputs
    client = api_client(kubeconfig_path())
    rows: list[StepStatus] = []
    for index, step in enumerate(context.plan(), start=1):
        if isinstance(step, charts.ManifestStep):
            rows.append(apply_step(client, index, step.group, context.manifests(step.group)))
        elif step.name == "karpenter":
            row = apply_step(client, index, step.name, karpenter_crds(), kind="release")
            row.namespace, row.version, row.detail = step.namespace, step.version, "CRDs applied; controller emulated"
            rows.append(row)
        elif step.name != "jupyterhub":
            rows.append(StepStatus(index, "release", step.name, step.namespace, step.version, "emulated",
                                   detail="played by the sandbox cluster"))
    hub_url = hub.url()
    endpoints = None
    secret = context.oauth_secret()
    started = time.monotonic()
    if secret:
        apply_objects(client, [secret])
        oidc.start(values.oauth_client_id(params, outputs), values.client_secret(params, outputs),
                   f"{hub_url}/hub/oauth_callback")
        endpoints = oidc.endpoints()
        rows.append(StepStatus(len(rows) + 1, "service", "oidc", status="started", attempts=1,
                               seconds=round(time.monotonic() - started, 1), detail=oidc.url()))
    hub_values = context.hub_values(hub_url=hub_url, endpoints=endpoints)
    apply_objects(client, chart_objects(hub_values))
    started = time.monotonic()
    hub.start(hub_values)
    rows.append(StepStatus(len(rows) + 1, "release", "jupyterhub", "jupyterhub", charts.release("jupyterhub").version,
                           "started", 1, round(time.monotonic() - started, 1), detail=hub_url))
    return [row.as_row() for row in rows]

"""The platform on the sandbox: the same plan (``terraform/charts.yaml``) as on EKS.

The manifest groups are applied to the cluster emulator exactly as on EKS (server-side
apply through the kubernetes client); the controllers the helm releases would install are
played by the emulator (the Karpenter release contributes its CRDs, as its chart does); the
jupyterhub release is what its chart renders, the hub and proxy as pods that run the real
JupyterHub and configurable-http-proxy (:mod:`.hub`), with the local OpenID Connect provider
(:mod:`.oidc`, a host service) for cognito / oauth.

The add-ons' own workloads (:mod:`.addons`) are applied too, so ``kubectl get pods -A`` shows
what it shows on EKS: first those of the EKS add-ons the local AWS lists for the deployment's
cluster (created by Terraform before the platform install, as on EKS; none when the cluster
is not there), then, at each release's step, the workloads its chart renders with the
release's values. Their pods run the kubelet's placeholder and carry an annotation naming the
emulator controller that does the add-on's job. Everything is server-side applied, so a
second install changes nothing; the objects go with their namespace or with the cluster.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import yaml

from eks_hub_sandbox.errors import SandboxError
from eks_hub_runbook.platform import charts, values
from eks_hub_runbook.platform.context import InstallContext
from eks_hub_runbook.platform.install import StepStatus, apply_step, api_client, apply_objects, karpenter_crds
from . import hub, is_up, kubeconfig_path, oidc
from .addons import workloads

ADDON_NAMESPACE = "kube-system"
BUILT_BY_OWN_MODULE = {"jupyterhub": "eks_hub_sandbox.hub_chart"}  # releases whose objects a module here builds


def installed_addons(context: InstallContext) -> dict[str, dict]:
    """The EKS add-ons the local AWS lists for the deployment's cluster (``DescribeAddon`` of
    each, by name); empty when that cluster does not exist there (a platform installed
    without Terraform, as some tests do)."""
    from botocore.exceptions import ClientError

    from eks_hub_runbook.aws import session

    eks = session.client("eks", context.params.target, context.params.region)
    cluster = context.outputs["cluster_name"]
    try:
        names = [name for page in eks.get_paginator("list_addons").paginate(clusterName=cluster)
                 for name in page.get("addons") or []]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return {}
        raise
    return {name: eks.describe_addon(clusterName=cluster, addonName=name)["addon"] for name in names}


def addon_objects(addons: Mapping[str, Mapping[str, Any]], region: str) -> tuple[list[dict], list[str], list[str]]:
    """(objects, "name version" of each add-on built, add-ons the data file has no workloads for)
    for the installed ``addons`` (as :func:`installed_addons` returns them)."""
    objects: list[dict] = []
    built, unknown = [], []
    for name, info in sorted(addons.items()):
        if name not in workloads.addons():
            unknown.append(name)
            continue
        configuration = yaml.safe_load(info.get("configurationValues") or "") or {}
        objects += workloads.addon_objects(name, info["addonVersion"], region, configuration)
        built.append(f"{name} {info['addonVersion']}")
    return objects, built, unknown


def addon_step(client, context: InstallContext) -> StepStatus:
    """Apply the EKS add-ons' workloads; one row (step 0: Terraform installed the add-ons before the plan)."""
    started = time.monotonic()
    cluster = context.outputs["cluster_name"]
    objects, built, unknown = addon_objects(installed_addons(context), context.params.region)
    if not objects:
        detail = f"no EKS add-ons of cluster {cluster} in the local AWS" + (f" with workloads here ({', '.join(unknown)} has none)"
                                                                             if unknown else "")
        return StepStatus(0, "add-ons", "eks add-ons", ADDON_NAMESPACE, status="skipped", detail=detail)
    row = apply_step(client, 0, "eks add-ons", objects, kind="add-ons")
    row.namespace, row.seconds = ADDON_NAMESPACE, round(time.monotonic() - started, 1)
    row.detail = f"{', '.join(built)}: workloads {row.detail}, controllers emulated" + (
        f"; no workloads known for {', '.join(unknown)}" if unknown else "")
    return row


def release_step(client, index: int, step: charts.Release, context: InstallContext) -> StepStatus:
    """One helm release on the sandbox: the objects its chart renders that the sandbox keeps (the
    Karpenter CRDs, the workloads of :mod:`.addons`), server-side applied; its controller is
    played by the emulator. A release the data file leaves out is reported with the reason."""
    objects = karpenter_crds() if step.name == "karpenter" else []
    if step.name in workloads.releases():
        objects += workloads.release_objects(step.name, step.version, step.namespace, context.release_values(step))
    if not objects:
        reason = workloads.not_modelled().get(step.name, "no workloads for it in eks_hub_sandbox/addons/workloads.yaml")
        return StepStatus(index, "release", step.name, step.namespace, step.version, "skipped", detail=reason)
    row = apply_step(client, index, step.name, objects, kind="release")
    what = "CRDs and workloads" if step.name == "karpenter" else "workloads"
    row.namespace, row.version = step.namespace, step.version
    row.detail = f"{what} {row.detail}; controller emulated"
    return row


def install(context: InstallContext) -> list[dict]:
    """The same manifests on the sandbox cluster, then the hub release (and the OIDC provider)."""
    if not kubeconfig_path().exists() or not is_up("kube"):
        raise SandboxError("the sandbox cluster is not running: run `runbook sandbox up` first")
    params, outputs = context.params, context.outputs
    client = api_client(kubeconfig_path())
    rows: list[StepStatus] = [addon_step(client, context)]  # step 0, so rows[i] is step i
    for index, step in enumerate(context.plan(), start=1):
        if isinstance(step, charts.ManifestStep):
            rows.append(apply_step(client, index, step.group, context.manifests(step.group)))
        elif step.name != "jupyterhub":
            rows.append(release_step(client, index, step, context))
    hub_url = hub.url()
    endpoints = None
    secret = context.oauth_secret()
    started = time.monotonic()
    if secret:
        apply_objects(client, [secret])
        oidc.start(values.oauth_client_id(params, outputs), values.client_secret(params, outputs),
                   f"{hub_url}/hub/oauth_callback")
        endpoints = oidc.endpoints()
        rows.append(StepStatus(len(rows), "service", "oidc", status="started", attempts=1,
                               seconds=round(time.monotonic() - started, 1), detail=oidc.url()))
    hub_values = context.hub_values(hub_url=hub_url, endpoints=endpoints)
    started = time.monotonic()
    hub.start(hub_values)
    rows.append(StepStatus(len(rows), "release", "jupyterhub", "jupyterhub", charts.release("jupyterhub").version,
                           "started", 1, round(time.monotonic() - started, 1),
                           detail=f"hub and proxy pods rolled out; {hub_url}"))
    return [row.as_row() for row in rows]

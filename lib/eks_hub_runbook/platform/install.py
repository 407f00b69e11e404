"""Install the platform: the same plan (``terraform/charts.yaml``) on EKS and in the sandbox.

``install(params, outputs, kubeconfig)`` returns status rows (one per step) for a table.

- ``aws``: each Helm release with the helm CLI, one at a time in plan order,
  ``upgrade --install --wait --timeout`` with bounded retries; a release whose chart
  version and values are already deployed is left alone, so a second run changes
  nothing. Manifest groups are applied with the kubernetes client (server-side apply).
- ``sandbox``: the same manifest groups applied to the cluster emulator the same way;
  the controllers the releases would install are played by the emulator (the Karpenter
  release contributes its CRDs, carried in ``third_party/``); the chart's
  ``proxy-public`` Service and hub database PVC are created as the chart would; then the
  hub runs as a real JupyterHub process (:mod:`.sandbox_hub`), with the local OpenID
  Connect provider (:mod:`.oidc`) for cognito / oauth.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import third_party
from ..errors import PlatformError
from ..params import DeploymentParameters
from ..paths import deployment_dir
from . import charts, manifests, outputs as tf_outputs, values
from .templating import load_documents

FIELD_MANAGER = "eks-hub-runbook"
HELM_TIMEOUT = "15m"
HELM_ATTEMPTS = 3


@dataclass
class StepStatus:
    """One row of the install table."""

    step: int
    kind: str  # release | manifests | service
    name: str
    namespace: str = ""
    version: str = ""
    status: str = ""  # installed | upgraded | unchanged | applied | emulated | started | failed
    attempts: int = 0
    seconds: float = 0.0
    detail: str = ""

    def as_row(self) -> dict:
        return asdict(self)


# --- helm ------------------------------------------------------------------------------

def helm_binary() -> str:
    """Path of the helm CLI, or a PlatformError saying how to get it."""
    path = shutil.which("helm")
    if not path:
        raise PlatformError("helm is not installed or not on PATH: install Helm 3 (https://helm.sh/docs/intro/install/) "
                            "and re-run 00_prerequisites")
    return path


def helm_upgrade_argv(release: charts.Release, values_file: Path, kubeconfig: Path, helm: str = "helm",
                      timeout: str = HELM_TIMEOUT) -> list[str]:
    """``helm upgrade --install`` for one release, pinned, waiting, namespaced."""
    argv = [helm, "upgrade", "--install", release.name, release.chart, "--version", release.version,
            "--namespace", release.namespace, "--create-namespace", "--values", str(values_file),
            "--wait", "--timeout", timeout, "--kubeconfig", str(kubeconfig)]
    if release.repo:
        argv += ["--repo", release.repo]
    return argv


def helm_deployed_argv(release: charts.Release, kubeconfig: Path, helm: str = "helm") -> tuple[list[str], list[str]]:
    """``helm list`` (chart, status) and ``helm get values`` for a release, both as JSON."""
    common = ["--namespace", release.namespace, "--kubeconfig", str(kubeconfig), "--output", "json"]
    return ([helm, "list", "--filter", f"^{release.name}$", *common],
            [helm, "get", "values", release.name, *common])


Runner = Callable[[list[str]], subprocess.CompletedProcess]


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _deployed(release: charts.Release, kubeconfig: Path, helm: str, run: Runner) -> tuple[bool, dict | None]:
    """(exists, values) when the release is deployed at the pinned chart version."""
    list_argv, values_argv = helm_deployed_argv(release, kubeconfig, helm)
    listed = run(list_argv)
    if listed.returncode != 0:
        return False, None
    rows = json.loads(listed.stdout or "[]")
    if not rows:
        return False, None
    row = rows[0]
    if row.get("status") != "deployed" or not str(row.get("chart", "")).endswith(f"-{release.version}"):
        return True, None
    got = run(values_argv)
    return True, (json.loads(got.stdout or "null") or {}) if got.returncode == 0 else None


def helm_release(release: charts.Release, release_values: Mapping[str, Any], kubeconfig: Path, step: int, *,
                 helm: str = "helm", run: Runner = _run, attempts: int = HELM_ATTEMPTS, backoff: float = 10.0,
                 values_dir: Path | None = None) -> StepStatus:
    """Install or upgrade one release, unless exactly this version and these values are deployed."""
    started = time.monotonic()
    row = StepStatus(step, "release", release.name, release.namespace, release.version)
    exists, current = _deployed(release, kubeconfig, helm, run)
    if current is not None and current == json.loads(json.dumps(dict(release_values))):
        row.status, row.seconds = "unchanged", round(time.monotonic() - started, 1)
        return row
    values_file = values.write_values(release_values, (values_dir or Path(".")) / f"{release.name}.values.yaml")
    argv = helm_upgrade_argv(release, values_file, kubeconfig, helm)
    last = ""
    for attempt in range(1, attempts + 1):
        row.attempts = attempt
        result = run(argv)
        if result.returncode == 0:
            row.status = "upgraded" if exists else "installed"
            row.seconds = round(time.monotonic() - started, 1)
            return row
        last = "\n".join((result.stderr or result.stdout or "").strip().splitlines()[-5:])
        if attempt < attempts:
            time.sleep(backoff * attempt)
    raise PlatformError(f"helm could not install {release.name} {release.version} after {attempts} attempts:\n{last}\n"
                        f"Re-run the install: finished releases are skipped.")


# --- manifests ---------------------------------------------------------------------------

def api_client(kubeconfig: Path):
    """A kubernetes ApiClient for a kubeconfig file."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig))


def apply_objects(client, objects: list[dict]) -> tuple[int, int]:
    """Server-side apply each object (in order); returns (changed, unchanged)."""
    from kubernetes import dynamic
    from kubernetes.client.exceptions import ApiException

    dyn = dynamic.DynamicClient(client)
    changed = unchanged = 0
    for obj in objects:
        meta = obj["metadata"]
        try:
            resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            try:
                before = resource.get(name=meta["name"], namespace=meta.get("namespace")).metadata.resourceVersion
            except ApiException as exc:
                if exc.status != 404:
                    raise
                before = None
            after = resource.server_side_apply(body=obj, name=meta["name"], namespace=meta.get("namespace"),
                                               field_manager=FIELD_MANAGER, force_conflicts=True).metadata.resourceVersion
        except (ApiException, dynamic.exceptions.ResourceNotFoundError, dynamic.exceptions.DynamicApiError) as exc:
            status = getattr(exc, "status", "")
            raise PlatformError(f"could not apply {manifests.describe(obj)}: {type(exc).__name__} {status}".strip()) from None
        if before == after:
            unchanged += 1
        else:
            changed += 1
    return changed, unchanged


def _apply_step(client, step: int, name: str, objects: list[dict], kind: str = "manifests") -> StepStatus:
    started = time.monotonic()
    changed, unchanged = apply_objects(client, objects)
    return StepStatus(step, kind, name, status="applied" if changed else "unchanged", attempts=1,
                      seconds=round(time.monotonic() - started, 1), detail=f"{changed} changed, {unchanged} unchanged")


# --- the two targets -------------------------------------------------------------------

def install(params: DeploymentParameters, outputs: Mapping[str, Any], kubeconfig: Path | None = None) -> list[dict]:
    """Install the platform on ``params.target``; returns one status row per step."""
    outputs = tf_outputs.resolve(params, outputs)
    if params.target == "aws":
        if kubeconfig is None:
            raise PlatformError("installing on AWS needs the cluster's kubeconfig (03_verify / kube.kubeconfig builds it)")
        return install_aws(params, outputs, kubeconfig)
    return install_sandbox(params, outputs)


def install_aws(params: DeploymentParameters, outputs: Mapping[str, Any], kubeconfig: Path, *,
                run: Runner = _run, backoff: float = 10.0) -> list[dict]:
    """Helm releases and manifests on EKS, in plan order."""
    helm = helm_binary()
    client = api_client(kubeconfig)
    values_dir = deployment_dir(params.deployment) / "helm"
    rows: list[StepStatus] = []
    for index, step in enumerate(charts.plan(params), start=1):
        if isinstance(step, charts.ManifestStep):
            rows.append(_apply_step(client, index, step.group, manifests.render_group(step.group, params, outputs)))
            continue
        if step.name == "jupyterhub":
            secret = manifests.oauth_client_secret(params, outputs)
            if secret:
                apply_objects(client, [secret])
            release_values = values.jupyterhub_values(params, outputs)
        else:
            release_values = values.release_values(step.values, params, outputs)
        rows.append(helm_release(step, release_values, kubeconfig, index, helm=helm, run=run, backoff=backoff,
                                 values_dir=values_dir))
    return [row.as_row() for row in rows]


def karpenter_crds() -> list[dict]:
    """The CRDs the Karpenter chart installs (v1.14.1, carried in ``third_party/``)."""
    folder = third_party.folder(third_party.KARPENTER)
    return [doc for path in sorted(folder.glob("*.yaml")) for doc in load_documents(path)]


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


def install_sandbox(params: DeploymentParameters, outputs: Mapping[str, Any]) -> list[dict]:
    """The same manifests on the sandbox cluster, then the hub (and its OIDC provider) as processes."""
    from .. import sandbox
    from ..errors import SandboxError
    from . import oidc, sandbox_hub

    if not sandbox.kubeconfig_path().exists() or not sandbox.is_up("kube"):
        raise SandboxError("the sandbox cluster is not running: run `runbook sandbox up` first")
    client = api_client(sandbox.kubeconfig_path())
    rows: list[StepStatus] = []
    for index, step in enumerate(charts.plan(params), start=1):
        if isinstance(step, charts.ManifestStep):
            rows.append(_apply_step(client, index, step.group, manifests.render_group(step.group, params, outputs)))
        elif step.name == "karpenter":
            row = _apply_step(client, index, step.name, karpenter_crds(), kind="release")
            row.namespace, row.version, row.detail = step.namespace, step.version, "CRDs applied; controller emulated"
            rows.append(row)
        elif step.name != "jupyterhub":
            rows.append(StepStatus(index, "release", step.name, step.namespace, step.version, "emulated",
                                   detail="played by the sandbox cluster"))
    hub_url = sandbox_hub.url()
    endpoints = None
    secret = manifests.oauth_client_secret(params, outputs)
    started = time.monotonic()
    if secret:
        apply_objects(client, [secret])
        oidc.start(values.oauth_client_id(params, outputs), values.client_secret(params, outputs),
                   f"{hub_url}/hub/oauth_callback")
        endpoints = oidc.endpoints()
        rows.append(StepStatus(len(rows) + 1, "service", "oidc", status="started", attempts=1,
                               seconds=round(time.monotonic() - started, 1), detail=oidc.url()))
    hub_values = values.jupyterhub_values(params, outputs, hub_url=hub_url, endpoints=endpoints)
    apply_objects(client, chart_objects(hub_values))
    started = time.monotonic()
    sandbox_hub.start(hub_values)
    rows.append(StepStatus(len(rows) + 1, "release", "jupyterhub", "jupyterhub", charts.release("jupyterhub").version,
                           "started", 1, round(time.monotonic() - started, 1), detail=hub_url))
    return [row.as_row() for row in rows]

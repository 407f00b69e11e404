"""Install the platform: the same plan (``terraform/charts.yaml``) on EKS and in the sandbox.

``install(params, outputs, kubeconfig)`` returns status rows (one per step) for a table.

The target installs it (:meth:`Target.install_platform <eks_hub_runbook.targets.base.Target.install_platform>`).
On EKS (``install_helm``): each Helm release with the helm CLI, one at a time in plan
order, ``upgrade --install --wait --timeout`` with bounded retries; a release whose chart
version and values are already deployed is left alone, so a second run changes nothing.
Manifest groups are applied with the kubernetes client (server-side apply,
:func:`apply_objects`), which a stand-in target uses for the same manifests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import third_party
from ..errors import PlatformError
from ..params import DeploymentParameters
from ..paths import deployment_dir
from . import charts, manifests, values
from .templating import load_documents

if TYPE_CHECKING:  # pragma: no cover
    from .context import InstallContext

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
    status: str = ""  # installed | upgraded | unchanged | applied | skipped | started | failed
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


def apply_step(client, step: int, name: str, objects: list[dict], kind: str = "manifests") -> StepStatus:
    """Apply one group of objects as one row of the install table (``applied`` or ``unchanged``)."""
    started = time.monotonic()
    changed, unchanged = apply_objects(client, objects)
    return StepStatus(step, kind, name, status="applied" if changed else "unchanged", attempts=1,
                      seconds=round(time.monotonic() - started, 1), detail=f"{changed} changed, {unchanged} unchanged")


# --- the install ------------------------------------------------------------------------

def install(params: DeploymentParameters, outputs: Mapping[str, Any], kubeconfig: Path | None = None) -> list[dict]:
    """Install the platform on the deployment's target; returns one status row per step.

    ``kubeconfig``: access to the deployment's cluster (EKS needs it; a target that brings
    its own cluster may do without)."""
    from .. import targets
    from .context import build

    return targets.of(params).install_platform(build(params, outputs), kubeconfig)


def install_helm(context: InstallContext, kubeconfig: Path, *, run: Runner = _run, backoff: float = 10.0) -> list[dict]:
    """Helm releases and manifests on EKS, in plan order (the ``aws`` target's install)."""
    helm = helm_binary()
    client = api_client(kubeconfig)
    values_dir = deployment_dir(context.params.deployment) / "helm"
    rows: list[StepStatus] = []
    for index, step in enumerate(context.plan(), start=1):
        if isinstance(step, charts.ManifestStep):
            rows.append(apply_step(client, index, step.group, context.manifests(step.group)))
            continue
        if step.name == "jupyterhub":
            secret = context.oauth_secret()
            if secret:
                apply_objects(client, [secret])
            release_values = context.hub_values()
        else:
            release_values = context.release_values(step)
        rows.append(helm_release(step, release_values, kubeconfig, index, helm=helm, run=run, backoff=backoff,
                                 values_dir=values_dir))
    return [row.as_row() for row in rows]


def karpenter_crds() -> list[dict]:
    """The CRDs the Karpenter chart installs (v1.14.1, carried in ``third_party/``)."""
    folder = third_party.folder(third_party.KARPENTER)
    return [doc for path in sorted(folder.glob("*.yaml")) for doc in load_documents(path)]

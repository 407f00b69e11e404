"""The sandbox's JupyterHub: the chart's release on the sandbox cluster, from the same values.

``start(values)`` applies what the z2jh chart renders (:mod:`.hub_chart`): the ``hub`` and
``proxy`` Deployments, whose pods the kubelet runs as real JupyterHub (with KubeSpawner) and
configurable-http-proxy processes, their Services, the ``hub`` Secret and ConfigMap and the
``hub-db-dir`` claim that holds the hub's database. It waits for both rollouts and for the hub
to answer at its public URL: ``proxy-public`` as the sandbox's kube-proxy serves it on
127.0.0.1 (:func:`url`). A change of values rolls the hub pod (the Secret's checksum is in its
template, as in the chart); the cookie secret and the proxy token are made once and kept.

:func:`configure` runs inside the hub pod (its ``jupyterhub_config.py`` calls it): the chart's
translation of the values (:func:`.hubconfig.hub_config`) plus the addresses a cluster would
give through DNS, taken from the service environment variables.

The idle culler runs as in the chart: ``cull.enabled`` makes the hub start the real
``jupyterhub-idle-culler`` as its managed service (same arguments, same role and scopes,
:func:`.hubconfig.idle_culler`); only its ``--url`` names the pod's address, where the hub
listens here, instead of localhost.

``hub.extraConfig`` snippets run as in the chart (:func:`run_extra_config`).

Not translated (no sandbox equivalent): network policies, image pullers.
"""

from __future__ import annotations

import base64
import os
import secrets as tokens
import time
from pathlib import Path
from typing import Any, Mapping

import requests

from eks_hub_runbook.platform import hubconfig
from eks_hub_runbook.platform.install import api_client, apply_objects
from eks_hub_sandbox.errors import SandboxError
from . import hub_chart, kubeconfig_path, services

NAMESPACE = hub_chart.NAMESPACE
PUBLIC_PORT = "hub"  # the reserved port name of the hub's public URL
COMPONENTS = ("proxy", "hub")


def url() -> str:
    """The hub's public URL (``proxy-public`` on 127.0.0.1), the one people open in a browser."""
    return f"http://{services.LOOPBACK}:{services.reserved_port(PUBLIC_PORT)}"


def _existing_secret(core) -> dict[str, str]:
    from kubernetes.client.exceptions import ApiException

    try:
        secret = core.read_namespaced_secret("hub", NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def release_objects(values: Mapping[str, Any], core) -> list[dict]:
    """The chart's objects for ``values``, keeping the cookie secret and proxy token already there."""
    existing = _existing_secret(core)
    data = hub_chart.secret_data(
        values, proxy_token=existing.get(hub_chart.PROXY_TOKEN_KEY) or tokens.token_hex(32),
        cookie_secret=existing.get(hub_chart.COOKIE_SECRET_KEY) or tokens.token_hex(32))
    return hub_chart.objects(hubconfig.effective_values(values), host_port=services.reserved_port(PUBLIC_PORT),
                             secrets=data)


def start(values: Mapping[str, Any], ready_timeout: float = 240.0) -> None:
    """Install (or upgrade) the hub release with ``values``; returns when the hub answers at :func:`url`."""
    from kubernetes import client as k8s

    if not kubeconfig_path().exists():
        raise SandboxError("the sandbox cluster is not running (no kubeconfig): run `runbook sandbox up` first")
    api = api_client(kubeconfig_path())
    apply_objects(api, release_objects(values, k8s.CoreV1Api(api)))
    deadline = time.monotonic() + ready_timeout
    for name in COMPONENTS:
        wait_rollout(api, name, deadline)
    wait_ready(url(), timeout=max(deadline - time.monotonic(), 10.0))


def _rolled_out(deployment) -> bool:
    status, spec = deployment.status, deployment.spec
    return bool(status and (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
                and (status.updated_replicas or 0) == spec.replicas and (status.available_replicas or 0) == spec.replicas
                and (status.replicas or 0) == spec.replicas)


def wait_rollout(api, name: str, deadline: float) -> None:
    """Wait until Deployment ``name`` runs its current template everywhere (``kubectl rollout status``)."""
    from kubernetes import client as k8s

    apps = k8s.AppsV1Api(api)
    while time.monotonic() < deadline:
        if _rolled_out(apps.read_namespaced_deployment(name, NAMESPACE)):
            return
        time.sleep(0.3)
    raise SandboxError(f"deployment {NAMESPACE}/{name} did not roll out in time: {pod_problem(api, name)}; "
                       f"see `kubectl describe pod -n {NAMESPACE} -l component={name}` and `kubectl logs`")


def pod_problem(api, component: str) -> str:
    """What the component's pods are waiting for, in a line (their phase and last warning)."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(api)
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"component={component}").items
    if not pods:
        return "no pod"
    parts = []
    for pod in pods:
        waiting = [s.state.waiting.reason for s in pod.status.container_statuses or [] if s.state and s.state.waiting]
        events = core.list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.name={pod.metadata.name}").items
        warning = next((f"{e.reason}: {e.message}" for e in reversed(events) if e.type == "Warning"), "")
        parts.append(f"{pod.metadata.name} {pod.status.phase}" + (f" ({', '.join(waiting)})" if waiting else "")
                     + (f", {warning}" if warning else ""))
    return "; ".join(parts)


def wait_ready(hub_url: str, timeout: float = 60.0) -> None:
    """Wait until the hub answers through its proxy."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"{hub_url}/hub/api/", timeout=5)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.3)
    raise SandboxError(f"the sandbox hub at {hub_url} did not answer within {timeout:.0f} s ({last}); "
                       f"see `kubectl logs -n {NAMESPACE} deploy/hub`")


def delete_database() -> bool:
    """Delete the hub's database claim (``hub-db-dir``) after :func:`stop`: the next start begins with
    an empty database. False when there was none (or no cluster)."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    if not kubeconfig_path().exists() or not services.status("kube").running:
        return False
    try:
        k8s.CoreV1Api(api_client(kubeconfig_path())).delete_namespaced_persistent_volume_claim("hub-db-dir", NAMESPACE)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return False
    return True


def stop(timeout: float = 60.0) -> bool:
    """Remove the hub and proxy Deployments and wait for their pods to go (user servers are
    pods of their own: they stay, as on EKS; the database claim stays too). Returns True if
    there was something to remove; False also when the cluster is not running."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    if not kubeconfig_path().exists() or not services.status("kube").running:
        return False
    api = api_client(kubeconfig_path())
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    removed = False
    for name in COMPONENTS:
        try:
            apps.delete_namespaced_deployment(name, NAMESPACE, propagation_policy="Background")
            removed = True
        except ApiException as exc:
            if exc.status != 404:
                raise
    selector = f"component in ({','.join(COMPONENTS)}),release={hub_chart.RELEASE}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and core.list_namespaced_pod(NAMESPACE, label_selector=selector).items:
        time.sleep(0.3)
    return removed


def configure(c, config_file: str) -> None:
    """Fill a JupyterHub config object ``c`` inside the hub pod (called by its ``jupyterhub_config.py``,
    which passes its own path: the ``hub`` Secret is mounted beside it)."""
    from eks_hub_runbook.platform.templating import load_yaml

    secret_dir = Path(config_file).parent / "secret"
    values = hubconfig.effective_values(load_yaml(secret_dir / "values.yaml") or {})
    env = os.environ
    own_url = f"http://{env['POD_IP']}:{hub_chart.HUB_PORT}"  # the hub listens on the pod's address
    c.merge(hubconfig.hub_config(values, namespace=env.get("POD_NAMESPACE", NAMESPACE), hub_url=own_url))
    c.JupyterHub.hub_bind_url = own_url
    c.JupyterHub.hub_connect_url = f"http://{env['HUB_SERVICE_HOST']}:{env['HUB_SERVICE_PORT']}"
    c.ConfigurableHTTPProxy.api_url = f"http://{env['PROXY_API_SERVICE_HOST']}:{env['PROXY_API_SERVICE_PORT']}"
    c.ConfigurableHTTPProxy.should_start = False
    c.JupyterHub.cookie_secret = bytes.fromhex((secret_dir / hub_chart.COOKIE_SECRET_KEY).read_text().strip())
    pvc = (values["hub"].get("db") or {}).get("type", "sqlite-pvc") == "sqlite-pvc"
    c.JupyterHub.db_url = "sqlite:///jupyterhub.sqlite" if pvc else "sqlite://"  # in /srv/jupyterhub, the claim
    c.KubeSpawner.k8s_api_request_timeout = 10
    run_extra_config(c, values)


def run_extra_config(c, values: Mapping[str, Any]) -> list[str]:
    """Run ``hub.extraConfig``'s snippets as the chart's ``jupyterhub_config.py`` does: each one in
    key order, with ``c`` and ``get_config(dotted_key, default)`` (a value of the values); the keys run."""
    snippets = sorted((hubconfig._get(values, "hub.extraConfig") or {}).items())
    for key, code in snippets:
        exec(compile(code, f"<hub.extraConfig.{key}>", "exec"),
             {"c": c, "get_config": lambda dotted, default=None: hubconfig._get(values, dotted, default),
              "__name__": "jupyterhub_config"})
    return [key for key, _ in snippets]

"""04's idle-culler demo (option ``wait_for_cull``): an idle server stopped, its node removed.

The hub runs ``jupyterhub-idle-culler`` (the values' ``cull`` block, from 02's
``cull_timeout_minutes``): a server nobody used for the timeout is stopped, KubeSpawner
deletes its pod, and once the GPU node is empty Karpenter removes it after the pool's
``consolidateAfter``. :func:`watch_cull` leaves one user's server idle, touches nothing,
and reports when each of the three happened, in seconds since the server was last active.

The timeout is the deployment's (its recorded parameters, rendered by the same function
as the values); the consolidation delay is read from the node's NodePool on the cluster.
When both together exceed the wait allowed, nothing is waited for and the rows say why and
what to change.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from .errors import KubeError
from .hub import HubClient
from .params import DeploymentParameters
from .platform import values as platform_values

ProgressCallback = Callable[[str, str, str], None]
EVENTS = ("server stopped by the idle culler", "pod deleted", "GPU node removed by Karpenter")
SLACK_SECONDS = 30.0  # the hub's and Karpenter's own reaction time on top of the configured delays
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration_seconds(text: str) -> float | None:
    """A Kubernetes / Go duration (``5m``, ``1h30m``, ``30s``) in seconds; None for ``Never``."""
    text = str(text).strip()
    if text == "Never":
        return None
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration such as 30s, 5m or 1h30m")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


@dataclass(frozen=True)
class CullPlan:
    """What the deployment will do with an idle server on ``node`` (of NodePool ``pool``)."""

    timeout: int | None  # the culler's --timeout, s (None: culling off)
    every: int | None  # its --cull-every, s
    pool: str
    consolidate_after: float | None  # the pool's consolidateAfter, s (None: Never)

    def expected_seconds(self) -> float | None:
        """The longest the three events should take from the last activity (None: never)."""
        if self.timeout is None or self.consolidate_after is None:
            return None
        return self.timeout + (self.every or 0) + self.consolidate_after + SLACK_SECONDS

    def blocker(self, wait_seconds: float) -> str:
        """Why watching within ``wait_seconds`` cannot work, with the fix; "" when it can."""
        if self.timeout is None:
            return ("the idle culler is off (cull_timeout_minutes 0): re-run 02_deploy with "
                    "-p cull_timeout_minutes 0.5 to watch it here")
        if self.consolidate_after is None:
            return f"NodePool {self.pool} never consolidates (consolidateAfter Never): its nodes stay when empty"
        expected = self.expected_seconds()
        if expected > wait_seconds:
            return (f"the culler stops a server after {self.timeout} s idle (checking every {self.every} s) and "
                    f"Karpenter removes an empty {self.pool} node after {self.consolidate_after:g} s: up to "
                    f"{expected / 60:.1f} min, more than the {wait_seconds / 60:.1f} min allowed; re-run 02_deploy "
                    "with a shorter -p cull_timeout_minutes (e.g. 0.5) or raise timeout_minutes")
        return ""


def plan(params: DeploymentParameters, api, node: str) -> CullPlan:
    """The deployment's cull timeout (from its parameters, as the values render it) and the
    consolidation delay of ``node``'s NodePool (read from the cluster)."""
    from kubernetes import client

    culling = platform_values.cull_variables(params)
    labels = client.CoreV1Api(api).read_node(node).metadata.labels or {}
    pool = labels.get("karpenter.sh/nodepool", "")
    if not pool:
        raise KubeError(f"node {node} belongs to no Karpenter NodePool: nothing would remove it when empty")
    nodepool = client.CustomObjectsApi(api).get_cluster_custom_object("karpenter.sh", "v1", "nodepools", pool)
    disruption = (nodepool.get("spec") or {}).get("disruption") or {}
    return CullPlan(culling["cull_timeout"], culling["cull_every"], pool,
                    duration_seconds(disruption.get("consolidateAfter", "0s")))


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


def _server_pod(api, namespace: str, user: str):
    from kubernetes import client

    from .gpu_sharing import USER_POD_SELECTOR, USERNAME_LABEL

    for pod in client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=USER_POD_SELECTOR).items:
        if (pod.metadata.annotations or {}).get(USERNAME_LABEL) == user:
            return pod
    return None


def _node_exists(api, name: str) -> bool:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CoreV1Api(api).read_node(name)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def _row(event: str, status: str, seconds: float | None = None, detail: str = "") -> dict[str, Any]:
    return {"event": event, "seconds since idle": None if seconds is None else round(seconds, 1),
            "status": status, "detail": detail}


OFF_NOTE = ("not watched: wait_for_cull is False (set it, with a short cull_timeout_minutes in 02, "
            "e.g. 0.5, to watch the culler stop an idle server and Karpenter remove its node)")


def watch_cull(
    demo_or_client: Any,
    api,
    user: str | None = None,
    *,
    params: DeploymentParameters | None = None,
    timeout: float = 900.0,
    progress: ProgressCallback | None = None,
    enabled: bool = True,
    interval: float = 1.0,
) -> list[dict[str, Any]]:
    """Leave ``user``'s server idle and wait for the idle culler to stop it, for its pod to go
    and for Karpenter to remove its (then empty) node; rows ``event``, ``seconds since idle``,
    ``status`` (pass / fail / skip), ``detail``.

    ``demo_or_client``: 04's :class:`gpu_sharing.Demo` (``user`` defaults to its first user; the
    other demo servers are stopped first, or the node would not empty) or a logged-in
    :class:`HubClient` with ``params``. ``timeout``: the longest wait, s; when the deployment's
    cull timeout plus the pool's consolidation delay is longer, nothing is waited for and one
    ``skip`` row says why and what to change. ``enabled`` False (the option unset): one ``skip``
    row saying how to turn it on; nothing is stopped.
    """
    from .gpu_sharing import NAMESPACE, Demo

    if not enabled:
        return [_row(EVENTS[0], "skip", detail=OFF_NOTE)]
    report = progress or (lambda *_: None)
    if isinstance(demo_or_client, Demo):
        demo = demo_or_client
        params = params or demo.params
        user = user or demo.users()[0]
        hub = demo.client(user)
        others = [s for s in demo.servers if s.user != user]
    elif isinstance(demo_or_client, HubClient):
        if params is None or user is None:
            raise TypeError("watch_cull with a HubClient needs params= and user=")
        hub, others = demo_or_client, []
    else:
        raise TypeError(f"watch_cull takes a gpu_sharing.Demo or a HubClient, not {type(demo_or_client).__name__}")

    server = hub.server()
    pod = _server_pod(api, NAMESPACE, user)
    if not server or pod is None or not pod.spec.node_name:
        return [_row(EVENTS[0], "skip", detail=f"{user} has no running server to leave idle: start it first")]
    node = pod.spec.node_name
    cull = plan(params, api, node)
    problem = cull.blocker(timeout)
    if problem:
        return [_row(EVENTS[0], "skip", detail=problem)]

    for other in others:  # the node empties only when nobody else runs on it
        report(f"stop {other.user}'s server", "running", "so that the node can empty")
        other.client.stop()
        report(f"stop {other.user}'s server", "done", "")
    idle_since = _parse_time(server.get("last_activity")) or time.time()
    step = f"{user}'s server idle on {node}"
    report(step, "running", f"culler timeout {cull.timeout} s, {cull.pool} consolidates after {cull.consolidate_after:g} s")
    pending = {EVENTS[0]: lambda: hub.server() is None,
               EVENTS[1]: lambda: _server_pod(api, NAMESPACE, user) is None,
               EVENTS[2]: lambda: not _node_exists(api, node)}
    details = {EVENTS[0]: f"timeout {cull.timeout} s, checked every {cull.every} s",
               EVENTS[1]: pod.metadata.name,
               EVENTS[2]: f"{node} ({cull.pool}, consolidateAfter {cull.consolidate_after:g} s)"}
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(EVENTS) and time.monotonic() < deadline:
        for event in EVENTS:
            if event not in seen and pending[event]():
                seen[event] = time.time() - idle_since
                report(step, "running", f"{event} after {seen[event]:.0f} s")
        if len(seen) < len(EVENTS):
            time.sleep(interval)
    report(step, "done" if len(seen) == len(EVENTS) else "failed", "")
    return [_row(event, "pass", seen[event], details[event]) if event in seen
            else _row(event, "fail", None, f"not within {timeout:.0f} s ({details[event]})") for event in EVENTS]

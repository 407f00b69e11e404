"""The ReplicaSet controller: keeps ``spec.replicas`` active pods from the template
(named ``<rs>-<5 random characters>``), replaces pods that go, deletes the least useful
ones first when scaling down, and reports replicas / fullyLabeledReplicas /
readyReplicas / availableReplicas in the status."""

from __future__ import annotations

from datetime import datetime, timezone

from .keyed import PODS, KeyedController
from .pods import controlled_by, deletion_order, is_active, is_ready, available_in, pod_from_template

REPLICASETS = ("apps", "replicasets")
COMPONENT = "replicaset-controller"
BURST = 500  # the most pods one sync creates, as upstream's burst limit


def replica_set_status(rs: dict, pods: list[dict], at: datetime | None = None) -> tuple[dict, float | None]:
    """The status of a ReplicaSet over the pods it controls, and the seconds until a ready
    pod becomes available (minReadySeconds) when one is waiting, else None."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = spec.get("minReadySeconds") or 0
    active = [p for p in pods if is_active(p)]
    fully = sum(1 for p in active if all((p["metadata"].get("labels") or {}).get(k) == v
                                         for k, v in template_labels.items()))
    ready = sum(1 for p in active if is_ready(p))
    available, wait = 0, None
    for pod in active:
        remaining = available_in(pod, min_ready, at)
        if remaining == 0.0:
            available += 1
        elif remaining is not None:
            wait = remaining if wait is None else min(wait, remaining)
    status: dict = {"replicas": len(active)}
    for field, value in (("fullyLabeledReplicas", fully), ("readyReplicas", ready), ("availableReplicas", available),
                         ("observedGeneration", rs["metadata"].get("generation"))):
        if value:
            status[field] = value
    conditions = [c for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    if conditions:
        status["conditions"] = conditions
    return status, wait


class ReplicaSets(KeyedController):
    """ReplicaSets -> pods."""

    name = "replicaset-controller"
    primary = REPLICASETS
    kind = "ReplicaSet"
    watches = (REPLICASETS, PODS)

    def route(self, key, change) -> None:
        if key == REPLICASETS:
            meta = change.obj["metadata"]
            self.mark(meta.get("namespace") or "", meta["name"])
            return
        self.mark_owner(change.old)
        self.mark_owner(change.obj)
        self.mark_adopters(change)

    def sync(self, rs: dict) -> None:
        spec = rs.get("spec") or {}
        pods = self.claim(PODS, rs, spec.get("selector") or {})
        if not rs["metadata"].get("deletionTimestamp"):
            if self._manage(rs, [p for p in pods if is_active(p)]):
                namespace = rs["metadata"]["namespace"]
                pods = [p for p in self.cluster.store.list(PODS, namespace) if controlled_by(p, rs)]
        status, wait = replica_set_status(rs, pods, datetime.now(timezone.utc))
        self.write_status(rs, status)
        if wait is not None:
            self.later(rs["metadata"]["namespace"], rs["metadata"]["name"], wait)

    def _manage(self, rs: dict, active: list[dict]) -> bool:
        """Create or delete pods towards ``spec.replicas``; True when anything was written."""
        spec = rs.get("spec") or {}
        diff = len(active) - int(spec.get("replicas", 1))
        if diff < 0:
            template = spec.get("template") or {}
            for _ in range(min(-diff, BURST)):
                if self.create_pod(rs, pod_from_template(template, rs), COMPONENT) is None:
                    break
            return True
        if diff > 0:
            for pod in deletion_order(active)[:diff]:
                self.delete_pod(rs, pod, COMPONENT)
            return True
        return False

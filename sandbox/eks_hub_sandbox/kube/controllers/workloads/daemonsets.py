"""The DaemonSet controller: one pod per eligible node (labels, required node affinity,
taints with the daemon tolerations added), pinned by ``metadata.name`` node affinity and
labelled ``controller-revision-hash``; nodes that come get their pod, nodes that go or stop
fitting lose it; a template change replaces pods at most ``maxUnavailable`` at a time; the
status carries the counts ``kubectl get ds`` and ``kubectl rollout status`` read."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

from . import placement
from .keyed import PODS, KeyedController
from .pods import (REVISION_HASH_LABEL, available_in, controlled_by, is_ready, is_terminal, is_terminating,
                   pod_from_template, template_hash)
from .rollout import scaled_value

DAEMONSETS = ("apps", "daemonsets")
NODES = ("", "nodes")
COMPONENT = "daemonset-controller"
GENERATION_LABEL = "pod-template-generation"


def node_changed(change) -> bool:
    """Whether a node change can change where daemon pods belong (not status heartbeats)."""
    if change.type != "MODIFIED" or change.old is None:
        return True
    old, new = change.old, change.obj
    return old["metadata"].get("labels") != new["metadata"].get("labels") or old.get("spec") != new.get("spec") or \
        old["metadata"].get("deletionTimestamp") != new["metadata"].get("deletionTimestamp")


def pods_by_node(pods: list[dict]) -> dict[str | None, list[dict]]:
    """Daemon pods grouped by their target node, oldest first (finished ones left out)."""
    grouped: dict[str | None, list[dict]] = defaultdict(list)
    for pod in sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"])):
        if not (is_terminal(pod) and is_terminating(pod)):
            grouped[placement.target_node(pod)].append(pod)
    return grouped


def daemon_set_status(ds: dict, nodes: list[dict], pods: list[dict], pod_hash: str,
                      at: datetime | None = None) -> tuple[dict, float | None]:
    """The status of a DaemonSet over the nodes and its pods, and the seconds until a ready pod
    becomes available (minReadySeconds) when one is waiting, else None."""
    template = (ds.get("spec") or {}).get("template") or {}
    min_ready = (ds.get("spec") or {}).get("minReadySeconds") or 0
    by_node = pods_by_node(pods)
    desired = current = ready = available = updated = misscheduled = 0
    wait = None
    for node in nodes:
        run, _ = placement.should_run(template, node)
        on_node = by_node.get(node["metadata"]["name"]) or []
        if not run:
            misscheduled += 1 if on_node else 0
            continue
        desired += 1
        if not on_node:
            continue
        current += 1
        pod = next((p for p in on_node if not is_terminating(p)), on_node[0])
        if is_ready(pod):
            ready += 1
        remaining = available_in(pod, min_ready, at)
        if remaining == 0.0:
            available += 1
        elif remaining is not None:
            wait = remaining if wait is None else min(wait, remaining)
        if (pod["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL) == pod_hash:
            updated += 1
    status = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
              "desiredNumberScheduled": desired, "numberReady": ready}
    for field, value in (("observedGeneration", ds["metadata"].get("generation")),
                         ("updatedNumberScheduled", updated), ("numberAvailable", available),
                         ("numberUnavailable", desired - available),
                         ("collisionCount", (ds.get("status") or {}).get("collisionCount"))):
        if value:
            status[field] = value
    return status, wait


class DaemonSets(KeyedController):
    """DaemonSets -> one pod per eligible node."""

    name = "daemonset-controller"
    primary = DAEMONSETS
    kind = "DaemonSet"
    watches = (DAEMONSETS, PODS, NODES)

    def route(self, key, change) -> None:
        if key == DAEMONSETS:
            meta = change.obj["metadata"]
            self.mark(meta.get("namespace") or "", meta["name"])
        elif key == NODES:
            if node_changed(change) and self.cluster.store.count(DAEMONSETS):
                self.mark_all()
        else:
            self.mark_owner(change.old)
            self.mark_owner(change.obj)
            self.mark_adopters(change)

    def sync(self, ds: dict) -> None:
        if ds["metadata"].get("deletionTimestamp"):
            return
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        pod_hash = template_hash(template, (ds.get("status") or {}).get("collisionCount"))
        nodes = self.cluster.store.list(NODES)
        pods = self.claim(PODS, ds, spec.get("selector") or {})
        if self._manage(ds, nodes, pods, pod_hash):
            pods = self._pods(ds)
        if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate" and \
                self._roll(ds, nodes, pods, pod_hash):
            pods = self._pods(ds)
        status, wait = daemon_set_status(ds, nodes, pods, pod_hash, datetime.now(timezone.utc))
        self.write_status(ds, status)
        if wait is not None:
            self.later(ds["metadata"]["namespace"], ds["metadata"]["name"], wait)

    def _pods(self, ds: dict) -> list[dict]:
        return [p for p in self.cluster.store.list(PODS, ds["metadata"]["namespace"]) if controlled_by(p, ds)]

    def _manage(self, ds: dict, nodes: list[dict], pods: list[dict], pod_hash: str) -> bool:
        """Create missing daemon pods, delete surplus and misplaced ones; True if anything was written."""
        template = (ds.get("spec") or {}).get("template") or {}
        by_node = pods_by_node(pods)
        wrote = False
        for node in nodes:
            name = node["metadata"]["name"]
            run, keep = placement.should_run(template, node)
            on_node = by_node.pop(name, [])
            if run and not on_node:
                self._create(ds, template, name, pod_hash)
                wrote = True
            elif keep:
                live = [p for p in on_node if not is_terminating(p)]
                for pod in live:
                    if (pod.get("status") or {}).get("phase") == "Failed":
                        self.delete_pod(ds, pod, COMPONENT)
                        wrote = True
                live = [p for p in live if (p.get("status") or {}).get("phase") != "Failed"]
                for pod in live[1:]:  # one per node: the oldest stays
                    self.delete_pod(ds, pod, COMPONENT)
                    wrote = True
            else:
                for pod in on_node:
                    if not is_terminating(pod):
                        self.delete_pod(ds, pod, COMPONENT)
                        wrote = True
        for leftovers in by_node.values():  # nodes that are gone
            for pod in leftovers:
                if not is_terminating(pod):
                    self.delete_pod(ds, pod, COMPONENT)
                    wrote = True
        return wrote

    def _create(self, ds: dict, template: dict, node_name: str, pod_hash: str) -> None:
        pod = pod_from_template(template, ds, {REVISION_HASH_LABEL: pod_hash,
                                               GENERATION_LABEL: str(ds["metadata"].get("generation") or 1)})
        pod["spec"] = placement.daemon_pod_spec(pod["spec"], node_name)
        self.create_pod(ds, pod, COMPONENT)

    def _roll(self, ds: dict, nodes: list[dict], pods: list[dict], pod_hash: str) -> bool:
        """Delete old-template pods, keeping at most ``maxUnavailable`` nodes without an available
        pod (the next sync creates their replacements once they are gone)."""
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        min_ready = spec.get("minReadySeconds") or 0
        eligible = [n["metadata"]["name"] for n in nodes if placement.should_run(template, n)[1]]
        rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
        desired = sum(1 for n in nodes if placement.should_run(template, n)[0])
        max_unavailable = max(1, scaled_value(rolling.get("maxUnavailable", 1), desired, True))
        by_node = pods_by_node(pods)
        unavailable, doomed, candidates = 0, [], []
        for name in eligible:
            if name not in by_node:
                continue
            live = [p for p in by_node[name] if not is_terminating(p)]
            new = [p for p in live if (p["metadata"].get("labels") or {}).get(REVISION_HASH_LABEL) == pod_hash]
            old = [p for p in live if p not in new]
            if len(new) > 1 or len(old) > 1:
                continue
            if bool(new) == bool(old):
                unavailable += 1
            elif new:
                unavailable += 0 if available_in(new[0], min_ready) == 0.0 else 1
            elif available_in(old[0], min_ready) != 0.0:
                doomed.append(old[0])
            elif unavailable < max_unavailable:
                candidates.append(old[0])
        doomed += candidates[:max(0, max_unavailable - unavailable)]
        for pod in doomed:
            self.delete_pod(ds, pod, COMPONENT)
        return bool(doomed)

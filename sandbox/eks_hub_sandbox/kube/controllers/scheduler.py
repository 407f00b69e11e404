"""The scheduler: binds pending pods to nodes whose allocatable resources (cpu, memory,
pods and extended resources such as ``nvidia.com/gpu``), labels (nodeSelector,
required node affinity), taints and volume topology admit them.

Among feasible nodes it prefers the one with the most free capacity after placement
(the default LeastAllocated score) plus a bonus for nodes that already hold the
pod's images. Unschedulable pods get ``PodScheduled=False`` / ``Unschedulable``
and a FailedScheduling event with the usual "0/N nodes are available: ..." message;
Karpenter reacts to exactly that condition.
"""

from __future__ import annotations

import logging
from collections import Counter
from fractions import Fraction

from .. import scheduling
from ..nodes import is_ready
from ..objects import set_condition
from .base import Controller

log = logging.getLogger(__name__)

PODS, NODES = ("", "pods"), ("", "nodes")
PVCS, PVS = ("", "persistentvolumeclaims"), ("", "persistentvolumes")
SCS = ("storage.k8s.io", "storageclasses")
SELECTED_NODE = "volume.kubernetes.io/selected-node"


def is_pending(pod: dict) -> bool:
    spec = pod.get("spec") or {}
    return not spec.get("nodeName") and not pod["metadata"].get("deletionTimestamp") \
        and spec.get("schedulerName", "default-scheduler") == "default-scheduler" \
        and (pod.get("status") or {}).get("phase", "Pending") == "Pending" \
        and not spec.get("schedulingGates")


class Scheduler(Controller):
    name = "scheduler"
    watches = (PODS, NODES, PVCS, PVS)

    def interested(self, key, change) -> bool:
        if key != PODS:
            return True
        pod = change.obj
        if change.type == "DELETED":
            return bool((pod.get("spec") or {}).get("nodeName"))
        if is_pending(pod):
            # a status write on a pod we already marked unschedulable needs no new attempt
            old = change.old
            return old is None or old.get("spec") != pod.get("spec") or \
                old["metadata"].get("labels") != pod["metadata"].get("labels")
        before = change.old
        return before is not None and not scheduling.is_terminal(before) and scheduling.is_terminal(pod)

    async def reconcile(self) -> None:
        store = self.cluster.store
        pending = store.list(PODS, predicate=is_pending)
        if not pending:
            return
        nodes = [n for n in store.list(NODES) if is_ready(n) and not (n.get("spec") or {}).get("unschedulable")
                 and not n["metadata"].get("deletionTimestamp")]
        all_nodes = store.count(NODES)
        usage: dict[str, dict[str, Fraction]] = {n["metadata"]["name"]: {} for n in nodes}
        for pod in store.list(PODS, predicate=lambda p: bool((p.get("spec") or {}).get("nodeName"))
                              and not scheduling.is_terminal(p)):
            node_name = pod["spec"]["nodeName"]
            if node_name in usage:
                scheduling.add(usage[node_name], scheduling.pod_requests(pod))
        pending.sort(key=lambda p: (-((p.get("spec") or {}).get("priority") or 0), p["metadata"]["creationTimestamp"]))
        for pod in pending:
            node, reasons = self._place(pod, nodes, usage)
            if node is not None:
                self._bind(pod, node)
                scheduling.add(usage[node["metadata"]["name"]], scheduling.pod_requests(pod))
            else:
                self._unschedulable(pod, reasons, all_nodes)

    # -- placement -----------------------------------------------------------------------------
    def _volume_constraints(self, pod: dict) -> tuple[str | None, list[list[dict]], list[dict]]:
        """(blocking reason, PV node-affinity term lists, claims waiting for a first consumer)."""
        store = self.cluster.store
        namespace = pod["metadata"]["namespace"]
        affinities, waiting = [], []
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim_name:
                continue
            pvc = store.get(PVCS, namespace, claim_name)
            if pvc is None:
                return f'persistentvolumeclaim "{claim_name}" not found', [], []
            if pvc["metadata"].get("deletionTimestamp"):
                return f'persistentvolumeclaim "{claim_name}" is being deleted', [], []
            volume_name = (pvc.get("spec") or {}).get("volumeName")
            if volume_name:
                pv = store.get(PVS, "", volume_name)
                terms = (((pv or {}).get("spec") or {}).get("nodeAffinity") or {}).get("required", {}) \
                    .get("nodeSelectorTerms") if pv else None
                if terms:
                    affinities.append(terms)
                continue
            class_name = (pvc.get("spec") or {}).get("storageClassName")
            storage_class = store.get(SCS, "", class_name) if class_name else None
            if storage_class and storage_class.get("volumeBindingMode") == "WaitForFirstConsumer":
                waiting.append(pvc)
                continue
            return "pod has unbound immediate PersistentVolumeClaims", [], []
        return None, affinities, waiting

    def _place(self, pod: dict, nodes: list[dict], usage: dict) -> tuple[dict | None, Counter]:
        reasons: Counter = Counter()
        blocking, affinities, _ = self._volume_constraints(pod)
        if blocking:
            reasons[blocking] = len(nodes) or 1
            return None, reasons
        requests = scheduling.pod_requests(pod)
        images = {c.get("image") for c in (pod.get("spec") or {}).get("containers") or []}
        best, best_score = None, None
        for node in nodes:
            name = node["metadata"]["name"]
            labels = node["metadata"].get("labels") or {}
            taints = scheduling.untolerated_taints(pod, (node.get("spec") or {}).get("taints"))
            if taints:
                reasons[f"node(s) had untolerated taint {scheduling.describe_taint(taints[0])}"] += 1
                continue
            if not scheduling.node_matches(pod, labels, name):
                reasons["node(s) didn't match Pod's node affinity/selector"] += 1
                continue
            if any(not scheduling.node_selector_terms_match(terms, labels, name) for terms in affinities):
                reasons["node(s) had volume node affinity conflict"] += 1
                continue
            available = scheduling.allocatable(node)
            missing = scheduling.insufficient(requests, available, usage[name])
            if missing:
                for resource in missing:
                    reasons[f"Too many pods" if resource == "pods" else f"Insufficient {resource}"] += 1
                continue
            score = self._score(requests, available, usage[name], node, images)
            if best_score is None or score > best_score:
                best, best_score = node, score
        return best, reasons

    @staticmethod
    def _score(requests, available, used, node, images) -> float:
        free = []
        for resource in ("cpu", "memory"):
            capacity = available.get(resource) or Fraction(1)
            free.append(float((capacity - used.get(resource, 0) - requests.get(resource, 0)) / capacity))
        cached = {image for entry in (node.get("status") or {}).get("images") or [] for image in entry.get("names", [])}
        return sum(free) / len(free) + (0.5 if images and images <= cached else 0.0)

    def _bind(self, pod: dict, node: dict) -> None:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        node_name = node["metadata"]["name"]
        _, _, waiting = self._volume_constraints(pod)
        for pvc in waiting:
            if (pvc["metadata"].get("annotations") or {}).get(SELECTED_NODE) != node_name:
                self.cluster.mutate(PVCS, pvc["metadata"]["namespace"], pvc["metadata"]["name"],
                                    lambda c: c["metadata"].setdefault("annotations", {}).__setitem__(SELECTED_NODE, node_name))

        def bind(current: dict):
            if (current.get("spec") or {}).get("nodeName") or current["metadata"].get("deletionTimestamp"):
                return False
            current["spec"]["nodeName"] = node_name
            status = current.setdefault("status", {})
            status.pop("nominatedNodeName", None)
            set_condition(status, "PodScheduled", "True")
            for cond in status["conditions"]:
                if cond["type"] == "PodScheduled":
                    cond.pop("reason", None)
                    cond.pop("message", None)
                    cond["lastProbeTime"] = None
        bound = self.cluster.mutate(PODS, namespace, name, bind)
        if bound is not None and bound["spec"].get("nodeName") == node_name:
            self.cluster.record_event(bound, "Scheduled", f"Successfully assigned {namespace}/{name} to {node_name}")

    def _unschedulable(self, pod: dict, reasons: Counter, total: int) -> None:
        details = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        message = f"0/{total} nodes are available" + (f": {details}." if details else ".")
        if total:
            message += f" preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        current = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if current and current.get("status") == "False" and current.get("message") == message:
            return

        def mark(obj: dict):
            status = obj.setdefault("status", {})
            set_condition(status, "PodScheduled", "False", "Unschedulable", message)
            for cond in status["conditions"]:
                if cond["type"] == "PodScheduled":
                    cond["lastProbeTime"] = None
        updated = self.cluster.mutate(PODS, namespace, name, mark)
        if updated is not None:
            self.cluster.record_event(updated, "FailedScheduling", message, "Warning")

"""Pure placement rules of DaemonSet pods: the tolerations the DaemonSet controller adds,
which nodes should run a daemon pod, and the node affinity that pins a pod to its node."""

from __future__ import annotations

from ... import scheduling
from ...objects import clone

NAME_FIELD = "metadata.name"

# Added to every daemon pod (network-unavailable only with hostNetwork), without tolerationSeconds:
# daemons stay on nodes that are not ready, unreachable, under pressure or cordoned.
DAEMON_TOLERATIONS = [
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
]
NETWORK_UNAVAILABLE = ("node.kubernetes.io/network-unavailable", "NoSchedule")


def with_daemon_tolerations(spec: dict) -> dict:
    """A copy of a pod spec with the DaemonSet tolerations added (replacing same key and effect)."""
    spec = clone(spec or {})
    wanted = list(DAEMON_TOLERATIONS) + ([NETWORK_UNAVAILABLE] if spec.get("hostNetwork") else [])
    tolerations = [t for t in spec.get("tolerations") or []
                   if (t.get("key"), t.get("effect")) not in set(wanted)]
    tolerations += [{"key": key, "operator": "Exists", "effect": effect} for key, effect in wanted]
    spec["tolerations"] = tolerations
    return spec


def pinned_to(spec: dict, node_name: str) -> dict:
    """A copy of a daemon pod spec whose required node affinity is ``metadata.name In [node]``
    (replacing any required terms: eligibility was decided already)."""
    spec = clone(spec or {})
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": NAME_FIELD, "operator": "In", "values": [node_name]}]}]}
    return spec


def daemon_pod_spec(template_spec: dict, node_name: str) -> dict:
    """The spec of the daemon pod for ``node_name``: tolerations added, pinned to the node."""
    return pinned_to(with_daemon_tolerations(template_spec), node_name)


def target_node(pod: dict) -> str | None:
    """The node a daemon pod is for: ``spec.nodeName``, else its ``metadata.name`` affinity."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    for term in scheduling.required_terms(pod):
        for field in term.get("matchFields") or []:
            if field.get("key") == NAME_FIELD and field.get("operator") == "In" and len(field.get("values") or []) == 1:
                return field["values"][0]
    return None


def should_run(template: dict, node: dict) -> tuple[bool, bool]:
    """(should run, should keep running) a daemon pod of ``template`` on ``node``.

    A pod that does not fit the node's labels (nodeSelector, required node affinity, a set
    ``nodeName``) or does not tolerate a NoExecute taint runs nowhere; an untolerated
    NoSchedule taint stops new pods but lets a running one stay.
    """
    name = node["metadata"]["name"]
    pod = {"spec": with_daemon_tolerations((template or {}).get("spec") or {})}
    wanted_node = pod["spec"].get("nodeName")
    if wanted_node and wanted_node != name:
        return False, False
    if not scheduling.node_matches(pod, node["metadata"].get("labels") or {}, name):
        return False, False
    taints = (node.get("spec") or {}).get("taints")
    if scheduling.untolerated_taints(pod, taints, ("NoExecute",)):
        return False, False
    if scheduling.untolerated_taints(pod, taints, ("NoSchedule",)):
        return False, True
    return True, True

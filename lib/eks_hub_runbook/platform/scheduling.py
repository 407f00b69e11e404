"""Can a pod run on a NodePool? The checks the scheduler and Karpenter make, offline.

For every instance type a NodePool allows, a *candidate node* is built the way Karpenter
would launch it (template labels, well-known labels, requirement values, taints, and
the allocatable resources from :mod:`.instances`). A pod fits a candidate when its
nodeSelector and required node affinity match, it tolerates every NoSchedule/NoExecute
taint, and its requests fit the allocatable resources. Used by the tests to prove each
profile lands on exactly its pool, and by verification notebooks to explain placements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from . import instances

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
MIG_CONFIG_LABEL = "nvidia.com/mig.config"


@dataclass(frozen=True)
class Candidate:
    """A node Karpenter could launch for a pool: label key -> possible values, taints, allocatable."""

    pool: str
    instance_type: str
    labels: dict[str, frozenset[str]]
    taints: tuple[dict, ...]
    allocatable: dict[str, float]


@dataclass
class Placement:
    """Where a pod can run: pool -> instance types that fit; and why each other pool refuses."""

    fits: dict[str, list[str]] = field(default_factory=dict)
    refusals: dict[str, str] = field(default_factory=dict)

    @property
    def pools(self) -> list[str]:
        return sorted(self.fits)


def candidates(nodepool: Mapping[str, Any], device_configs: Mapping[str, str], default_config: str) -> list[Candidate]:
    """One candidate node per instance type the NodePool allows.

    ``device_configs`` is the NVIDIA device plugin ConfigMap's data (config name -> text);
    a node uses the config its ``nvidia.com/device-plugin.config`` label names, else ``default_config``.
    """
    name = nodepool["metadata"]["name"]
    template = nodepool["spec"]["template"]
    template_labels = (template.get("metadata") or {}).get("labels") or {}
    requirements = template["spec"].get("requirements") or []
    allowed: dict[str, frozenset[str]] = {}
    for req in requirements:
        if req.get("operator") == "In":
            allowed[req["key"]] = frozenset(req.get("values") or [])
    types = sorted(allowed.get(INSTANCE_TYPE_LABEL, ()), key=lambda t: (instances.get(t).vcpu, instances.get(t).memory_gib))
    if not types:
        raise ValueError(f"NodePool {name} does not list its instance types ({INSTANCE_TYPE_LABEL} In [...])")
    config_name = template_labels.get(DEVICE_PLUGIN_CONFIG_LABEL, default_config)
    result = []
    for type_name in types:
        instance = instances.get(type_name)
        labels = {key: frozenset([value]) for key, value in template_labels.items()}
        for key, values in allowed.items():
            labels.setdefault(key, values)
        labels.update({
            INSTANCE_TYPE_LABEL: frozenset([type_name]),
            "karpenter.sh/nodepool": frozenset([name]),
            "karpenter.k8s.aws/instance-family": frozenset([instance.family]),
            "karpenter.k8s.aws/instance-size": frozenset([instance.size]),
            "kubernetes.io/arch": frozenset(["amd64"]),
            "kubernetes.io/os": frozenset(["linux"]),
        })
        result.append(Candidate(
            pool=name,
            instance_type=type_name,
            labels=labels,
            taints=tuple(template["spec"].get("taints") or ()),
            allocatable=instances.allocatable(instance, device_configs.get(config_name), template_labels.get(MIG_CONFIG_LABEL)),
        ))
    return result


def pod_requests(pod: Mapping[str, Any]) -> dict[str, float]:
    """Summed container requests (a limit stands in for a missing request, as in Kubernetes)."""
    total: dict[str, float] = {"pods": 1}
    for container in pod["spec"].get("containers") or []:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for key, quantity in merged.items():
            total[key] = total.get(key, 0) + float(parse_quantity(quantity))
    return total


def _expression_matches(expr: Mapping[str, Any], labels: Mapping[str, frozenset[str]]) -> bool:
    key, operator, values = expr["key"], expr["operator"], set(expr.get("values") or [])
    present = labels.get(key)
    if operator == "In":
        return bool(present and present & values)
    if operator == "NotIn":
        return not present or bool(present - values)
    if operator == "Exists":
        return present is not None
    if operator == "DoesNotExist":
        return present is None
    return False  # Gt/Lt are not used by the platform


def _tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator", "Equal") == "Exists":
            if not tol.get("key") or tol["key"] == taint["key"]:
                return True
        elif tol.get("key") == taint["key"] and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def unmet(pod: Mapping[str, Any], node: Candidate) -> list[str]:
    """Why ``pod`` cannot run on ``node`` (empty when it can)."""
    spec = pod["spec"]
    reasons = []
    for key, value in (spec.get("nodeSelector") or {}).items():
        if value not in node.labels.get(key, ()):
            reasons.append(f"nodeSelector {key}={value} not on the node")
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    if required and not any(all(_expression_matches(e, node.labels) for e in term.get("matchExpressions") or [])
                            for term in required):
        reasons.append("required node affinity does not match")
    for taint in node.taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(spec.get("tolerations") or [], taint):
            reasons.append(f"taint {taint['key']}:{taint['effect']} not tolerated")
    for resource, amount in pod_requests(pod).items():
        available = node.allocatable.get(resource, 0)
        if amount > available:
            reasons.append(f"{resource}: requests {amount:g} > allocatable {available:g} on {node.instance_type}")
    return reasons


def placement(pod: Mapping[str, Any], nodepools: Iterable[Mapping[str, Any]], device_configs: Mapping[str, str],
              default_config: str) -> Placement:
    """Every pool and instance type where ``pod`` fits, and why the other pools refuse it."""
    result = Placement()
    for pool in nodepools:
        fitting, last_reasons = [], []
        for node in candidates(pool, device_configs, default_config):
            reasons = unmet(pod, node)
            if reasons:
                last_reasons = reasons  # candidates are in size order: keep the largest's reasons
            else:
                fitting.append(node.instance_type)
        if fitting:
            result.fits[pool["metadata"]["name"]] = fitting
        else:
            result.refusals[pool["metadata"]["name"]] = "; ".join(last_reasons)
    return result

"""Can a pod run on a NodePool? The checks the scheduler and Karpenter make, offline: the
platform's one scheduling model.

For every instance type a NodePool allows, a *candidate node* is built the way Karpenter
would launch it (template labels, requirement values, the catalog's well-known instance
labels, taints, and the allocatable resources of :mod:`.instances`). A pod fits a candidate
when its nodeSelector and required node affinity match, it tolerates every
NoSchedule/NoExecute taint, and its requests (:func:`pod_requests`, the Kubernetes rule) fit
what the node leaves to user pods (allocatable less the daemonsets' reserve). Used by the
tests to prove each profile lands on exactly its pool, by ``kube.placement`` for the
requests it shows, and by verification notebooks to explain placements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from . import instances

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
MIG_CONFIG_LABEL = "nvidia.com/mig.config"


@dataclass(frozen=True)
class Candidate:
    """A node Karpenter could launch for a pool: label key -> possible values, taints, the
    allocatable its kubelet reports, and what of that is ``available`` to user pods."""

    pool: str
    instance_type: str
    labels: dict[str, frozenset[str]]
    taints: tuple[dict, ...]
    allocatable: dict[str, Fraction]
    available: dict[str, Fraction]


@dataclass
class Placement:
    """Where a pod can run: pool -> instance types that fit; and why each other pool refuses."""

    fits: dict[str, list[str]] = field(default_factory=dict)
    refusals: dict[str, str] = field(default_factory=dict)

    @property
    def pools(self) -> list[str]:
        """The pools the pod fits, sorted."""
        return sorted(self.fits)


def candidates(nodepool: Mapping[str, Any], device_configs: Mapping[str, str], default_config: str) -> list[Candidate]:
    """One candidate node per instance type the NodePool allows, smallest (vCPUs, memory) first.

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
        labels.update({key: frozenset([value]) for key, value in instance.labels().items()})
        labels["karpenter.sh/nodepool"] = frozenset([name])
        allocatable = instances.allocatable(instance, device_configs.get(config_name), template_labels.get(MIG_CONFIG_LABEL))
        result.append(Candidate(
            pool=name,
            instance_type=type_name,
            labels=labels,
            taints=tuple(template["spec"].get("taints") or ()),
            allocatable=allocatable,
            available=instances.available(allocatable),
        ))
    return result


def quantity(value: str | int | float) -> Fraction:
    """A Kubernetes quantity (``"500m"``, ``"8Gi"``, ``2.0``) as an exact number."""
    return Fraction(parse_quantity(str(value) if isinstance(value, float) else value))


def _container_requests(container: Mapping[str, Any]) -> dict[str, Fraction]:
    """A container's requests; a limit stands in for a missing request (the API server's defaulting,
    which is how an extended resource given only as a limit is requested)."""
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: quantity(value) for name, value in merged.items()}


def _add(into: dict[str, Fraction], values: Mapping[str, Fraction]) -> dict[str, Fraction]:
    for name, value in values.items():
        into[name] = into.get(name, Fraction(0)) + value
    return into


def pod_requests(pod: Mapping[str, Any]) -> dict[str, Fraction]:
    """What the scheduler reserves for a pod, by the Kubernetes rule: per resource, the larger of
    the containers' sum and the largest init container, plus the pod's ``overhead``; plus one pod.

    Sidecars (init containers with ``restartPolicy: Always``) run next to the containers: they
    add to the sum, and to every init container started after them. Quantities are exact.
    """
    spec = pod.get("spec") or {}
    running: dict[str, Fraction] = {}
    for container in spec.get("containers") or []:
        _add(running, _container_requests(container))
    sidecars: dict[str, Fraction] = {}
    init_peak: dict[str, Fraction] = {}
    for container in spec.get("initContainers") or []:
        requests = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            _add(running, requests)
            step = dict(_add(sidecars, requests))
        else:
            step = _add(dict(sidecars), requests)
        for name, value in step.items():
            init_peak[name] = max(init_peak.get(name, Fraction(0)), value)
    total = {name: max(running.get(name, Fraction(0)), init_peak.get(name, Fraction(0))) for name in {**running, **init_peak}}
    _add(total, {name: quantity(value) for name, value in (spec.get("overhead") or {}).items()})
    total["pods"] = Fraction(1)
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
    if operator in ("Gt", "Lt") and present and len(values) == 1:
        (bound,) = values
        try:
            return any(int(v) > int(bound) if operator == "Gt" else int(v) < int(bound) for v in present)
        except ValueError:
            return False
    return False


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
        available = node.available.get(resource, 0)
        if amount > available:
            reasons.append(f"{resource}: requests {float(amount):g} > available {float(available):g} "
                           f"on {node.instance_type}")
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

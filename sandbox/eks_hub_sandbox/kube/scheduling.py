"""Scheduling predicates shared by the scheduler and Karpenter: pod requests, node
allocatable, taints and tolerations, node selectors and required node affinity."""

from __future__ import annotations

from fractions import Fraction

from . import quantity

ZERO = Fraction(0)


def pod_requests(pod: dict) -> dict[str, Fraction]:
    """Effective requests: max(sum of containers, any init container) + overhead, plus one pod."""
    spec = pod.get("spec") or {}
    total: dict[str, Fraction] = {}
    for container in spec.get("containers") or []:
        for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
            total[name] = total.get(name, ZERO) + quantity.parse(value)
    for container in spec.get("initContainers") or []:
        for name, value in ((container.get("resources") or {}).get("requests") or {}).items():
            total[name] = max(total.get(name, ZERO), quantity.parse(value))
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, ZERO) + quantity.parse(value)
    total["pods"] = Fraction(1)
    return total


def resource_map(values: dict | None) -> dict[str, Fraction]:
    result = {}
    for name, value in (values or {}).items():
        try:
            result[name] = quantity.parse(value)
        except quantity.QuantityError:
            continue
    return result


def allocatable(node: dict) -> dict[str, Fraction]:
    return resource_map((node.get("status") or {}).get("allocatable"))


def add(into: dict[str, Fraction], values: dict[str, Fraction]) -> None:
    for name, value in values.items():
        into[name] = into.get(name, ZERO) + value


def insufficient(requests: dict[str, Fraction], available: dict[str, Fraction],
                 used: dict[str, Fraction]) -> list[str]:
    """Resource names the node lacks for these requests (empty list: it fits)."""
    missing = []
    for name, value in requests.items():
        if value <= 0:
            continue
        if used.get(name, ZERO) + value > available.get(name, ZERO):
            missing.append(name)
    return missing


def tolerates(toleration: dict, taint: dict) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    key = toleration.get("key")
    if key and key != taint.get("key"):
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taints(pod: dict, taints: list[dict] | None,
                       effects: tuple[str, ...] = ("NoSchedule", "NoExecute")) -> list[dict]:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    return [taint for taint in taints or [] if taint.get("effect") in effects
            and not any(tolerates(t, taint) for t in tolerations)]


def match_expression(expression: dict, labels: dict[str, str]) -> bool:
    key, operator = expression.get("key"), expression.get("operator")
    values = expression.get("values") or []
    present = key in labels
    value = labels.get(key)
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and values:
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def node_selector_terms_match(terms: list[dict], labels: dict[str, str], name: str) -> bool:
    """NodeSelectorTerms are ORed; each term's expressions and fields are ANDed."""
    for term in terms:
        expressions = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not expressions and not fields:
            continue
        if all(match_expression(e, labels) for e in expressions) and \
                all(match_expression(f, {"metadata.name": name}) for f in fields):
            return True
    return False


def required_terms(pod: dict) -> list[dict]:
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return required.get("nodeSelectorTerms") or []


def node_matches(pod: dict, labels: dict[str, str], name: str) -> bool:
    """nodeSelector and required node affinity against a node's labels and name."""
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    terms = required_terms(pod)
    return not terms or node_selector_terms_match(terms, labels, name)


def describe_taint(taint: dict) -> str:
    return f"{{{taint.get('key')}: {taint.get('value') or ''}}}"


def is_daemonset_pod(pod: dict) -> bool:
    return any(ref.get("kind") == "DaemonSet" for ref in pod["metadata"].get("ownerReferences") or [])


def is_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")

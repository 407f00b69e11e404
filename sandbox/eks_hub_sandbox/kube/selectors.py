"""Label and field selectors, as the API server parses them from query strings.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``,
``a`` (exists) and ``!a`` (does not exist), comma-separated (AND).
Field selectors: ``path=value``, ``path==value``, ``path!=value`` on the fields each
resource supports (``metadata.name``, ``metadata.namespace`` plus a per-kind list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .errors import bad_request

Predicate = Callable[[dict], bool]

_IN_RE = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")
_KEY_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")

# Fields each kind can be selected on, beyond metadata.name / metadata.namespace.
FIELD_LABELS: dict[str, set[str]] = {
    "Pod": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"},
    "Event": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
              "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
              "reason", "reportingComponent", "source", "type"},
    "Node": {"spec.unschedulable"},
    "Namespace": {"status.phase"},
    "Secret": {"type"},
    "Service": {"spec.clusterIP", "spec.type"},
    "PersistentVolume": {"name"},
    "ReplicaSet": {"status.replicas"},
    "Job": {"status.successful"},
}


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects without the label too
        return not present or value not in self.values


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _check_key(key: str, selector: str) -> str:
    if not _KEY_RE.match(key) or len(key.split("/")[-1]) > 63:
        raise bad_request(f'unable to parse requirement: invalid label key "{key}" in selector "{selector}"')
    return key


def parse_label_selector(selector: str | None) -> list[Requirement]:
    """Parse a label selector string into requirements (all must match). 400 if malformed."""
    if not selector:
        return []
    requirements = []
    for term in _split_top_level(selector):
        match = _IN_RE.match(term)
        if match:
            values = tuple(v.strip() for v in match.group(3).split(",") if v.strip())
            requirements.append(Requirement(_check_key(match.group(1), selector), match.group(2), values))
        elif term.startswith("!"):
            requirements.append(Requirement(_check_key(term[1:].strip(), selector), "!exists"))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            requirements.append(Requirement(_check_key(key.strip(), selector), "!=", (value.strip(),)))
        elif "=" in term:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            requirements.append(Requirement(_check_key(key.strip(), selector), "=", (value.strip(),)))
        else:
            requirements.append(Requirement(_check_key(term, selector), "exists"))
    return requirements


def labels_match(requirements: list[Requirement], obj: dict) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


def field_value(obj: dict, path: str) -> str:
    """The string value of a dotted field path, as field selectors compare it ("" when absent)."""
    if path == "source" and obj.get("kind") == "Event":
        return ((obj.get("source") or {}).get("component")) or obj.get("reportingComponent") or ""
    node = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, list):
        return ",".join(str(item.get("ip", item)) if isinstance(item, dict) else str(item) for item in node)
    return str(node)


def parse_field_selector(selector: str | None, kind: str) -> list[tuple[str, str, str]]:
    """Parse a field selector into (path, operator, value) triples; 400 on unsupported fields."""
    if not selector:
        return []
    allowed = {"metadata.name", "metadata.namespace"} | FIELD_LABELS.get(kind, set())
    terms = []
    for term in _split_top_level(selector):
        if "!=" in term:
            path, value = term.split("!=", 1)
            operator = "!="
        elif "=" in term:
            path, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            operator = "="
        else:
            raise bad_request(f'invalid selector: \'{selector}\'; can\'t understand \'{term}\'')
        path = path.strip()
        if path not in allowed:
            raise bad_request(f'field label not supported: {path}')
        terms.append((path, operator, value.strip()))
    return terms


def fields_match(terms: list[tuple[str, str, str]], obj: dict) -> bool:
    for path, operator, value in terms:
        actual = field_value(obj, path)
        if (actual == value) != (operator == "="):
            return False
    return True


def selector_predicate(label_selector: str | None, field_selector: str | None, kind: str) -> Predicate | None:
    """A single predicate for both selectors, or None when nothing is selected on."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(field_selector, kind)
    if not labels and not fields:
        return None
    return lambda obj: labels_match(labels, obj) and fields_match(fields, obj)


def match_label_selector(selector: dict | None, labels: dict | None) -> bool:
    """Match a structured ``LabelSelector`` (matchLabels + matchExpressions).

    An empty selector matches everything; ``None`` matches nothing (as for Services).
    """
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        operator = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}.get(
            expression.get("operator"), "in")
        requirement = Requirement(expression["key"], operator, tuple(expression.get("values") or ()))
        if not requirement.matches(labels):
            return False
    return True

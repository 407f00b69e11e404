"""NodeOverlays (karpenter.sh/v1alpha1) as Karpenter v1.14 applies them, pure functions over objects.

- The feature gate: overlays count only when Karpenter runs with ``NodeOverlay=true`` in its
  ``FEATURE_GATES`` environment variable, which the chart renders from
  ``settings.featureGates.nodeOverlay`` (:func:`feature_enabled` reads it from the Karpenter
  Deployment; no Deployment or no such entry: off, the chart's default).
- Matching: an overlay applies to an offering (a NodePool's instance type in one zone and
  capacity type) whose labels satisfy all its ``requirements``: the instance type's labels
  (``node.kubernetes.io/instance-type``, ``karpenter.k8s.aws/*``...), ``karpenter.sh/nodepool``,
  the pool's template labels, zone and capacity type. Operators In, NotIn, Exists,
  DoesNotExist, Gt, Lt, Gte, Lte.
- Precedence: overlays are applied by weight, highest first (equal weights: the name later in
  the alphabet first, as upstream's ``OrderByWeight``). Per field the highest weight wins:
  ``capacity`` per resource (overlays with different resources merge), ``price`` or
  ``priceAdjustment`` per offering. Two overlays of equal weight that set the same resource or
  the price of the same offering conflict: the later one is not applied and gets
  ``ValidationSucceeded=False`` (reason ``Conflict``), as upstream's validation controller does.
- Capacity adds or overrides extended resources of the instance type (an instance type
  matches when any of its offerings does); ``price`` replaces an offering's price,
  ``priceAdjustment`` changes it by ``+x``/``-x`` or ``+x%``/``-x%`` (never below 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable

from .. import quantity

FEATURE_GATE = "NodeOverlay"
FEATURE_GATES_ENV = "FEATURE_GATES"
KARPENTER_APP = "karpenter"  # app.kubernetes.io/name of the chart's Deployment
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Gte", "Lte")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
ZONE, CAPACITY_TYPE = "topology.kubernetes.io/zone", "karpenter.sh/capacity-type"


def feature_gates(text: str) -> dict[str, bool]:
    """``A=true,B=false`` -> ``{"A": True, "B": False}`` (as Karpenter parses ``FEATURE_GATES``)."""
    gates = {}
    for item in (text or "").split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            gates[name.strip()] = value.strip().lower() == "true"
    return gates


def feature_enabled(deployments: Iterable[dict]) -> bool:
    """Whether the Karpenter Deployment among ``deployments`` runs with ``NodeOverlay=true``."""
    for deployment in deployments:
        if (deployment["metadata"].get("labels") or {}).get("app.kubernetes.io/name") != KARPENTER_APP:
            continue
        template = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in template.get("containers") or []:
            for env in container.get("env") or []:
                if env.get("name") == FEATURE_GATES_ENV:
                    return feature_gates(str(env.get("value") or "")).get(FEATURE_GATE, False)
    return False


def weight(overlay: dict) -> int:
    """The overlay's weight (none: 0)."""
    return int((overlay.get("spec") or {}).get("weight") or 0)


def ordered(overlays: Iterable[dict]) -> list[dict]:
    """Overlays in the order Karpenter applies them: weight descending, then name descending."""
    by_name = sorted(overlays, key=lambda o: o["metadata"]["name"], reverse=True)
    return sorted(by_name, key=lambda o: -weight(o))


RESTRICTED_CAPACITY = ("cpu", "memory", "ephemeral-storage", "pods")


def runtime_errors(overlay: dict) -> list[str]:
    """What Karpenter's runtime validation refuses in an overlay's requirements, and the CRD's CEL
    rules (the emulator's schema check does not evaluate CEL): only extended resources in
    ``capacity``, not both ``price`` and ``priceAdjustment``, In/NotIn with values."""
    errors = []
    spec = overlay.get("spec") or {}
    restricted = sorted(set(spec.get("capacity") or {}) & set(RESTRICTED_CAPACITY))
    if restricted:
        errors.append(f"invalid resource restricted: {', '.join(restricted)} (capacity takes extended resources only)")
    if spec.get("price") is not None and spec.get("priceAdjustment") is not None:
        errors.append("cannot set both 'price' and 'priceAdjustment'")
    for requirement in (overlay.get("spec") or {}).get("requirements") or []:
        key, operator = requirement.get("key", ""), requirement.get("operator")
        values = requirement.get("values") or []
        if operator not in OPERATORS:
            errors.append(f"key {key} has an unsupported operator {operator} not in {list(OPERATORS)}")
        if not _QUALIFIED.match(key):
            errors.append(f"key {key} is not a qualified name")
        errors += [f"invalid value {v} for key {key}" for v in values if len(v) > 63 or not _LABEL_VALUE.match(v)]
        if operator in ("In", "NotIn") and not values:
            errors.append(f"key {key} with operator {operator} must have a value defined")
        if operator in ("Gt", "Lt", "Gte", "Lte") and (len(values) != 1 or not values[0].isdigit()):
            errors.append(f"key {key} with operator {operator} must have a single positive integer value")
    return errors


def matches(requirement: dict, labels: dict[str, str]) -> bool:
    """One requirement against an offering's labels."""
    key, operator = requirement.get("key"), requirement.get("operator")
    values = requirement.get("values") or []
    value = labels.get(key)
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt", "Gte", "Lte") and value is not None and values:
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return {"Gt": left > right, "Lt": left < right, "Gte": left >= right, "Lte": left <= right}[operator]
    return False


def selects(overlay: dict, labels: dict[str, str]) -> bool:
    """Whether all of an overlay's requirements hold for an offering's labels."""
    return all(matches(r, labels) for r in (overlay.get("spec") or {}).get("requirements") or [])


def adjust_price(price: float, overlay_spec: dict) -> float:
    """An offering's price after an overlay's ``price`` or ``priceAdjustment``."""
    if overlay_spec.get("price") is not None:
        return float(overlay_spec["price"])
    adjustment = str(overlay_spec.get("priceAdjustment") or "").strip()
    if not adjustment:
        return price
    if adjustment.endswith("%"):
        return max(0.0, price * (1 + float(adjustment[:-1]) / 100))
    return max(0.0, price + float(adjustment))


@dataclass
class _TypeUpdate:
    capacity: dict[str, Fraction] = field(default_factory=dict)
    capacity_weights: dict[str, set[int]] = field(default_factory=dict)  # resource -> weights of overlays setting it
    prices: dict[tuple[str, str], dict] = field(default_factory=dict)  # (zone, capacity type) -> overlay spec
    price_weights: dict[tuple[str, str], set[int]] = field(default_factory=dict)


@dataclass
class Overlays:
    """The resolved overlays: per (NodePool, instance type) the capacity and price updates, and
    per overlay the problem that kept it out (``(reason, message)``; absent: applied)."""

    updates: dict[tuple[str, str], _TypeUpdate] = field(default_factory=dict)
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)

    def capacity(self, pool: str, instance_type: str) -> dict[str, Fraction]:
        """Extended resources the overlays add to (or override in) an instance type of a pool."""
        update = self.updates.get((pool, instance_type))
        return dict(update.capacity) if update else {}

    def price(self, pool: str, instance_type: str, zone: str, capacity_type: str, price: float) -> float:
        """An offering's price after the overlays."""
        update = self.updates.get((pool, instance_type))
        spec = update.prices.get((zone, capacity_type)) if update else None
        return adjust_price(price, spec) if spec else price


def resolve(overlays: Iterable[dict], offerings: dict[tuple[str, str], list[dict[str, str]]]) -> Overlays:
    """Apply ``overlays`` to ``offerings`` ((pool, instance type) -> the labels of each of its
    offerings), by weight, detecting conflicts between overlays of equal weight."""
    result = Overlays()
    for overlay in ordered(overlays):
        name, spec, w = overlay["metadata"]["name"], overlay.get("spec") or {}, weight(overlay)
        errors = runtime_errors(overlay)
        if errors:
            result.problems[name] = ("RuntimeValidation", "; ".join(errors))
            continue
        capacity = {k: quantity.parse(v) for k, v in (spec.get("capacity") or {}).items()}
        sets_price = spec.get("price") is not None or spec.get("priceAdjustment") is not None
        staged, conflict = [], False
        for key, labels_list in offerings.items():
            selected = [labels for labels in labels_list if selects(overlay, labels)]
            if not selected:
                continue
            update = result.updates.get(key)
            if update and any(w in update.capacity_weights.get(r, ()) for r in capacity):
                conflict = True
            offers = [(labels.get(ZONE, ""), labels.get(CAPACITY_TYPE, "")) for labels in selected]
            if update and sets_price and any(w in update.price_weights.get(o, ()) for o in offers):
                conflict = True
            staged.append((key, offers))
        if conflict:  # nothing of a conflicting overlay is applied (upstream: validate, then store)
            result.problems[name] = ("Conflict", "conflict with another overlay")
            continue
        for key, offers in staged:
            update = result.updates.setdefault(key, _TypeUpdate())
            for resource, value in capacity.items():
                update.capacity.setdefault(resource, value)  # kept if a higher weight set it first
                update.capacity_weights.setdefault(resource, set()).add(w)
            if sets_price:
                for offer in offers:
                    update.prices.setdefault(offer, spec)
                    update.price_weights.setdefault(offer, set()).add(w)
    return result

"""Pure arithmetic of Deployment rollouts: maxSurge / maxUnavailable, how far the new
ReplicaSet scales up and the old ones down in a step, and the Deployment's status."""

from __future__ import annotations

import math
from datetime import datetime

from ...objects import parse_time

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# Annotations of a Deployment that are not copied onto its ReplicaSets.
NOT_COPIED = {REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
              "kubectl.kubernetes.io/last-applied-configuration", "deprecated.deployment.rollback.to"}


def scaled_value(value, total: int, round_up: bool) -> int:
    """An IntOrString (``3`` or ``"25%"``) against ``total``."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        amount = float(text[:-1]) * total / 100
        return math.ceil(amount) if round_up else math.floor(amount)
    return int(text)


def replicas_of(obj: dict | None) -> int:
    """``spec.replicas`` (1 when unset, 0 for no object)."""
    return int(((obj or {}).get("spec") or {}).get("replicas", 1 if obj else 0) or 0)


def surge_and_unavailable(deployment: dict) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; (0, 0) for Recreate; never both 0."""
    spec = deployment.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    replicas = replicas_of(deployment)
    surge = scaled_value(rolling.get("maxSurge", "25%"), replicas, True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def new_replicas(deployment: dict, new_current: int, total_current: int) -> int:
    """The new ReplicaSet's next ``spec.replicas`` in a rolling update (up to maxSurge over
    the desired count across all ReplicaSets)."""
    replicas = replicas_of(deployment)
    if new_current >= replicas:
        return replicas
    surge, _ = surge_and_unavailable(deployment)
    room = replicas + surge - total_current
    if room <= 0:
        return new_current
    return new_current + min(room, replicas - new_current)


def scale_down_targets(deployment: dict, new_spec: int, new_available: int,
                       olds: list[tuple[str, int, int]]) -> dict[str, int]:
    """Old ReplicaSets' next ``spec.replicas`` keeping ``replicas - maxUnavailable`` pods
    available; ``olds`` are (name, spec.replicas, availableReplicas), oldest first.
    Unhealthy old replicas go first, then healthy ones oldest ReplicaSet first."""
    _, unavailable = surge_and_unavailable(deployment)
    min_available = replicas_of(deployment) - unavailable
    specs = {name: spec for name, spec, _ in olds}
    total = new_spec + sum(specs.values())
    budget = total - min_available - (new_spec - new_available)
    for name, spec, available in olds:
        if budget <= 0:
            break
        unhealthy = spec - min(available, spec)
        if unhealthy > 0:
            cut = min(budget, unhealthy)
            specs[name] -= cut
            budget -= cut
    budget = new_available + sum(min(a, s) for _, s, a in olds) - min_available
    for name, _, _ in olds:
        if budget <= 0:
            break
        cut = min(specs[name], budget)
        specs[name] -= cut
        budget -= cut
    original = {name: spec for name, spec, _ in olds}
    return {name: spec for name, spec in specs.items() if spec != original[name]}


def is_complete(deployment: dict, status: dict) -> bool:
    """All replicas updated and available, nothing old left, the spec observed."""
    replicas = replicas_of(deployment)
    return status.get("updatedReplicas", 0) == replicas and status.get("replicas", 0) == replicas and \
        status.get("availableReplicas", 0) == replicas and \
        status.get("observedGeneration", 0) >= (deployment["metadata"].get("generation") or 0)


def _set(conditions: list[dict], type_: str, value: str, reason: str, message: str, timestamp: str,
         touch: bool) -> None:
    """Set a Deployment condition; ``lastUpdateTime`` moves on change (or when ``touch``)."""
    for cond in conditions:
        if cond["type"] != type_:
            continue
        same = cond.get("status") == value and cond.get("reason") == reason
        if same and cond.get("message") == message and not touch:
            return
        if cond.get("status") != value:
            cond["lastTransitionTime"] = timestamp
        cond.update(status=value, reason=reason, message=message, lastUpdateTime=timestamp)
        return
    conditions.append({"type": type_, "status": value, "lastUpdateTime": timestamp, "lastTransitionTime": timestamp,
                       "reason": reason, "message": message})


def _counts(replica_sets: list[dict]) -> dict[str, int]:
    total = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0}
    for rs in replica_sets:
        status = rs.get("status") or {}
        for field in total:
            total[field] += int(status.get(field, 0) or 0)
    return total


def deployment_status(deployment: dict, new_rs: dict | None, replica_sets: list[dict], timestamp: str,
                      created: bool = False, at: datetime | None = None) -> tuple[dict, float | None]:
    """The Deployment's next status (zero counts omitted, as the API serializes them) and the
    seconds until its progress deadline passes while it is still progressing (else None)."""
    previous = deployment.get("status") or {}
    spec = deployment.get("spec") or {}
    counts = _counts(replica_sets)
    total_spec = sum(replicas_of(rs) for rs in replica_sets)
    updated = int(((new_rs or {}).get("status") or {}).get("replicas", 0) or 0)
    status = {"observedGeneration": deployment["metadata"].get("generation") or 0,
              "replicas": counts["replicas"], "updatedReplicas": updated,
              "readyReplicas": counts["readyReplicas"], "availableReplicas": counts["availableReplicas"],
              "unavailableReplicas": max(0, total_spec - counts["availableReplicas"])}
    if previous.get("collisionCount"):
        status["collisionCount"] = previous["collisionCount"]
    status = {k: v for k, v in status.items() if v}
    conditions = [dict(c) for c in previous.get("conditions") or []]
    _, unavailable = surge_and_unavailable(deployment)
    if counts["availableReplicas"] >= replicas_of(deployment) - unavailable:
        _set(conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.",
             timestamp, False)
    else:
        _set(conditions, "Available", "False", "MinimumReplicasUnavailable",
             "Deployment does not have minimum availability.", timestamp, False)
    rs_name = (new_rs or {}).get("metadata", {}).get("name", "")
    wait = None
    deadline = spec.get("progressDeadlineSeconds")
    progressing = next((c for c in conditions if c["type"] == "Progressing"), None)
    if spec.get("paused"):
        _set(conditions, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", timestamp, False)
    elif new_rs is not None and is_complete(deployment, status):
        if not progressing or progressing.get("reason") != "NewReplicaSetAvailable" or \
                progressing.get("message") != f'ReplicaSet "{rs_name}" has successfully progressed.':
            _set(conditions, "Progressing", "True", "NewReplicaSetAvailable",
                 f'ReplicaSet "{rs_name}" has successfully progressed.', timestamp, True)
    elif created:
        _set(conditions, "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"',
             timestamp, True)
    elif new_rs is not None and (progressing is None or progressing.get("reason") != "ProgressDeadlineExceeded"):
        old_before = previous.get("replicas", 0) - previous.get("updatedReplicas", 0)
        old_now = status.get("replicas", 0) - status.get("updatedReplicas", 0)
        moved = status.get("updatedReplicas", 0) > previous.get("updatedReplicas", 0) or old_now < old_before or \
            status.get("readyReplicas", 0) > previous.get("readyReplicas", 0) or \
            status.get("availableReplicas", 0) > previous.get("availableReplicas", 0)
        if moved or progressing is None or progressing.get("reason") in ("NewReplicaSetAvailable", "DeploymentPaused"):
            _set(conditions, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.',
                 timestamp, True)
        elif deadline is not None:
            since = parse_time(progressing.get("lastUpdateTime"))
            elapsed = (at - since).total_seconds() if since and at else 0.0
            if elapsed >= deadline:
                _set(conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                     f'ReplicaSet "{rs_name}" has timed out progressing.', timestamp, True)
            else:
                wait = deadline - elapsed
    if conditions:
        order = {"Available": 0, "Progressing": 1}
        status["conditions"] = sorted(conditions, key=lambda c: order.get(c["type"], 2))
    if wait is None and deadline is not None and status.get("conditions") and not spec.get("paused"):
        current = next((c for c in status["conditions"] if c["type"] == "Progressing"), None)
        if current and current.get("reason") in ("ReplicaSetUpdated", "NewReplicaSetCreated"):
            wait = float(deadline)
    return status, wait

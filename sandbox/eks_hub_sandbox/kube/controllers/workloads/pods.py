"""Pure helpers of the workload controllers: template hashes, pods built from pod
templates, controller references and the pod states the controllers count."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from ...objects import clone, owner_reference, parse_time

_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # no vowels: a hash never spells a word
TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_HASH_LABEL = "controller-revision-hash"

_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193


def _fnv32a(data: bytes) -> int:
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def template_hash(template: dict, collision_count: int | None = None) -> str:
    """A short stable name-safe hash of a pod template (up to 10 characters).

    Stable across processes (canonical JSON, FNV-1a); a collision count, as kept in a
    Deployment's status, gives a different hash for the same template.
    """
    text = json.dumps(comparable(template), sort_keys=True, separators=(",", ":"))
    if collision_count:
        text += f"#{collision_count}"
    digits = str(_fnv32a(text.encode()))
    return "".join(_HASH_ALPHABET[ord(d) % len(_HASH_ALPHABET)] for d in digits)


def comparable(template: dict) -> dict:
    """A copy of a pod template without null metadata fields (``creationTimestamp: null``, as
    typed clients send it), which the API server does not keep."""
    copy = clone(template or {})
    metadata = copy.get("metadata")
    if isinstance(metadata, dict):
        for key in [k for k, v in metadata.items() if v is None]:
            del metadata[key]
        if not metadata:
            del copy["metadata"]
    return copy


def without_hash_label(template: dict) -> dict:
    """A comparable copy of a pod template without the ``pod-template-hash`` label."""
    copy = comparable(template)
    labels = (copy.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(TEMPLATE_HASH_LABEL, None)
        if not labels:
            copy["metadata"].pop("labels")
    if copy.get("metadata") == {}:
        copy.pop("metadata")
    return copy


def pod_from_template(template: dict, owner: dict, extra_labels: dict | None = None) -> dict:
    """The Pod a controller creates from ``owner``'s pod template: ``<owner>-`` generateName,
    the template's labels (plus ``extra_labels``), annotations and finalizers, and a
    controller reference to ``owner``."""
    template = template or {}
    source = template.get("metadata") or {}
    metadata = {
        "generateName": f"{owner['metadata']['name']}-",
        "namespace": owner["metadata"].get("namespace") or "default",
        "labels": {**(source.get("labels") or {}), **(extra_labels or {})},
        "ownerReferences": [owner_reference(owner)],
    }
    if source.get("annotations"):
        metadata["annotations"] = dict(source["annotations"])
    if source.get("finalizers"):
        metadata["finalizers"] = list(source["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": clone(template.get("spec") or {})}


# -- ownership -------------------------------------------------------------------------------------

def controller_ref(obj: dict) -> dict | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def controlled_by(obj: dict, owner: dict) -> bool:
    """Whether ``owner`` is the controller of ``obj`` (by uid)."""
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner["metadata"]["uid"]


# -- pod states ------------------------------------------------------------------------------------

def is_terminating(pod: dict) -> bool:
    """Being deleted (``deletionTimestamp`` set)."""
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_terminal(pod: dict) -> bool:
    """Finished: phase Succeeded or Failed."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_active(pod: dict) -> bool:
    """Counted by a ReplicaSet: neither being deleted nor finished."""
    return not is_terminating(pod) and not is_terminal(pod)


def _ready_condition(pod: dict) -> dict | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond
    return None


def is_ready(pod: dict) -> bool:
    """The pod's Ready condition is True."""
    cond = _ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: dict) -> datetime | None:
    """When the pod last became ready (None when it is not ready)."""
    cond = _ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime")) or datetime.now(timezone.utc)


def available_in(pod: dict, min_ready_seconds: int, at: datetime | None = None) -> float | None:
    """Seconds until the pod counts as available (0: it is now; None: not ready)."""
    since = ready_since(pod)
    if since is None:
        return None
    if not min_ready_seconds:
        return 0.0
    at = at or datetime.now(timezone.utc)
    return max(0.0, min_ready_seconds - (at - since).total_seconds())


def is_available(pod: dict, min_ready_seconds: int = 0, at: datetime | None = None) -> bool:
    """Ready for at least ``min_ready_seconds``."""
    return available_in(pod, min_ready_seconds, at) == 0.0


def restarts(pod: dict) -> int:
    """Container restarts, summed."""
    return sum(s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or [])


def _timestamp(value: datetime | None) -> float:
    return value.timestamp() if value else 0.0


def deletion_order(pods: list[dict]) -> list[dict]:
    """Pods in the order a ReplicaSet deletes them when scaling down: unscheduled before
    scheduled, Pending before Unknown before Running, not ready before ready, ready for a
    shorter time first, more restarts first, newest first."""
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}

    def key(pod: dict):
        return (
            bool((pod.get("spec") or {}).get("nodeName")),
            phase_rank.get((pod.get("status") or {}).get("phase", "Pending"), 0),
            is_ready(pod),
            -_timestamp(ready_since(pod)),
            -restarts(pod),
            -_timestamp(parse_time(pod["metadata"].get("creationTimestamp"))),
        )
    return sorted(pods, key=key)

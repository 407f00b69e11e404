"""Small helpers on plain-dict Kubernetes objects: copies, timestamps, names, owners."""

from __future__ import annotations

import json
import secrets
import string
import uuid
from datetime import datetime, timezone

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of generateName suffixes


def clone(obj):
    """A deep copy of a JSON-compatible value (faster than copy.deepcopy for these)."""
    return json.loads(json.dumps(obj))


def now() -> str:
    """RFC 3339 timestamp with second precision, as the API server writes them."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def new_uid() -> str:
    return str(uuid.uuid4())


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


def random_hex(length: int = 8) -> str:
    return "".join(secrets.choice(string.hexdigits.lower()) for _ in range(length))


def name_of(obj: dict) -> str:
    return obj["metadata"]["name"]


def namespace_of(obj: dict) -> str:
    return obj["metadata"].get("namespace") or ""


def labels_of(obj: dict) -> dict:
    return obj["metadata"].get("labels") or {}


def annotations_of(obj: dict) -> dict:
    return obj["metadata"].get("annotations") or {}


def owner_reference(owner: dict, controller: bool = True, block: bool = True) -> dict:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": block,
    }


def is_terminating(obj: dict) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def condition(obj: dict, type_: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def set_condition(status: dict, type_: str, value: str, reason: str = "", message: str = "",
                  heartbeat: bool = False) -> bool:
    """Set a condition in a status dict; returns True if it changed (keeps lastTransitionTime otherwise)."""
    conditions = status.setdefault("conditions", [])
    timestamp = now()
    for cond in conditions:
        if cond.get("type") == type_:
            changed = cond.get("status") != value or cond.get("reason", "") != reason or \
                cond.get("message", "") != message
            if cond.get("status") != value:
                cond["lastTransitionTime"] = timestamp
            cond["status"] = value
            if reason:
                cond["reason"] = reason
            if message or "message" in cond:
                cond["message"] = message
            if heartbeat:
                cond["lastHeartbeatTime"] = timestamp
            return changed
    new = {"type": type_, "status": value, "lastTransitionTime": timestamp}
    if heartbeat:
        new["lastHeartbeatTime"] = timestamp
    if reason:
        new["reason"] = reason
    if message:
        new["message"] = message
    conditions.append(new)
    return True


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(value: str | None) -> float | None:
    """Go duration (``30s``, ``1h30m``, ``720h``) in seconds; None for ``Never`` or empty."""
    if value is None or value == "" or value == "Never":
        return None
    import re
    total, matched = 0.0, False
    for number, unit in re.findall(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", str(value)):
        total += float(number) * _DURATION_UNITS[unit]
        matched = True
    return total if matched else None

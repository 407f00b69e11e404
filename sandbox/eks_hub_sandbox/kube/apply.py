"""Server-side apply, simplified: field ownership per manager recorded in ``managedFields``.

The applied configuration is merged into the live object with strategic-merge rules
(custom resources: lists are atomic). Fields the same manager applied before and
no longer sets are removed. Conflicts between managers are not detected: every
apply behaves as ``--force-conflicts``; this is enough for kubectl and helm's usage.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from typing import Any

from .patch import PRIMITIVE, merge_key, strategic_merge

Fields = dict[str, Any]


def field_set(value: Any, field: str = "", keyed_lists: bool = True) -> Fields:
    """The FieldsV1 set of a configuration fragment (``{"f:spec": {"f:replicas": {}}}``)."""
    if isinstance(value, dict):
        return {f"f:{key}": field_set(child, key, keyed_lists) for key, child in value.items()}
    if isinstance(value, list) and keyed_lists:
        key = merge_key(field, value)
        if key and key != PRIMITIVE and all(isinstance(item, dict) and key in item for item in value):
            result: Fields = {}
            for item in value:
                element = {".": {}}
                element.update(field_set({k: v for k, v in item.items() if k != key}, "", keyed_lists))
                result["k:" + json.dumps({key: item[key]}, separators=(",", ":"))] = element
            return result
    return {}


def _remove_path(target: Any, path: list[str]) -> None:
    """Remove the field at a FieldsV1 path from ``target`` (in place)."""
    node = target
    for index, part in enumerate(path):
        last = index == len(path) - 1
        if part.startswith("f:") and isinstance(node, dict):
            name = part[2:]
            if last:
                node.pop(name, None)
                return
            node = node.get(name)
        elif part.startswith("k:") and isinstance(node, list):
            wanted = json.loads(part[2:])
            position = next((i for i, item in enumerate(node) if isinstance(item, dict)
                             and all(item.get(k) == v for k, v in wanted.items())), None)
            if position is None:
                return
            if last or path[index + 1] == ".":
                node.pop(position)
                return
            node = node[position]
        else:
            return
        if node is None:
            return


def _leaf_paths(fields: Fields, prefix: list[str]) -> list[list[str]]:
    paths = []
    for key, child in fields.items():
        if key == ".":
            continue
        path = prefix + [key]
        if child and set(child) - {"."}:
            paths.extend(_leaf_paths(child, path))
            if "." in child:
                paths.append(path)
        else:
            paths.append(path)
    return paths


def _contains(fields: Fields, path: list[str]) -> bool:
    node = fields
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def server_side_apply(live: dict | None, config: dict, manager: str, api_version: str,
                      keyed_lists: bool = True) -> dict:
    """The object after ``manager`` applies ``config`` to ``live`` (None when creating)."""
    config = copy.deepcopy(config)
    config.get("metadata", {}).pop("managedFields", None)
    applied_fields = field_set({k: v for k, v in config.items() if k not in ("apiVersion", "kind")},
                               keyed_lists=keyed_lists)
    applied_fields.get("f:metadata", {}).pop("f:name", None)
    applied_fields.get("f:metadata", {}).pop("f:namespace", None)
    if live is None:
        result = config
        managed: list[dict] = []
    else:
        managed = [entry for entry in live["metadata"].get("managedFields") or []]
        previous = next((e for e in managed if e.get("manager") == manager and e.get("operation") == "Apply"), None)
        result = strategic_merge(copy.deepcopy(live), config) if keyed_lists else _merge_atomic_lists(live, config)
        if previous:
            for path in _leaf_paths(previous.get("fieldsV1") or {}, []):
                if not _contains(applied_fields, path):
                    _remove_path(result, path)
        if previous and previous.get("fieldsV1") == applied_fields and previous.get("apiVersion") == api_version:
            # The same fields applied again: keep the entry (and its time) where it is, as the API
            # server does, so that a re-apply that changes nothing is a no-op (no new resourceVersion).
            result.setdefault("metadata", {})["managedFields"] = managed
            return result
        managed = [e for e in managed if not (e.get("manager") == manager and e.get("operation") == "Apply")]
    managed.append({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fieldsType": "FieldsV1",
        "fieldsV1": applied_fields,
    })
    result.setdefault("metadata", {})["managedFields"] = managed
    return result


def _merge_atomic_lists(live: Any, config: Any) -> Any:
    if isinstance(live, dict) and isinstance(config, dict):
        result = dict(live)
        for key, value in config.items():
            result[key] = _merge_atomic_lists(live.get(key), value)
        return result
    return copy.deepcopy(config)

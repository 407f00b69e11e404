"""The three PATCH formats of the API server: JSON patch, JSON merge patch, strategic merge.

Strategic merge knows the patch merge keys of the built-in fields clients patch
(containers by name, env by name, volumeMounts by mountPath, conditions by type,
ports by containerPort or port...) and the ``$patch``, ``$retainKeys``,
``$setElementOrder/`` and ``$deleteFromPrimitiveList/`` directives kubectl sends.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError

# List fields merged element-by-element on this key; PRIMITIVE lists are merged as sets.
PRIMITIVE = "<primitive>"
MERGE_KEYS: dict[str, str] = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "imagePullSecrets": "name",
    "conditions": "type", "ownerReferences": "uid", "hostAliases": "ip", "finalizers": PRIMITIVE,
    "addresses": "type", "topologySpreadConstraints": "topologyKey", "resourceClaims": "name",
    "schedulingGates": "name", "ports": "<port>",
}


def merge_key(field: str, items: list) -> str | None:
    """The merge key of a list field, or None when the list is replaced as a whole."""
    key = MERGE_KEYS.get(field)
    if key == "<port>":
        sample = next((item for item in items if isinstance(item, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return key


class _Delete:
    pass


_DELETE = _Delete()


def _invalid_patch(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


# -- JSON patch (RFC 6902) ----------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _invalid_patch(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            try:
                doc = doc[int(part)]
            except (ValueError, IndexError) as exc:
                raise _invalid_patch(f"index {part} out of range") from exc
        elif isinstance(doc, dict):
            if part not in doc:
                raise _invalid_patch(f"doc is missing path: /{'/'.join(parts)}")
            doc = doc[part]
        else:
            raise _invalid_patch(f"cannot traverse into {type(doc).__name__} at {part!r}")
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if index > len(parent) or index < 0:
            raise _invalid_patch(f"index {last} out of range")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise _invalid_patch(f"cannot add to {type(parent).__name__}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        try:
            return parent.pop(int(last))
        except (ValueError, IndexError) as exc:
            raise _invalid_patch(f"index {last} out of range") from exc
    if not isinstance(parent, dict) or last not in parent:
        raise _invalid_patch(f"unable to remove nonexistent key: {last}: missing value")
    return parent.pop(last)


def json_patch(document: dict, operations: list) -> dict:
    """Apply an RFC 6902 patch to a copy of ``document``."""
    if not isinstance(operations, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    doc = copy.deepcopy(document)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op:
            raise _invalid_patch(f"invalid json patch operation {op!r}")
        name, parts = op["op"], _pointer(op.get("path", ""))
        if name == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif name == "remove":
            _remove(doc, parts)
        elif name == "replace":
            _walk(doc, parts)  # must exist
            if parts:
                parent = _walk(doc, parts[:-1])
                if isinstance(parent, list):
                    parent[int(parts[-1])] = copy.deepcopy(op.get("value"))
                else:
                    parent[parts[-1]] = copy.deepcopy(op.get("value"))
            else:
                doc = copy.deepcopy(op.get("value"))
        elif name in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = _remove(doc, source) if name == "move" else copy.deepcopy(_walk(doc, source))
            doc = _add(doc, parts, value)
        elif name == "test":
            if _walk(doc, parts) != op.get("value"):
                raise _invalid_patch(f"testing value {op.get('path')} failed")
        else:
            raise _invalid_patch(f"unexpected json patch operation {name!r}")
    return doc


# -- JSON merge patch (RFC 7386) ------------------------------------------------------------
def merge_patch(document: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch, returning a new document."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(document) if isinstance(document, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge patch --------------------------------------------------------------------
def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items()
                if not (k.startswith("$setElementOrder/") or k.startswith("$deleteFromPrimitiveList/")
                        or k in ("$patch", "$retainKeys")) and v is not None}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def _merge_list(current: Any, patch: list, field: str) -> list:
    key = merge_key(field, patch + (current if isinstance(current, list) else []))
    if key is None or not isinstance(current, list):
        return [_strip_directives(item) for item in patch
                if not (isinstance(item, dict) and item.get("$patch") == "delete")]
    if key == PRIMITIVE:
        return current + [item for item in patch if item not in current]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip_directives(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    result = list(current)
    for item in patch:
        if not isinstance(item, dict):
            result.append(item)
            continue
        position = next((i for i, existing in enumerate(result)
                         if isinstance(existing, dict) and existing.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
        elif position is None:
            result.append(_strip_directives(item))
        else:
            result[position] = strategic_merge(result[position], item)
    return result


def _order(items: list, order: list, key: str | None) -> list:
    if not key or key == PRIMITIVE:
        ranks = {value: i for i, value in enumerate(order) if not isinstance(value, (dict, list))}
        return sorted(items, key=lambda v: ranks.get(v, len(ranks)) if not isinstance(v, (dict, list)) else len(ranks))
    ranks = {entry.get(key): i for i, entry in enumerate(order) if isinstance(entry, dict)}
    return sorted(items, key=lambda v: ranks.get(v.get(key), len(ranks)) if isinstance(v, dict) else len(ranks))


def strategic_merge(original: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to ``original`` (built-in kinds only)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(original, dict):
        original = {}
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives(patch)
    if directive == "delete":
        return _DELETE
    result = dict(original)
    orders: dict[str, list] = {}
    deletions: dict[str, list] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            deletions[key.split("/", 1)[1]] = value
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, key)
        else:
            result[key] = value
    for field, values in deletions.items():
        if isinstance(result.get(field), list):
            result[field] = [item for item in result[field] if item not in values]
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _order(result[field], order, merge_key(field, order))
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result

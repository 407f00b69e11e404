"""YAML files with ``${name}`` placeholders, and helm's way of merging values.

A string that is exactly ``${name}`` is replaced by the variable's value as is (a list,
a bool...); placeholders inside longer strings are replaced by text. A placeholder
without a value is an error naming the file and the variable, never an empty string.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import PlatformError

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(value: Any) -> set[str]:
    """Every placeholder name used anywhere in a loaded YAML structure."""
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, Mapping):
        return set().union(*(placeholders(k) | placeholders(v) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(placeholders(v) for v in value))
    return set()


def substitute(value: Any, variables: Mapping[str, Any], source: str = "template") -> Any:
    """A copy of ``value`` with every ``${name}`` replaced from ``variables``."""
    missing = sorted(placeholders(value) - set(variables))
    if missing:
        raise PlatformError(f"{source}: no value for {', '.join('${' + m + '}' for m in missing)}")

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            whole = _PLACEHOLDER.fullmatch(node)
            if whole:
                return copy.deepcopy(variables[whole.group(1)])
            return _PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), node)
        if isinstance(node, Mapping):
            return {walk(k): walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(value)


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PlatformError(f"cannot read {path}: {exc}") from exc


def load_documents(path: Path) -> list[dict]:
    """All non-empty documents of a multi-document YAML file."""
    try:
        return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    except (OSError, yaml.YAMLError) as exc:
        raise PlatformError(f"cannot read {path}: {exc}") from exc


def deep_merge(base: Any, overlay: Any) -> Any:
    """Merge like helm merges values files: maps merge key by key, anything else
    (lists included) is replaced by the overlay, and ``None`` in the overlay deletes the key."""
    if not isinstance(base, Mapping) or not isinstance(overlay, Mapping):
        return copy.deepcopy(overlay)
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def dump(value: Any) -> str:
    """YAML text for people and for helm ``--values`` files (keys in file order)."""
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False)

"""The JSONPath subset CRD printer columns use: ``.a.b``, escaped dots (``labels.a\\.b/c``),
indexes (``[0]``) and equality filters (``[?(@.type=="Ready")]``)."""

from __future__ import annotations

import re

_FILTER = re.compile(r'^\?\(@\.([\w.-]+)\s*==\s*["\']?([^"\']*)["\']?\)$')


def _tokens(path: str) -> list[str]:
    tokens, current, i = [], "", 0
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    while i < len(path):
        char = path[i]
        if char == "\\" and i + 1 < len(path):
            current += path[i + 1]
            i += 2
            continue
        if char == ".":
            if current:
                tokens.append(current)
            current = ""
        elif char == "[":
            if current:
                tokens.append(current)
            end = path.index("]", i)
            tokens.append(path[i:end + 1])
            current = ""
            i = end
        else:
            current += char
        i += 1
    if current:
        tokens.append(current)
    return tokens


def evaluate(obj, path: str) -> list:
    """All values ``path`` selects in ``obj`` (an empty list when nothing matches)."""
    values = [obj]
    for token in _tokens(path):
        selected = []
        for value in values:
            if token.startswith("["):
                inner = token[1:-1]
                if inner == "*":
                    selected.extend(value if isinstance(value, list) else list((value or {}).values()))
                elif inner.lstrip("-").isdigit() and isinstance(value, list):
                    index = int(inner)
                    if -len(value) <= index < len(value):
                        selected.append(value[index])
                else:
                    match = _FILTER.match(inner)
                    if match and isinstance(value, list):
                        field, wanted = match.groups()
                        for item in value:
                            current = item
                            for part in field.split("."):
                                current = current.get(part) if isinstance(current, dict) else None
                            if current is not None and str(current) == wanted:
                                selected.append(item)
            elif isinstance(value, dict) and token in value:
                selected.append(value[token])
        values = selected
    return values

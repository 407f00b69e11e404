"""Schema validation: built-in kinds against the Kubernetes OpenAPI schemas shipped by
PyPI ``kubernetes-validate``, custom resources against their CRD's ``openAPIV3Schema``.

Built-in kinds are validated with the *strict* schema variant, in one pass:
``additionalProperties`` failures are unknown fields (dropped, or a 400 under
``fieldValidation=Strict`` as a real server does); every other failure is a 422.
Compiled validators are cached per kind. Custom resources are structural-schema
processed like the real server: unknown fields pruned, defaults applied, then
validated (CEL ``x-kubernetes-validations`` rules are not evaluated).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

KUBERNETES_VERSION = "1.33"
SCHEMA_DIR = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}.0-local-strict"


class Cause(dict):
    """One validation failure: ``{"reason", "message", "field"}`` as in a Status' causes."""

    @classmethod
    def make(cls, reason: str, field: str, message: str) -> "Cause":
        return cls(reason=reason, message=message, field=field)


def format_path(parts) -> str:
    """``["spec", "containers", 0, "image"]`` -> ``spec.containers[0].image``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


@functools.lru_cache(maxsize=1)
def _registry() -> Registry:
    definitions = json.loads((SCHEMA_DIR / "_definitions.json").read_text())
    return Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))


@functools.lru_cache(maxsize=256)
def _builtin_validator(api_version: str, kind: str):
    mangled = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = SCHEMA_DIR / f"{kind.lower()}-{mangled}.json"
    if not path.exists():
        return None
    schema = json.loads(path.read_text())
    registry = _registry().with_resource(schema["$id"], Resource.from_contents(schema))
    return jsonschema.Draft202012Validator(schema, registry=registry)


def has_builtin_schema(api_version: str, kind: str) -> bool:
    return _builtin_validator(api_version, kind) is not None


def _leaf_errors(error: jsonschema.ValidationError):
    """Flatten oneOf/anyOf failures to their most specific causes."""
    if error.context and error.validator in ("oneOf", "anyOf"):
        yield error  # report the composite once; its branches are alternatives, not separate failures
        return
    yield error


def _cause_for(error: jsonschema.ValidationError) -> Cause:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return Cause.make("FieldValueRequired", format_path(path + missing[:1]), "Required value")
    if error.validator == "enum":
        allowed = ", ".join(f'"{v}"' for v in error.validator_value if v is not None)
        return Cause.make("FieldValueNotSupported", format_path(path),
                          f"Unsupported value: {json.dumps(error.instance)}: supported values: {allowed}")
    if error.validator == "type":
        expected = error.validator_value
        expected = [t for t in expected if t != "null"] if isinstance(expected, list) else [expected]
        return Cause.make("FieldValueTypeInvalid", format_path(path),
                          f"Invalid value: {json.dumps(error.instance)[:80]}: "
                          f"{format_path(path)} in body must be of type {' or '.join(expected)}")
    return Cause.make("FieldValueInvalid", format_path(path),
                      f"Invalid value: {json.dumps(error.instance)[:80]}: {error.message[:200]}")


def validate_builtin(obj: dict) -> tuple[list[str], list[Cause]]:
    """Validate a built-in object. Returns (unknown field paths, other causes)."""
    validator = _builtin_validator(obj.get("apiVersion", ""), obj.get("kind", ""))
    if validator is None:
        return [], []
    unknown, causes = [], []
    for error in validator.iter_errors(obj):
        for leaf in _leaf_errors(error):
            if leaf.validator == "additionalProperties" and isinstance(leaf.instance, dict):
                known = set((leaf.schema.get("properties") or {}).keys())
                for name in sorted(set(leaf.instance) - known):
                    unknown.append(format_path(list(leaf.absolute_path) + [name]))
            else:
                causes.append(_cause_for(leaf))
    return unknown, causes


def drop_fields(obj: dict, paths: list[str]) -> None:
    """Remove fields given as ``a.b[0].c`` paths (used to prune unknown fields)."""
    for path in paths:
        parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
        node = obj
        for part in parts[:-1]:
            if part.startswith("["):
                index = int(part[1:-1])
                node = node[index] if isinstance(node, list) and index < len(node) else None
            else:
                node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict):
            node.pop(parts[-1], None)


# -- custom resources -------------------------------------------------------------------------
def _to_json_schema(schema):
    """OpenAPI v3 structural schema -> JSON Schema draft 4 (nullable, int-or-string)."""
    if isinstance(schema, list):
        return [_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "definitions"):
            result[key] = {name: _to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            result[key] = _to_json_schema(value)
        elif key.startswith("x-kubernetes-") or key in ("nullable", "default", "format", "example",
                                                           "externalDocs", "description"):
            continue
        else:
            result[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
        result.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    return result


class CustomSchema:
    """One CRD version's schema, compiled once: prune, default, validate."""

    def __init__(self, schema: dict | None):
        self.schema = schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        converted = _to_json_schema(self.schema)
        for root_field in ("apiVersion", "kind", "metadata"):
            converted.get("properties", {}).pop(root_field, None)
        self.validator = jsonschema.Draft4Validator(converted)

    def process(self, obj: dict) -> tuple[dict, list[str], list[Cause]]:
        """Returns (pruned and defaulted copy, pruned field paths, causes)."""
        obj = copy.deepcopy(obj)
        pruned: list[str] = []
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        body = _prune(body, self.schema, [], pruned, root=True)
        _default(body, self.schema)
        obj = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": obj.get("metadata"), **body}
        causes = [_cause_for(error) for error in self.validator.iter_errors(body)]
        return obj, pruned, causes


def _prune(value, schema: dict, path: list, pruned: list[str], root: bool = False):
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
            return value
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        result = {}
        for key, child in value.items():
            if properties is not None and key in properties:
                result[key] = _prune(child, properties[key], path + [key], pruned)
            elif isinstance(additional, dict):
                result[key] = _prune(child, additional, path + [key], pruned)
            elif additional is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                result[key] = child
            elif properties is None and not root:
                result[key] = child
            else:
                pruned.append(format_path(path + [key]))
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune(item, schema["items"], path + [index], pruned) for index, item in enumerate(value)]
    return value


def _default(value, schema: dict) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and isinstance(sub, dict) and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default(value[key], sub)
        if isinstance(schema.get("additionalProperties"), dict):
            for child in value.values():
                _default(child, schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(item, schema["items"])

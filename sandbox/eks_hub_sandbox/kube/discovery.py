"""Discovery documents: ``/version``, ``/api``, ``/apis``, per-group-version resource lists,
and a minimal OpenAPI v3 index.

The OpenAPI v3 documents describe only what kubectl looks for: every resource's
PATCH operation with its ``x-kubernetes-group-version-kind`` and the
``fieldValidation`` query parameter. With them kubectl 1.25+ leaves validation to
the server (``?fieldValidation=Strict``), which validates against the full
schemas. ``kubectl explain`` is not supported (it needs the full schemas here).
"""

from __future__ import annotations

import hashlib
import json

from .resources import Registry, ResourceType
from .validation import KUBERNETES_VERSION

GIT_VERSION = f"v{KUBERNETES_VERSION}.9-eks-sandbox"


def version() -> dict:
    major, minor = KUBERNETES_VERSION.split(".")
    return {"major": major, "minor": minor, "gitVersion": GIT_VERSION, "gitCommit": "0" * 40,
            "gitTreeState": "clean", "buildDate": "2025-09-01T00:00:00Z", "goVersion": "go1.23.12",
            "compiler": "gc", "platform": "linux/amd64"}


def api_versions(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(name: str, versions: list[str]) -> dict:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict:
    groups = [_group(name, versions) for name, versions in registry.group_versions().items() if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, name: str) -> dict | None:
    versions = registry.group_versions().get(name)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def resource_list(registry: Registry, group: str, version: str) -> dict | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources = [entry for rtype in sorted(types, key=lambda t: t.plural) for entry in rtype.discovery_entries()]
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


# -- OpenAPI v3 ----------------------------------------------------------------------------------
_PATCH_PARAMETERS = [
    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
]


def _item_path(rtype: ResourceType) -> str:
    prefix = f"/apis/{rtype.group}/{rtype.version}" if rtype.group else "/api/v1"
    if rtype.namespaced:
        return f"{prefix}/namespaces/{{namespace}}/{rtype.plural}/{{name}}"
    return f"{prefix}/{rtype.plural}/{{name}}"


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_document(registry: Registry, group: str, version: str) -> dict | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths = {}
    for rtype in types:
        content = {"application/json-patch+json": {}, "application/merge-patch+json": {},
                   "application/apply-patch+yaml": {}}
        if not rtype.custom:
            content["application/strategic-merge-patch+json"] = {}
        paths[_item_path(rtype)] = {"patch": {
            "operationId": f"patch{rtype.kind}",
            "x-kubernetes-group-version-kind": {"group": rtype.group, "version": rtype.version, "kind": rtype.kind},
            "x-kubernetes-action": "patch",
            "parameters": _PATCH_PARAMETERS,
            "requestBody": {"content": content},
            "responses": {"200": {"description": "OK"}},
        }}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": paths,
            "components": {"schemas": {}}}


def _hash(document: dict) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest().upper()[:128]


def openapi_v3_index(registry: Registry) -> dict:
    paths = {}
    for group, versions in registry.group_versions().items():
        for version_name in versions:
            document = openapi_v3_document(registry, group, version_name)
            if document is not None:
                path = _gv_path(group, version_name)
                paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={_hash(document)}"}
    return {"paths": paths}

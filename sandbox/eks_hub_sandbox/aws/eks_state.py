"""EKS resources moto does not implement, kept per (account, region, cluster).

Add-ons, access entries, access-policy associations, pod-identity associations and
add-on updates, plus two facts about moto's own objects the layer needs to fix
responses (the cluster's ``accessConfig`` and which node groups asked for
``remoteAccess``). Every operation validates its input and raises
:class:`EksApiError` with the status and error code real EKS uses.

Resources are ACTIVE as soon as they exist and gone as soon as they are deleted, so
provider waiters return on their first poll.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import eks_catalog


class EksApiError(Exception):
    """An EKS API error: HTTP status, error code (``x-amzn-ErrorType``) and message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(message: str) -> EksApiError:
    return EksApiError(404, "ResourceNotFoundException", message)


def in_use(message: str) -> EksApiError:
    return EksApiError(409, "ResourceInUseException", message)


def invalid(message: str) -> EksApiError:
    return EksApiError(400, "InvalidParameterException", message)


class Scope(NamedTuple):
    """Where a request acts: account, region and partition."""

    account: str
    region: str
    partition: str = "aws"

    def arn(self, resource: str) -> str:
        return f"arn:{self.partition}:eks:{self.region}:{self.account}:{resource}"


@dataclass
class ClusterExtras:
    """What the layer keeps for one cluster."""

    access_config: dict[str, Any] = field(default_factory=dict)
    nodegroups_without_remote_access: set[str] = field(default_factory=set)
    addons: dict[str, dict[str, Any]] = field(default_factory=dict)
    access_entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    pod_identities: dict[str, dict[str, Any]] = field(default_factory=dict)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)


def _require(body: dict[str, Any], *names: str) -> None:
    for name in names:
        if body.get(name) in (None, ""):
            raise invalid(f"{name} is required")


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise invalid("tags must be a map of strings")
    return dict(value)


def _principal_name(principal_arn: str) -> str:
    # arn:aws:iam::123456789012:role/path/name -> role/name style segment used in entry ARNs
    resource = principal_arn.split(":", 5)[-1]
    kind, _, rest = resource.partition("/")
    return f"{kind}/{rest.rsplit('/', 1)[-1]}"


def paginate(items: list[Any], max_results: Any, next_token: Any) -> tuple[list[Any], str | None]:
    """Slice ``items`` the way EKS list calls do (``maxResults`` 1-100, opaque ``nextToken``)."""
    try:
        size = int(max_results) if max_results not in (None, "") else 100
        start = int(next_token) if next_token not in (None, "") else 0
    except ValueError:
        raise invalid("maxResults and nextToken must come from a previous list call") from None
    if not 1 <= size <= 100:
        raise invalid("maxResults must be between 1 and 100")
    page = items[start : start + size]
    return page, (str(start + size) if start + size < len(items) else None)


class EksExtensionState:
    """Thread-safe store of the EKS resources moto lacks.

    ``cluster_exists(scope, name)`` tells whether moto knows the cluster; calls on an
    unknown cluster fail with 404 like real EKS.
    """

    def __init__(self, cluster_exists: Callable[[Scope, str], bool]):
        self._cluster_exists = cluster_exists
        self._clusters: dict[tuple[str, str, str], ClusterExtras] = {}
        self._lock = threading.RLock()

    # ---- clusters -------------------------------------------------------------------

    def _cluster(self, scope: Scope, name: str) -> ClusterExtras:
        if not self._cluster_exists(scope, name):
            self._clusters.pop((scope.account, scope.region, name), None)
            raise not_found(f"No cluster found for name: {name}.")
        return self._clusters.setdefault((scope.account, scope.region, name), ClusterExtras())

    def record_cluster(self, scope: Scope, name: str, access_config: dict[str, Any] | None) -> None:
        """Remember a new cluster's access configuration (moto drops it)."""
        requested = access_config or {}
        mode = requested.get("authenticationMode", "CONFIG_MAP")
        if mode not in ("CONFIG_MAP", "API", "API_AND_CONFIG_MAP"):
            raise invalid(f"authenticationMode {mode!r} is not one of CONFIG_MAP, API, API_AND_CONFIG_MAP")
        with self._lock:
            extras = ClusterExtras(access_config={
                "authenticationMode": mode,
                "bootstrapClusterCreatorAdminPermissions": bool(requested.get("bootstrapClusterCreatorAdminPermissions", True)),
            })
            self._clusters[(scope.account, scope.region, name)] = extras

    def bootstrap_creator(self, scope: Scope, name: str, creator_arn: str) -> None:
        """Give the cluster creator an admin access entry, as EKS does when asked to."""
        with self._lock:
            extras = self._clusters.get((scope.account, scope.region, name))
            if not extras or extras.access_config.get("authenticationMode") == "CONFIG_MAP":
                return
            if not extras.access_config.get("bootstrapClusterCreatorAdminPermissions"):
                return
            self.create_access_entry(scope, name, {"principalArn": creator_arn})
            self.associate_access_policy(scope, name, creator_arn, {
                "policyArn": eks_catalog.ACCESS_POLICY_PREFIX + "AmazonEKSClusterAdminPolicy",
                "accessScope": {"type": "cluster"},
            })

    def access_config(self, scope: Scope, name: str) -> dict[str, Any] | None:
        """The access configuration recorded for a cluster, or None if it was never seen."""
        with self._lock:
            extras = self._clusters.get((scope.account, scope.region, name))
            return dict(extras.access_config) if extras and extras.access_config else None

    def forget_cluster(self, scope: Scope, name: str) -> None:
        """Drop everything kept for a deleted cluster (EKS deletes its add-ons and entries with it)."""
        with self._lock:
            self._clusters.pop((scope.account, scope.region, name), None)

    def record_nodegroup(self, scope: Scope, cluster: str, nodegroup: str, remote_access_requested: bool) -> None:
        """Remember whether a node group asked for remote access (moto injects one regardless)."""
        with self._lock:
            extras = self._clusters.setdefault((scope.account, scope.region, cluster), ClusterExtras())
            if remote_access_requested:
                extras.nodegroups_without_remote_access.discard(nodegroup)
            else:
                extras.nodegroups_without_remote_access.add(nodegroup)

    def hides_remote_access(self, scope: Scope, cluster: str, nodegroup: str) -> bool:
        """True if the node group was created without ``remoteAccess``."""
        with self._lock:
            extras = self._clusters.get((scope.account, scope.region, cluster))
            return bool(extras and nodegroup in extras.nodegroups_without_remote_access)

    # ---- add-ons --------------------------------------------------------------------

    def create_addon(self, scope: Scope, cluster: str, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "addonName")
        name = body["addonName"]
        with self._lock:
            extras = self._cluster(scope, cluster)
            if name in extras.addons:
                raise in_use(f"Addon already exists: {name}")
            now = time.time()
            addon = {
                "addonName": name,
                "clusterName": cluster,
                "status": "ACTIVE",
                "addonVersion": body.get("addonVersion") or eks_catalog.default_addon_version(name),
                "health": {"issues": []},
                "addonArn": scope.arn(f"addon/{cluster}/{name}/{uuid.uuid4()}"),
                "createdAt": now,
                "modifiedAt": now,
                "tags": _tags(body.get("tags")),
                "podIdentityAssociations": [],
            }
            for key in ("serviceAccountRoleArn", "configurationValues"):
                if body.get(key):
                    addon[key] = body[key]
            for association in body.get("podIdentityAssociations") or []:
                _require(association, "serviceAccount", "roleArn")
                created = self.create_pod_identity(scope, cluster, {
                    "namespace": "kube-system", **association, "tags": addon["tags"],
                })
                addon["podIdentityAssociations"].append(created["associationArn"])
            extras.addons[name] = addon
            return dict(addon)

    def describe_addon(self, scope: Scope, cluster: str, name: str) -> dict[str, Any]:
        with self._lock:
            addon = self._cluster(scope, cluster).addons.get(name)
            if addon is None:
                raise not_found(f"No addon: {name} found in cluster: {cluster}")
            return dict(addon)

    def list_addons(self, scope: Scope, cluster: str) -> list[str]:
        with self._lock:
            return sorted(self._cluster(scope, cluster).addons)

    def update_addon(self, scope: Scope, cluster: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            extras = self._cluster(scope, cluster)
            addon = extras.addons.get(name)
            if addon is None:
                raise not_found(f"No addon: {name} found in cluster: {cluster}")
            params = []
            for key, param in (("addonVersion", "AddonVersion"), ("serviceAccountRoleArn", "ServiceAccountRoleArn"),
                               ("configurationValues", "ConfigurationValues")):
                if key in body:
                    addon[key] = body[key]
                    params.append({"type": param, "value": str(body[key])})
            addon["modifiedAt"] = time.time()
            update = {"id": str(uuid.uuid4()), "status": "Successful", "type": "AddonUpdate",
                      "params": params, "createdAt": addon["modifiedAt"], "errors": []}
            extras.updates[update["id"]] = {**update, "_addon": name}
            return update

    def describe_update(self, scope: Scope, cluster: str, update_id: str) -> dict[str, Any]:
        with self._lock:
            update = self._cluster(scope, cluster).updates.get(update_id)
            if update is None:
                raise not_found(f"No update found for ID: {update_id}")
            return {k: v for k, v in update.items() if not k.startswith("_")}

    def delete_addon(self, scope: Scope, cluster: str, name: str) -> dict[str, Any]:
        with self._lock:
            extras = self._cluster(scope, cluster)
            addon = extras.addons.pop(name, None)
            if addon is None:
                raise not_found(f"No addon: {name} found in cluster: {cluster}")
            for arn in addon["podIdentityAssociations"]:
                extras.pod_identities.pop(arn.rsplit("/", 1)[-1], None)
            return {**addon, "status": "DELETING"}

    # ---- access entries and policies -----------------------------------------------

    def create_access_entry(self, scope: Scope, cluster: str, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "principalArn")
        principal = body["principalArn"]
        if not principal.startswith("arn:") or ":iam::" not in principal:
            raise invalid(f"principalArn {principal!r} is not an IAM principal ARN")
        kind = body.get("type") or "STANDARD"
        if kind not in eks_catalog.ACCESS_ENTRY_TYPES:
            raise invalid(f"type {kind!r} is not one of {', '.join(eks_catalog.ACCESS_ENTRY_TYPES)}")
        groups = list(body.get("kubernetesGroups") or [])
        if kind != "STANDARD" and (groups or body.get("username")):
            raise invalid(f"kubernetesGroups and username cannot be set for access entries of type {kind}")
        with self._lock:
            extras = self._cluster(scope, cluster)
            if extras.access_config.get("authenticationMode", "CONFIG_MAP") == "CONFIG_MAP":
                raise invalid(f"The cluster {cluster} authentication mode is CONFIG_MAP; access entries need API or API_AND_CONFIG_MAP")
            if principal in extras.access_entries:
                raise in_use(f"The specified access entry resource is already in use on this cluster: {principal}")
            now = time.time()
            entry = {
                "clusterName": cluster,
                "principalArn": principal,
                "kubernetesGroups": groups,
                "accessEntryArn": scope.arn(f"access-entry/{cluster}/{_principal_name(principal)}/{uuid.uuid4()}"),
                "createdAt": now,
                "modifiedAt": now,
                "tags": _tags(body.get("tags")),
                "username": body.get("username") or eks_catalog.NODE_ENTRY_USERNAMES.get(kind, principal),
                "type": kind,
            }
            extras.access_entries[principal] = entry
            return dict(entry)

    def _entry(self, scope: Scope, cluster: str, principal: str) -> tuple[ClusterExtras, dict[str, Any]]:
        extras = self._cluster(scope, cluster)
        entry = extras.access_entries.get(principal)
        if entry is None:
            raise not_found(f"The specified principalArn could not be found: {principal}")
        return extras, entry

    def describe_access_entry(self, scope: Scope, cluster: str, principal: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._entry(scope, cluster, principal)[1])

    def list_access_entries(self, scope: Scope, cluster: str) -> list[str]:
        with self._lock:
            return sorted(self._cluster(scope, cluster).access_entries)

    def update_access_entry(self, scope: Scope, cluster: str, principal: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            _, entry = self._entry(scope, cluster, principal)
            if entry["type"] != "STANDARD" and (body.get("kubernetesGroups") or body.get("username")):
                raise invalid(f"kubernetesGroups and username cannot be set for access entries of type {entry['type']}")
            for key in ("kubernetesGroups", "username"):
                if key in body:
                    entry[key] = body[key]
            entry["modifiedAt"] = time.time()
            return dict(entry)

    def delete_access_entry(self, scope: Scope, cluster: str, principal: str) -> None:
        with self._lock:
            extras, _ = self._entry(scope, cluster, principal)
            del extras.access_entries[principal]
            extras.policies.pop(principal, None)

    def associate_access_policy(self, scope: Scope, cluster: str, principal: str, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "policyArn", "accessScope")
        policy = body["policyArn"]
        if not policy.startswith(eks_catalog.ACCESS_POLICY_PREFIX) or policy.rsplit("/", 1)[-1] not in eks_catalog.ACCESS_POLICIES:
            raise invalid(f"The policy {policy} is not a valid EKS access policy")
        access_scope = dict(body["accessScope"])
        if access_scope.get("type") not in ("cluster", "namespace"):
            raise invalid("accessScope.type must be cluster or namespace")
        if access_scope["type"] == "namespace" and not access_scope.get("namespaces"):
            raise invalid("accessScope.namespaces is required when accessScope.type is namespace")
        if access_scope["type"] == "cluster" and access_scope.get("namespaces"):
            raise invalid("accessScope.namespaces must be empty when accessScope.type is cluster")
        access_scope.setdefault("namespaces", [])
        with self._lock:
            extras, entry = self._entry(scope, cluster, principal)
            if entry["type"] != "STANDARD":
                raise invalid(f"Access policies cannot be associated with access entries of type {entry['type']}")
            now = time.time()
            associations = extras.policies.setdefault(principal, {})
            previous = associations.get(policy)
            association = {"policyArn": policy, "accessScope": access_scope,
                           "associatedAt": previous["associatedAt"] if previous else now, "modifiedAt": now}
            associations[policy] = association
            return dict(association)

    def list_access_policies(self, scope: Scope, cluster: str, principal: str) -> list[dict[str, Any]]:
        with self._lock:
            extras, _ = self._entry(scope, cluster, principal)
            return [dict(a) for _, a in sorted(extras.policies.get(principal, {}).items())]

    def disassociate_access_policy(self, scope: Scope, cluster: str, principal: str, policy: str) -> None:
        with self._lock:
            extras, _ = self._entry(scope, cluster, principal)
            if extras.policies.get(principal, {}).pop(policy, None) is None:
                raise not_found(f"The policy {policy} is not associated with {principal}")

    # ---- pod identity associations --------------------------------------------------

    def create_pod_identity(self, scope: Scope, cluster: str, body: dict[str, Any]) -> dict[str, Any]:
        _require(body, "namespace", "serviceAccount", "roleArn")
        with self._lock:
            extras = self._cluster(scope, cluster)
            for existing in extras.pod_identities.values():
                if (existing["namespace"], existing["serviceAccount"]) == (body["namespace"], body["serviceAccount"]):
                    raise in_use(f"Association already exists: {existing['associationId']}")
            association_id = "a-" + uuid.uuid4().hex[:17]
            now = time.time()
            association = {
                "clusterName": cluster,
                "namespace": body["namespace"],
                "serviceAccount": body["serviceAccount"],
                "roleArn": body["roleArn"],
                "associationId": association_id,
                "associationArn": scope.arn(f"podidentityassociation/{cluster}/{association_id}"),
                "tags": _tags(body.get("tags")),
                "createdAt": now,
                "modifiedAt": now,
                "disableSessionTags": bool(body.get("disableSessionTags", False)),
            }
            if body.get("targetRoleArn"):
                association["targetRoleArn"] = body["targetRoleArn"]
            extras.pod_identities[association_id] = association
            return dict(association)

    def _pod_identity(self, scope: Scope, cluster: str, association_id: str) -> tuple[ClusterExtras, dict[str, Any]]:
        extras = self._cluster(scope, cluster)
        association = extras.pod_identities.get(association_id)
        if association is None:
            raise not_found(f"Association not found: {association_id}")
        return extras, association

    def describe_pod_identity(self, scope: Scope, cluster: str, association_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._pod_identity(scope, cluster, association_id)[1])

    def list_pod_identities(self, scope: Scope, cluster: str, namespace: str | None = None,
                            service_account: str | None = None) -> list[dict[str, Any]]:
        keys = ("clusterName", "namespace", "serviceAccount", "associationArn", "associationId")
        with self._lock:
            return [
                {k: a[k] for k in keys}
                for a in self._cluster(scope, cluster).pod_identities.values()
                if (namespace is None or a["namespace"] == namespace)
                and (service_account is None or a["serviceAccount"] == service_account)
            ]

    def update_pod_identity(self, scope: Scope, cluster: str, association_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            _, association = self._pod_identity(scope, cluster, association_id)
            for key in ("roleArn", "disableSessionTags", "targetRoleArn"):
                if key in body:
                    association[key] = body[key]
            association["modifiedAt"] = time.time()
            return dict(association)

    def delete_pod_identity(self, scope: Scope, cluster: str, association_id: str) -> dict[str, Any]:
        with self._lock:
            extras, association = self._pod_identity(scope, cluster, association_id)
            del extras.pod_identities[association_id]
            return dict(association)

    # ---- tags -----------------------------------------------------------------------

    def _tagged(self, arn: str) -> dict[str, Any] | None:
        for extras in self._clusters.values():
            for resource in (*extras.addons.values(), *extras.access_entries.values(), *extras.pod_identities.values()):
                if arn in (resource.get("addonArn"), resource.get("accessEntryArn"), resource.get("associationArn")):
                    return resource
        return None

    def owns_arn(self, arn: str) -> bool:
        """True if ``arn`` names a resource type this store serves (existing or not)."""
        resource = arn.split(":", 5)[-1]
        return resource.split("/", 1)[0] in ("addon", "access-entry", "podidentityassociation")

    def list_tags(self, arn: str) -> dict[str, str]:
        with self._lock:
            resource = self._tagged(arn)
            if resource is None:
                raise not_found(f"Resource was not found: {arn}")
            return dict(resource["tags"])

    def tag(self, arn: str, tags: dict[str, str]) -> None:
        with self._lock:
            resource = self._tagged(arn)
            if resource is None:
                raise not_found(f"Resource was not found: {arn}")
            resource["tags"].update(_tags(tags))

    def untag(self, arn: str, keys: list[str]) -> None:
        with self._lock:
            resource = self._tagged(arn)
            if resource is None:
                raise not_found(f"Resource was not found: {arn}")
            for key in keys:
                resource["tags"].pop(key, None)

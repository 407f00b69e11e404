"""WSGI middleware in front of moto's app: the EKS calls moto lacks, and fixes to its answers.

EKS requests are recognised by their SigV4 credential scope (``.../<region>/eks/aws4_request``).
Routed here: add-ons (incl. DescribeAddonVersions and add-on DescribeUpdate), access
entries, access-policy associations, ListAccessPolicies, pod-identity associations,
and tags on those resources and on node groups. Everything else goes to moto, and
cluster and node-group answers are corrected on the way back:

- ``accessConfig`` is added (moto drops it; without it Terraform replaces the cluster);
- the ``remoteAccess`` moto injects into node groups created without one is removed, and
  the node group's ``updateConfig`` (ignored by moto's CreateNodegroup) is kept;
- ``endpoint`` and ``certificateAuthority.data`` point at the sandbox's Kubernetes API
  (read from the CA file at request time: the kube service writes it when it starts).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from . import eks_catalog
from .eks_state import EksApiError, EksExtensionState, Scope, invalid, not_found, paginate

log = logging.getLogger(__name__)

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([a-z0-9-]+)/eks/aws4_request")
_DEFAULT_ACCOUNT = "123456789012"
# A handler returns this to let moto answer the call after all.
_FORWARD = object()


@dataclass
class EksRequest:
    """One EKS REST call: method, raw (still percent-encoded) path, query, JSON body, scope."""

    method: str
    path: str
    query_values: dict[str, list[str]]
    body: dict[str, Any]
    scope: Scope
    access_key: str

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, last value of each."""
        return {k: v[-1] for k, v in self.query_values.items()}

    def page(self, items: list[Any], key: str, **extra: Any) -> dict[str, Any]:
        """A List* response: the page of ``items`` that ``maxResults`` and ``nextToken`` ask for."""
        page, token = paginate(items, self.query.get("maxResults"), self.query.get("nextToken"))
        return {**extra, key: page, "nextToken": token}


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _account_for(access_key: str, headers_account: str | None) -> str:
    """The account moto attributes a request to (same precedence as moto's own responses)."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if headers_account:
        return headers_account
    try:
        from moto.iam.models import get_account_id_from

        return get_account_id_from(access_key)
    except Exception:  # pragma: no cover - moto internals moved
        return _DEFAULT_ACCOUNT


def _json_response(start_response: Callable, status: int, document: Any, extra: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 409: "Conflict", 500: "Internal Server Error"}
    body = json.dumps(document).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra]
    start_response(f"{status} {reasons.get(status, 'Error')}", headers)
    return [body]


def _error_response(start_response: Callable, error: EksApiError) -> list[bytes]:
    return _json_response(start_response, error.status, {"message": error.message, "__type": error.code},
                          [("x-amzn-ErrorType", error.code)])


class EksLayer:
    """The middleware. ``app`` is moto's WSGI app; ``cluster_lookup(scope, name)`` returns
    moto's cluster object or None; ``caller_arn(scope, access_key)`` the creator's ARN."""

    def __init__(
        self,
        app: Callable,
        state: EksExtensionState,
        cluster_lookup: Callable[[Scope, str], Any],
        caller_arn: Callable[[Scope, str], str],
        kube_url: str | None = None,
        kube_ca_file: Path | None = None,
    ):
        self.app = app
        self.state = state
        self.cluster_lookup = cluster_lookup
        self.caller_arn = caller_arn
        self.kube_url = kube_url
        self.kube_ca_file = kube_ca_file
        # clientRequestToken -> the answer given: a retried request (the SDK retries a
        # timed-out POST with the same token) gets the same answer, as from real EKS.
        self._answered: dict[tuple[str, str, str, str], dict] = {}
        c = r"(?P<cluster>[^/]+)"
        self._routes: list[tuple[str, re.Pattern, Callable]] = [
            (method, re.compile(f"^{pattern}$"), handler)
            for method, pattern, handler in (
                ("GET", "/addons/supported-versions", self._addon_versions),
                ("GET", "/access-policies", self._access_policy_catalog),
                ("POST", f"/clusters/{c}/addons", self._create_addon),
                ("GET", f"/clusters/{c}/addons", self._list_addons),
                ("GET", f"/clusters/{c}/addons/(?P<addon>[^/]+)", self._describe_addon),
                ("DELETE", f"/clusters/{c}/addons/(?P<addon>[^/]+)", self._delete_addon),
                ("POST", f"/clusters/{c}/addons/(?P<addon>[^/]+)/update", self._update_addon),
                ("GET", f"/clusters/{c}/updates/(?P<update>[^/]+)", self._describe_update),
                ("POST", f"/clusters/{c}/access-entries", self._create_entry),
                ("GET", f"/clusters/{c}/access-entries", self._list_entries),
                ("GET", f"/clusters/{c}/access-entries/(?P<principal>[^/]+)", self._describe_entry),
                ("POST", f"/clusters/{c}/access-entries/(?P<principal>[^/]+)", self._update_entry),
                ("DELETE", f"/clusters/{c}/access-entries/(?P<principal>[^/]+)", self._delete_entry),
                ("POST", f"/clusters/{c}/access-entries/(?P<principal>[^/]+)/access-policies", self._associate_policy),
                ("GET", f"/clusters/{c}/access-entries/(?P<principal>[^/]+)/access-policies", self._list_policies),
                ("DELETE", f"/clusters/{c}/access-entries/(?P<principal>[^/]+)/access-policies/(?P<policy>[^/]+)",
                 self._disassociate_policy),
                ("POST", f"/clusters/{c}/pod-identity-associations", self._create_pod_identity),
                ("GET", f"/clusters/{c}/pod-identity-associations", self._list_pod_identities),
                ("GET", f"/clusters/{c}/pod-identity-associations/(?P<association>[^/]+)", self._describe_pod_identity),
                ("POST", f"/clusters/{c}/pod-identity-associations/(?P<association>[^/]+)", self._update_pod_identity),
                ("DELETE", f"/clusters/{c}/pod-identity-associations/(?P<association>[^/]+)", self._delete_pod_identity),
                ("GET", "/tags/(?P<arn>.+)", self._list_tags),
                ("POST", "/tags/(?P<arn>.+)", self._tag),
                ("DELETE", "/tags/(?P<arn>.+)", self._untag),
            )
        ]

    # ---- WSGI entry -------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if not match:
            return self.app(environ, start_response)
        access_key, region = match.groups()
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) or 0)
        environ["wsgi.input"] = io.BytesIO(raw)
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        path, _, query = raw_uri.partition("?")
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return _error_response(start_response, invalid("request body is not valid JSON"))
        scope = Scope(_account_for(access_key, environ.get("HTTP_X_MOTO_ACCOUNT_ID")), region, _partition(region))
        request = EksRequest(
            method=environ["REQUEST_METHOD"],
            path=path,
            query_values=parse_qs(query or environ.get("QUERY_STRING", "")),
            body=body if isinstance(body, dict) else {},
            scope=scope,
            access_key=access_key,
        )
        for method, pattern, handler in self._routes:
            found = pattern.match(path)
            if found and method == request.method:
                params = {k: unquote(v) for k, v in found.groupdict().items()}
                token = request.body.get("clientRequestToken") if request.method == "POST" else None
                key = (request.scope.account, request.scope.region, path, token)
                if token and key in self._answered:
                    log.info("%s %s -> 200 (repeated clientRequestToken)", request.method, path)
                    return _json_response(start_response, 200, self._answered[key])
                try:
                    result = handler(request, **params)
                except EksApiError as error:
                    log.info("%s %s -> %s %s", request.method, path, error.status, error.code)
                    return _error_response(start_response, error)
                if result is _FORWARD:
                    break
                log.info("%s %s -> 200", request.method, path)
                document = {k: v for k, v in result.items() if v is not None}
                if token:
                    self._answered[key] = document
                return _json_response(start_response, 200, document)
        return self._forward(environ, start_response, request)

    # ---- moto's own calls, corrected ---------------------------------------------------

    def _forward(self, environ: dict, start_response: Callable, request: EksRequest) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        output = b"".join(self.app(environ, capture))
        status, headers = captured["status"], captured["headers"]
        if not status.startswith("200"):
            start_response(status, headers)
            return [output]
        try:
            document = json.loads(output)
        except ValueError:
            start_response(status, headers)
            return [output]
        if isinstance(document, dict) and self._correct(request, document):
            output = json.dumps(document).encode()
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(output))))
        start_response(status, headers)
        return [output]

    def _correct(self, request: EksRequest, document: dict[str, Any]) -> bool:
        """Fix a successful moto answer in place; True if anything changed."""
        scope, path, method = request.scope, request.path, request.method
        cluster = document.get("cluster")
        if isinstance(cluster, dict) and path.startswith("/clusters"):
            name = cluster.get("name", "")
            if method == "POST" and path == "/clusters":
                self.state.record_cluster(scope, name, request.body.get("accessConfig"))
                self.state.bootstrap_creator(scope, name, self.caller_arn(scope, request.access_key))
            if method == "DELETE":
                self.state.forget_cluster(scope, name)
            access_config = self.state.access_config(scope, name)
            if access_config and "accessConfig" not in cluster:
                cluster["accessConfig"] = access_config
            self._point_at_sandbox(cluster)
            return True
        nodegroup = document.get("nodegroup")
        if isinstance(nodegroup, dict):
            cluster_name, name = nodegroup.get("clusterName", ""), nodegroup.get("nodegroupName", "")
            changed = False
            if method == "POST" and path.endswith("/node-groups"):
                self.state.record_nodegroup(scope, cluster_name, name, "remoteAccess" in request.body)
                # moto ignores CreateNodegroup's updateConfig; EKS keeps it (default maxUnavailable 1).
                update_config = request.body.get("updateConfig") or {"maxUnavailable": 1}
                self._moto_nodegroup(scope, cluster_name, name).update_config = update_config
                nodegroup["updateConfig"] = update_config
                changed = True
            if self.state.hides_remote_access(scope, cluster_name, name) and "remoteAccess" in nodegroup:
                nodegroup.pop("remoteAccess")
                changed = True
            return changed
        return False

    def _moto_nodegroup(self, scope: Scope, cluster_name: str, name: str) -> Any:
        cluster = self.cluster_lookup(scope, cluster_name)
        return cluster.nodegroups[name]

    def _point_at_sandbox(self, cluster: dict[str, Any]) -> None:
        if self.kube_url:
            cluster["endpoint"] = self.kube_url
        if self.kube_ca_file and self.kube_ca_file.is_file():
            cluster["certificateAuthority"] = {"data": base64.b64encode(self.kube_ca_file.read_bytes()).decode()}

    # ---- handlers (return a JSON document, or _FORWARD to let moto answer) --------------

    def _addon_versions(self, request: EksRequest) -> dict:
        rows = eks_catalog.addon_versions(request.query.get("addonName"), request.query.get("kubernetesVersion"))
        return request.page(rows, "addons")

    def _access_policy_catalog(self, request: EksRequest) -> dict:
        return request.page(eks_catalog.access_policies(), "accessPolicies")

    def _create_addon(self, request: EksRequest, cluster: str) -> dict:
        return {"addon": self.state.create_addon(request.scope, cluster, request.body)}

    def _list_addons(self, request: EksRequest, cluster: str) -> dict:
        names = self.state.list_addons(request.scope, cluster)
        return request.page(names, "addons")

    def _describe_addon(self, request: EksRequest, cluster: str, addon: str) -> dict:
        return {"addon": self.state.describe_addon(request.scope, cluster, addon)}

    def _delete_addon(self, request: EksRequest, cluster: str, addon: str) -> dict:
        return {"addon": self.state.delete_addon(request.scope, cluster, addon)}

    def _update_addon(self, request: EksRequest, cluster: str, addon: str) -> dict:
        return {"update": self.state.update_addon(request.scope, cluster, addon, request.body)}

    def _describe_update(self, request: EksRequest, cluster: str, update: str) -> Any:
        if not request.query.get("addonName"):
            return _FORWARD
        return {"update": self.state.describe_update(request.scope, cluster, update)}

    def _create_entry(self, request: EksRequest, cluster: str) -> dict:
        return {"accessEntry": self.state.create_access_entry(request.scope, cluster, request.body)}

    def _list_entries(self, request: EksRequest, cluster: str) -> dict:
        principals = self.state.list_access_entries(request.scope, cluster)
        return request.page(principals, "accessEntries")

    def _describe_entry(self, request: EksRequest, cluster: str, principal: str) -> dict:
        return {"accessEntry": self.state.describe_access_entry(request.scope, cluster, principal)}

    def _update_entry(self, request: EksRequest, cluster: str, principal: str) -> dict:
        return {"accessEntry": self.state.update_access_entry(request.scope, cluster, principal, request.body)}

    def _delete_entry(self, request: EksRequest, cluster: str, principal: str) -> dict:
        self.state.delete_access_entry(request.scope, cluster, principal)
        return {}

    def _associate_policy(self, request: EksRequest, cluster: str, principal: str) -> dict:
        association = self.state.associate_access_policy(request.scope, cluster, principal, request.body)
        return {"clusterName": cluster, "principalArn": principal, "associatedAccessPolicy": association}

    def _list_policies(self, request: EksRequest, cluster: str, principal: str) -> dict:
        policies = self.state.list_access_policies(request.scope, cluster, principal)
        return request.page(policies, "associatedAccessPolicies", clusterName=cluster, principalArn=principal)

    def _disassociate_policy(self, request: EksRequest, cluster: str, principal: str, policy: str) -> dict:
        self.state.disassociate_access_policy(request.scope, cluster, principal, policy)
        return {}

    def _create_pod_identity(self, request: EksRequest, cluster: str) -> dict:
        return {"association": self.state.create_pod_identity(request.scope, cluster, request.body)}

    def _list_pod_identities(self, request: EksRequest, cluster: str) -> dict:
        rows = self.state.list_pod_identities(request.scope, cluster, request.query.get("namespace"),
                                              request.query.get("serviceAccount"))
        return request.page(rows, "associations")

    def _describe_pod_identity(self, request: EksRequest, cluster: str, association: str) -> dict:
        return {"association": self.state.describe_pod_identity(request.scope, cluster, association)}

    def _update_pod_identity(self, request: EksRequest, cluster: str, association: str) -> dict:
        return {"association": self.state.update_pod_identity(request.scope, cluster, association, request.body)}

    def _delete_pod_identity(self, request: EksRequest, cluster: str, association: str) -> dict:
        return {"association": self.state.delete_pod_identity(request.scope, cluster, association)}

    def _list_tags(self, request: EksRequest, arn: str) -> Any:
        if self.state.owns_arn(arn):
            return {"tags": self.state.list_tags(arn)}
        nodegroup = self._nodegroup_by_arn(request.scope, arn)
        return {"tags": dict(nodegroup.tags)} if nodegroup is not None else _FORWARD

    def _tag(self, request: EksRequest, arn: str) -> Any:
        tags = request.body.get("tags")
        if not isinstance(tags, dict) or not tags:
            raise invalid("tags is required")
        if self.state.owns_arn(arn):
            self.state.tag(arn, tags)
            return {}
        nodegroup = self._nodegroup_by_arn(request.scope, arn)
        if nodegroup is None:
            return _FORWARD
        nodegroup.tags.update(tags)
        return {}

    def _untag(self, request: EksRequest, arn: str) -> Any:
        keys = request.query_values.get("tagKeys", [])
        if self.state.owns_arn(arn):
            self.state.untag(arn, keys)
            return {}
        nodegroup = self._nodegroup_by_arn(request.scope, arn)
        if nodegroup is None:
            return _FORWARD
        for key in keys:
            nodegroup.tags.pop(key, None)
        return {}

    def _nodegroup_by_arn(self, scope: Scope, arn: str) -> Any:
        """moto's node group object for a node-group ARN (moto cannot tag node groups itself)."""
        parts = arn.split(":", 5)
        if len(parts) < 6 or not parts[5].startswith("nodegroup/"):
            return None
        cluster_name = parts[5].split("/")[1]
        cluster = self.cluster_lookup(Scope(parts[4], parts[3], parts[1]), cluster_name)
        for nodegroup in (cluster.nodegroups.values() if cluster is not None else ()):
            if nodegroup.arn == arn:
                return nodegroup
        raise not_found(f"Resource was not found: {arn}")


"""The HTTP API: routes Kubernetes REST paths to ``Cluster`` operations.

Paths: ``/api/v1/...`` and ``/apis/<group>/<version>/...``, with
``namespaces/<ns>/`` for namespaced resources, ``<name>`` for one object and a
trailing subresource (``status``, ``log``, ``scale``, ``binding``, ``eviction``; ``exec`` and
``portforward`` are WebSocket sessions served by ``streams``).
Lists and watches honour labelSelector, fieldSelector, limit/continue,
resourceVersion, timeoutSeconds, allowWatchBookmarks and sendInitialEvents;
``Accept: ...;as=Table`` answers tables for ``kubectl get``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from . import discovery, rbac, tables
from .auth import Authenticator, Identity
from .cluster import Cluster, DeleteOptions, WriteOptions
from .errors import ApiError, bad_request, forbidden, gone, method_not_allowed, not_found, unauthorized
from .objects import clone
from .resources import ResourceType
from .selectors import selector_predicate

if TYPE_CHECKING:
    from .store import Change

log = logging.getLogger(__name__)

DEFAULT_WATCH_TIMEOUT = 1800.0
BOOKMARK_INTERVAL = 60.0
TRUE = ("true", "1", "yes")


class LogSource(Protocol):
    """The kubelet, as the API server uses it: container logs, and running containers for exec."""

    def read_log_range(self, pod: dict, container: str, tail_lines: int | None, previous: bool,
                       limit_bytes: int | None) -> tuple[bytes, int]: ...

    def follow_log(self, pod: dict, container: str, position: int | None = None): ...

    def container_context(self, namespace: str, name: str, container: str): ...


def _json(body: dict, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = {}
    if warnings:
        headers["Warning"] = ", ".join(f'299 - "{w}"' for w in warnings[:20])
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        content_type="application/json", headers=headers)


def _error(exc: ApiError) -> web.Response:
    return _json(exc.status(), exc.code)


def _wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=Table" in accept


class ApiServer:
    """aiohttp handlers for one ``Cluster``."""

    def __init__(self, cluster: Cluster, authenticator: Authenticator, server_address: str,
                 logs: LogSource | None = None):
        self.cluster = cluster
        self.auth = authenticator
        self.server_address = server_address
        self.logs = logs
        self.closing = asyncio.Event()

    def install(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self.dispatch)

    # -- dispatch ----------------------------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"].strip("/")
        try:
            identity = self.auth.identify(request.headers.get("Authorization"), path)
            if identity is None:
                raise unauthorized()
            response = self._discovery(request, path)  # open to every authenticated identity
            if response is not None:
                return response
            return await self._resource(request, path, identity)
        except ApiError as exc:
            return _error(exc)
        except Exception as exc:  # an emulator bug must still answer like a server, and be logged
            log.exception("internal error on %s %s", request.method, request.path_qs)
            return _error(ApiError(500, "InternalError", f"Internal error occurred: {exc}"))

    def _discovery(self, request: web.Request, path: str) -> web.Response | None:
        registry = self.cluster.registry
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return _json(discovery.version())
        if path == "/api":
            return _json(discovery.api_versions(self.server_address))
        if path == "/api/v1":
            return _json(discovery.resource_list(registry, "", "v1"))
        if path == "/apis":
            return _json(discovery.api_group_list(registry))
        if path == "/openapi/v3":
            return _json(discovery.openapi_v3_index(registry))
        if path.startswith("/openapi/v3/"):
            parts = path.split("/")[3:]
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2] if len(parts) > 2 else "")
            document = discovery.openapi_v3_document(registry, group, version)
            if document is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(document)
        if path.startswith("/openapi/"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        parts = path.split("/")[1:]
        if parts[0] == "apis" and len(parts) == 2:
            group = discovery.api_group(registry, parts[1])
            if group is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(group)
        if parts[0] == "apis" and len(parts) == 3:
            listing = discovery.resource_list(registry, parts[1], parts[2])
            if listing is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(listing)
        return None

    def _parse(self, path: str) -> tuple[ResourceType, str | None, str | None, str | None]:
        """(resource type, namespace, name, subresource) of a resource path."""
        parts = path.split("/")[1:]
        if parts[0] == "api" and len(parts) >= 3 and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        registry = self.cluster.registry
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and registry.get(group, version, rest[2]) is not None \
                and registry.get(group, version, rest[2]).namespaced:
            namespace, rest = rest[1], rest[2:]
        rtype = registry.get(group, version, rest[0])
        if rtype is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub and sub not in rtype.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rtype, namespace, name, sub

    async def _resource(self, request: web.Request, path: str, identity: Identity) -> web.StreamResponse:
        rtype, namespace, name, sub = self._parse(path)
        method = request.method
        query = request.query
        if not identity.admin:
            action = rbac.verb(method, query, name)
            if sub == "exec" or sub == "portforward":
                action = "create"  # the upgrade is a GET; RBAC asks for create on pods/exec
            resource = f"{rtype.plural}/{sub}" if sub else rtype.plural
            if not rbac.allowed(self.cluster.store, identity, action, rtype.group, resource, namespace, name):
                raise forbidden(rbac.denial(identity, action, rtype.group, resource, namespace, name))
        if name is None:
            if method == "GET":
                if query.get("watch", "").lower() in TRUE:
                    return await self._watch(request, rtype, namespace)
                return self._list(request, rtype, namespace)
            if method == "POST":
                if rtype.namespaced and namespace is None:
                    raise method_not_allowed(f"the server does not allow this method on the requested resource")
                return await self._create(request, rtype, namespace)
            if method == "DELETE":
                return await self._delete_collection(request, rtype, namespace)
            raise method_not_allowed(f"the server does not allow this method on the requested resource")
        if rtype.namespaced and namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace = namespace or ""
        if sub == "log":
            return await self._log(request, rtype, namespace, name)
        if sub == "exec":
            return await self._exec(request, rtype, namespace, name)
        if sub == "portforward":
            return await self._portforward(request, rtype, namespace, name)
        if sub == "scale":
            return await self._scale(request, rtype, namespace, name)
        if sub == "binding" and method == "POST":
            return await self._binding(request, rtype, namespace, name)
        if sub == "eviction" and method == "POST":
            self.cluster.delete(rtype, namespace, name, DeleteOptions())
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}, 201)
        if method == "GET":
            obj = self.cluster.get(rtype, namespace, name)
            if _wants_table(request):
                return _json(tables.table(rtype, [obj], obj["metadata"]["resourceVersion"],
                                          query.get("includeObject", "Metadata")))
            return _json(obj)
        options = self._write_options(request)
        if method == "PUT":
            body = await self._body(request)
            obj = self.cluster.replace(rtype, namespace, name, body, sub, options)
            return _json(obj, 200, options.warnings)
        if method == "PATCH":
            raw = await request.read()
            options.force = query.get("force", "").lower() in TRUE
            existed = self.cluster.find(rtype.key, namespace if rtype.namespaced else "", name) is not None
            obj = self.cluster.patch(rtype, namespace, name, request.headers.get("Content-Type", ""), raw, sub, options)
            return _json(obj, 200 if existed else 201, options.warnings)
        if method == "DELETE":
            obj = self.cluster.delete(rtype, namespace, name, await self._delete_options(request))
            return _json(obj)
        raise method_not_allowed("the server does not allow this method on the requested resource")

    # -- helpers --------------------------------------------------------------------------------------
    @staticmethod
    async def _body(request: web.Request) -> dict:
        raw = await request.read()
        if request.headers.get("Content-Type", "").startswith("application/vnd.kubernetes.protobuf"):
            from .protobuf import decode
            return decode(raw)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            import yaml
            try:
                body = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise bad_request(f"error decoding body: {exc}") from exc
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be an object")
        return body

    @staticmethod
    def _write_options(request: web.Request) -> WriteOptions:
        query = request.query
        validation = query.get("fieldValidation") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise bad_request(f"fieldValidation must be one of Ignore, Warn or Strict, got {validation}")
        return WriteOptions(dry_run=query.get("dryRun") == "All", field_validation=validation,
                            field_manager=query.get("fieldManager"))

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        raw = await request.read()
        body = {}
        if raw:
            try:
                body = json.loads(raw) or {}
            except ValueError as exc:
                raise bad_request(f"invalid DeleteOptions: {exc}") from exc
        query = request.query
        grace = body.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        return DeleteOptions(
            grace_period=int(grace) if grace not in (None, "") else None,
            propagation=body.get("propagationPolicy") or query.get("propagationPolicy"),
            preconditions=body.get("preconditions"),
            dry_run="All" in (body.get("dryRun") or []) or query.get("dryRun") == "All",
        )

    def _list(self, request: web.Request, rtype: ResourceType, namespace: str | None) -> web.Response:
        query = request.query
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else None
        items, revision, token, remaining = self.cluster.list(
            rtype, namespace, query.get("labelSelector"), query.get("fieldSelector"), limit, query.get("continue"))
        if _wants_table(request):
            return _json(tables.table(rtype, items, revision, query.get("includeObject", "Metadata"),
                                      continue_token=token))
        metadata = {"resourceVersion": revision}
        if token:
            metadata["continue"] = token
            metadata["remainingItemCount"] = remaining
        body = {"kind": f"{rtype.kind}List", "apiVersion": rtype.group_version, "metadata": metadata, "items": items}
        return _json(body)

    async def _create(self, request: web.Request, rtype: ResourceType, namespace: str | None) -> web.Response:
        options = self._write_options(request)
        obj = self.cluster.create(rtype, namespace, await self._body(request), options)
        return _json(obj, 201, options.warnings)

    async def _delete_collection(self, request: web.Request, rtype: ResourceType, namespace: str | None):
        query = request.query
        deleted = self.cluster.delete_collection(rtype, namespace, query.get("labelSelector"),
                                                 query.get("fieldSelector"), await self._delete_options(request))
        return _json({"kind": f"{rtype.kind}List", "apiVersion": rtype.group_version,
                      "metadata": {"resourceVersion": str(self.cluster.store.revision)}, "items": deleted})

    async def _binding(self, request: web.Request, rtype: ResourceType, namespace: str, name: str):
        body = await self._body(request)
        node = (body.get("target") or {}).get("name")
        if not node:
            raise bad_request("binding target name is required")

        def bind(pod: dict):
            if (pod.get("spec") or {}).get("nodeName"):
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{name}": '
                               f"pod {name} is already assigned to node \"{pod['spec']['nodeName']}\"")
            pod["spec"]["nodeName"] = node
        if self.cluster.mutate(rtype.key, namespace, name, bind) is None:
            raise not_found(rtype.group, rtype.plural, name)
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)

    async def _scale(self, request: web.Request, rtype: ResourceType, namespace: str, name: str):
        obj = self.cluster.get(rtype, namespace, name)
        if request.method in ("PUT", "PATCH"):
            raw = await request.read()
            body = json.loads(raw or b"{}")
            if request.method == "PATCH":
                from .patch import json_patch, merge_patch
                current_scale = self._scale_of(rtype, obj)
                body = json_patch(current_scale, body) if "json-patch" in request.headers.get("Content-Type", "") \
                    else merge_patch(current_scale, body)
            replicas = (body.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise bad_request("spec.replicas must be a non-negative integer")
            updated = clone(obj)
            updated.setdefault("spec", {})["replicas"] = replicas
            obj = self.cluster.replace(rtype, namespace, name, updated, None, self._write_options(request))
        return _json(self._scale_of(rtype, obj))

    @staticmethod
    def _scale_of(rtype: ResourceType, obj: dict) -> dict:
        selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: obj["metadata"].get(k) for k in ("name", "namespace", "uid", "resourceVersion",
                                                                 "creationTimestamp") if obj["metadata"].get(k)},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items()))}}

    async def _log(self, request: web.Request, rtype: ResourceType, namespace: str, name: str):
        pod = self.cluster.get(rtype, namespace, name)
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        init = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
        container = request.query.get("container")
        if not container:
            if len(containers) != 1:
                raise bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                  f"[{' '.join(containers)}]" + (f" or one of the init containers: [{' '.join(init)}]" if init else ""))
            container = containers[0]
        if container not in containers + init:
            raise bad_request(f"container {container} is not valid for pod {name}")
        if self.logs is None:
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')
        tail = request.query.get("tailLines")
        limit = request.query.get("limitBytes")
        previous = request.query.get("previous", "").lower() in TRUE
        follow = request.query.get("follow", "").lower() in TRUE and not previous
        data, end = await asyncio.to_thread(self.logs.read_log_range, pod, container, int(tail) if tail else None,
                                            previous, int(limit) if limit else None)
        if not follow:
            return web.Response(body=data, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain", "Transfer-Encoding": "chunked"})
        await response.prepare(request)
        await response.write(data)
        chunks = self.logs.follow_log(pod, container, end)
        try:
            async for chunk in chunks:  # b"" while there is nothing new: a chance to notice a leaver
                if self.closing.is_set() or request.transport is None or request.transport.is_closing():
                    break  # the server stops, or the follower went away
                if chunk:
                    await response.write(chunk)
        except ConnectionResetError:
            pass
        finally:
            await chunks.aclose()
        return response

    # -- streams (exec, port-forward) ---------------------------------------------------------------
    @staticmethod
    def _require_websocket(request: web.Request) -> None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise bad_request("Upgrade request required: this sandbox serves exec and port-forward over "
                              "WebSocket only, not over an SPDY/3.1 upgrade")

    async def _exec(self, request: web.Request, rtype: ResourceType, namespace: str, name: str):
        from .streams import exec as exec_stream
        pod = self.cluster.get(rtype, namespace, name)
        query = request.query
        command = query.getall("command", [])
        if not command:
            raise bad_request("you must specify at least 1 command")
        container = self._stream_container(pod, query.get("container"))
        context = self.logs.container_context(namespace, name, container) if self.logs is not None else None
        if context is None:
            raise bad_request(f'unable to upgrade connection: container not found ("{container}")')
        self._require_websocket(request)
        flags = {key: query.get(key, "").lower() in TRUE for key in ("stdin", "stdout", "stderr", "tty")}
        return await exec_stream.serve(request, context, command, closing=self.closing, **flags)

    async def _portforward(self, request: web.Request, rtype: ResourceType, namespace: str, name: str):
        from .streams import portforward
        pod = self.cluster.get(rtype, namespace, name)
        if not (pod.get("spec") or {}).get("nodeName"):
            raise bad_request(f"pod {name} does not have a host assigned")
        if (pod.get("status") or {}).get("phase") != "Running" or not (pod.get("status") or {}).get("podIP"):
            raise bad_request(f"unable to upgrade connection: pod {name} is not running")
        self._require_websocket(request)
        return await portforward.serve(request, pod, self.closing)

    @staticmethod
    def _stream_container(pod: dict, container: str | None) -> str:
        name = pod["metadata"]["name"]
        if not (pod.get("spec") or {}).get("nodeName"):
            raise bad_request(f"pod {name} does not have a host assigned")
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        init = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
        if not container:
            if len(containers) != 1:
                raise bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                  f"[{' '.join(containers)}]")
            return containers[0]
        if container not in containers + init:
            raise bad_request(f"container {container} is not valid for pod {name}")
        return container

    # -- watch ------------------------------------------------------------------------------------------
    async def _watch(self, request: web.Request, rtype: ResourceType, namespace: str | None) -> web.StreamResponse:
        query = request.query
        predicate = selector_predicate(query.get("labelSelector"), query.get("fieldSelector"), rtype.kind)
        rv = query.get("resourceVersion") or ""
        send_initial = query.get("sendInitialEvents", "").lower() in TRUE
        if rv and rv != "0" and not rv.isdigit():
            raise bad_request(f"invalid resource version: {rv}")
        since = None if (not rv or rv == "0" or send_initial) else int(rv)
        timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        bookmarks = query.get("allowWatchBookmarks", "").lower() in TRUE
        as_table = _wants_table(request)
        include = query.get("includeObject", "Metadata")
        try:
            watcher, backlog = self.cluster.store.watch(rtype.key, namespace if rtype.namespaced else None,
                                                        predicate, since)
        except ApiError as exc:
            if exc.code != 410:
                raise
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            await response.write(json.dumps({"type": "ERROR", "object": exc.status()}).encode() + b"\n")
            return response
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        first_table = [True]

        def encode(type_: str, change: "Change") -> bytes:
            if not as_table:
                return change.encoded(type_)
            body = tables.table(rtype, [change.obj], change.obj["metadata"]["resourceVersion"], include,
                                with_columns=first_table[0])
            first_table[0] = False
            return json.dumps({"type": type_, "object": body}).encode() + b"\n"

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await response.prepare(request)
            if backlog:
                await response.write(b"".join(encode(t, c) for t, c in backlog))
            if send_initial:
                await response.write(self._bookmark(rtype, initial_end=True))
            while not self.closing.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), min(remaining, BOOKMARK_INTERVAL))
                except asyncio.TimeoutError:
                    if bookmarks and loop.time() < deadline:
                        await response.write(self._bookmark(rtype))
                    continue
                if item is None:
                    if watcher.overflowed:
                        await response.write(json.dumps({"type": "ERROR", "object": gone(
                            "watch closed: the watcher fell too far behind").status()}).encode() + b"\n")
                    break
                chunks = [encode(*item)]
                while not watcher.queue.empty():
                    item = watcher.queue.get_nowait()
                    if item is None:
                        break
                    chunks.append(encode(*item))
                await response.write(b"".join(chunks))
                if item is None:
                    break
        except ConnectionResetError:
            pass  # the client went away
        finally:
            watcher.close()
        return response

    def _bookmark(self, rtype: ResourceType, initial_end: bool = False) -> bytes:
        metadata = {"resourceVersion": str(self.cluster.store.revision)}
        if initial_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        return json.dumps({"type": "BOOKMARK", "object": {"kind": rtype.kind, "apiVersion": rtype.group_version,
                                                          "metadata": metadata}}).encode() + b"\n"

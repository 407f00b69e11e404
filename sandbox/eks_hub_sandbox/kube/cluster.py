"""The cluster state and the API semantics on top of it: create, get, list, replace,
patch, delete with the server-side fields, validation, admission and CRD serving a
real API server applies. The HTTP layer (``api``) and the in-process controllers
both go through this class; controllers may also write status directly
(``write``/``mutate``) as a kubelet or controller-manager would through the API.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import yaml

from . import defaults, patch as patches, semantics, validation
from .admission import Admission
from .apply import server_side_apply
from .errors import ApiError, already_exists, bad_request, conflict, invalid, not_found, unsupported_media_type
from .objects import clone, new_uid, now, now_micro, random_hex, random_suffix
from .resources import Registry, ResourceType
from .selectors import selector_predicate
from .store import Change, Store

log = logging.getLogger(__name__)

NAMESPACES = ("", "namespaces")
EVENTS = ("", "events")
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")


@dataclass
class WriteOptions:
    """Query options of a write: dryRun, fieldValidation, fieldManager, force."""

    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    field_manager: str | None = None
    force: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class DeleteOptions:
    grace_period: int | None = None
    propagation: str | None = None  # Orphan | Background | Foreground
    preconditions: dict | None = None
    dry_run: bool = False


class Cluster:
    """One emulated cluster: store, served resource types, admission and event recording."""

    def __init__(self) -> None:
        self.store = Store()
        self.registry = Registry()
        self.admission = Admission(self)
        self.custom_schemas: dict[tuple[str, str, str], validation.CustomSchema] = {}
        self.ca_pem = b""
        self._event_index: dict[tuple, str] = {}
        self.store.subscribe([CRDS], self._on_crd_change)

    # -- lookups -----------------------------------------------------------------------------
    def resource(self, group: str, plural: str) -> ResourceType:
        rtype = self.registry.by_key(group, plural)
        if rtype is None:
            raise KeyError(f"{plural}.{group}")
        return rtype

    def get(self, rtype: ResourceType, namespace: str, name: str) -> dict:
        obj = self.store.get(rtype.key, namespace if rtype.namespaced else "", name)
        if obj is None:
            raise not_found(rtype.group, rtype.plural, name)
        return obj

    def find(self, key: tuple[str, str], namespace: str, name: str) -> dict | None:
        return self.store.get(key, namespace, name)

    def list(self, rtype: ResourceType, namespace: str | None, label_selector: str | None = None,
             field_selector: str | None = None, limit: int | None = None,
             continue_token: str | None = None) -> tuple[list[dict], str, str, int | None]:
        """Returns (items, list resourceVersion, continue token, remaining count)."""
        predicate = selector_predicate(label_selector, field_selector, rtype.kind)
        items = self.store.list(rtype.key, namespace if rtype.namespaced else None, predicate)
        revision = str(self.store.revision)
        if continue_token:
            try:
                state = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start = tuple(state["start"])
                revision = state["rv"]
            except (ValueError, KeyError, TypeError) as exc:
                raise bad_request(f"invalid continue token: {exc}") from exc
            items = [o for o in items if ((o["metadata"].get("namespace") or ""), o["metadata"]["name"]) > start]
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            token = base64.urlsafe_b64encode(json.dumps(
                {"rv": revision, "start": [last.get("namespace") or "", last["name"]]}).encode()).decode()
            return items[:limit], revision, token, len(items) - limit
        return items, revision, "", None

    # -- create ------------------------------------------------------------------------------
    def _check_type_meta(self, rtype: ResourceType, body: dict) -> None:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        api_version = body.setdefault("apiVersion", rtype.group_version)
        kind = body.setdefault("kind", rtype.kind)
        if api_version != rtype.group_version or kind != rtype.kind:
            raise bad_request(f"the API version in the data ({api_version}) does not match the expected API "
                              f"version ({rtype.group_version})" if api_version != rtype.group_version else
                              f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})")
        if not isinstance(body.get("metadata", {}), dict):
            raise bad_request("metadata must be an object")

    def _validate(self, rtype: ResourceType, obj: dict, options: WriteOptions, old: dict | None = None) -> dict:
        """Defaults, prunes and validates ``obj``; returns the object to store (422/400 on failure)."""
        name = obj["metadata"].get("name", "")
        if rtype.custom:
            schema = self.custom_schemas.get((rtype.group, rtype.version, rtype.plural))
            if schema:
                obj, unknown, causes = schema.process(obj)
            else:
                unknown, causes = [], []
        else:
            defaults.apply_defaults(obj)
            unknown, causes = validation.validate_builtin(obj)
        if unknown:
            if options.field_validation == "Strict":
                raise bad_request(f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
                                  f"strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown))
            if options.field_validation != "Ignore":
                options.warnings.extend(f'unknown field "{p}"' for p in unknown)
            validation.drop_fields(obj, unknown)
        causes += semantics.object_errors(obj)
        if old is not None:
            causes += semantics.update_errors(old, obj)
        if causes:
            raise invalid(rtype.kind, rtype.group, name, [dict(c) for c in causes])
        return obj

    def create(self, rtype: ResourceType, namespace: str | None, body: dict,
               options: WriteOptions | None = None) -> dict:
        """Create an object as POST does (server fields, defaults, validation, admission)."""
        options = options or WriteOptions()
        self._check_type_meta(rtype, body)
        obj = clone(body)
        meta = obj.setdefault("metadata", {})
        if rtype.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace or meta.get("namespace") or "default"
            self.admission.check_namespace(meta["namespace"], rtype.kind)
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            for _ in range(10):
                candidate = meta["generateName"] + random_suffix()
                if self.store.get(rtype.key, meta.get("namespace", ""), candidate) is None:
                    meta["name"] = candidate
                    break
        if meta.get("name") and self.store.get(rtype.key, meta.get("namespace", ""), meta["name"]) is not None:
            raise already_exists(rtype.group, rtype.plural, meta["name"])
        for server_field in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(server_field, None)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = now()
        if rtype.kind not in ("Pod", "Event", "ConfigMap", "Secret", "Namespace", "Node", "ServiceAccount") \
                and "spec" in obj or rtype.custom:
            meta["generation"] = 1
        if rtype.has_status and not rtype.status_on_create:
            initial = defaults.initial_status(obj) if not rtype.custom else None
            if initial is None:
                obj.pop("status", None)
            else:
                obj["status"] = initial
        if options.field_manager and not any(e.get("manager") == options.field_manager
                                              for e in meta.get("managedFields") or []):
            meta.pop("managedFields", None)
        obj = self._validate(rtype, obj, options)
        self.admission.on_create(obj)
        if options.dry_run:
            return obj
        self.store.put(rtype.key, obj)
        self.admission.after_create(obj)
        return obj

    # -- update --------------------------------------------------------------------------------
    def replace(self, rtype: ResourceType, namespace: str, name: str, body: dict, subresource: str | None = None,
                options: WriteOptions | None = None, current: dict | None = None) -> dict:
        """Replace an object (PUT), or only its status with ``subresource="status"``."""
        options = options or WriteOptions()
        self._check_type_meta(rtype, body)
        namespace = namespace if rtype.namespaced else ""
        old = current or self.get(rtype, namespace, name)
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") not in (None, name):
            raise bad_request(f'the name of the object ({body_meta.get("name")}) does not match the name on the URL ({name})')
        wanted_rv = body_meta.get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rtype.group, rtype.plural, name,
                           "the object has been modified; please apply your changes to the latest version and try again")
        if body_meta.get("uid") and body_meta["uid"] != old["metadata"]["uid"]:
            raise conflict(rtype.group, rtype.plural, name, "Precondition failed: UID in precondition does not match")
        if subresource == "status":
            obj = clone(old)
            obj["status"] = clone(body.get("status") or {})
        else:
            obj = clone(body)
            obj.setdefault("metadata", {})
            if rtype.has_status and "status" in old:
                obj["status"] = clone(old["status"])
            elif rtype.has_status:
                obj.pop("status", None)
        meta = obj["metadata"]
        for keep in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if keep in old["metadata"]:
                meta[keep] = old["metadata"][keep]
            else:
                meta.pop(keep, None)
        meta["name"] = name
        if rtype.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if "managedFields" not in meta and old["metadata"].get("managedFields"):
            meta["managedFields"] = old["metadata"]["managedFields"]
        obj = self._validate(rtype, obj, options, old)
        if "generation" in meta and _spec_of(obj) != _spec_of(old):
            meta["generation"] = meta["generation"] + 1
        self.admission.on_update(old, obj)
        if options.dry_run:
            return obj
        if _without_rv(obj) == _without_rv(old):
            return old  # no-op update: no new resourceVersion, no watch event
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and \
                (rtype.kind != "Pod" or not (obj.get("spec") or {}).get("nodeName")):
            self.store.remove(rtype.key, namespace, name)
            return obj
        self.store.put(rtype.key, obj)
        return obj

    def patch(self, rtype: ResourceType, namespace: str, name: str, content_type: str, raw: bytes,
              subresource: str | None = None, options: WriteOptions | None = None) -> dict:
        """PATCH with json-patch, merge-patch, strategic-merge-patch or apply-patch (server-side apply)."""
        options = options or WriteOptions()
        namespace = namespace if rtype.namespaced else ""
        content_type = content_type.split(";")[0].strip()
        if content_type == "application/apply-patch+yaml":
            return self._apply(rtype, namespace, name, raw, subresource, options)
        current = self.get(rtype, namespace, name)
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise bad_request(f"error decoding patch: {exc}") from exc
        if content_type == "application/json-patch+json":
            patched = patches.json_patch(current, body)
        elif content_type == "application/merge-patch+json":
            if not isinstance(body, dict):
                raise bad_request("merge patch must be a JSON object")
            patched = patches.merge_patch(current, body)
        elif content_type == "application/strategic-merge-patch+json":
            if rtype.custom:
                raise unsupported_media_type(content_type)
            if not isinstance(body, dict):
                raise bad_request("strategic merge patch must be a JSON object")
            patched = patches.strategic_merge(current, body)
        else:
            raise unsupported_media_type(content_type)
        if not isinstance(patched, dict):
            raise bad_request("patched object must be a JSON object")
        patched.setdefault("metadata", {})["resourceVersion"] = \
            (patched.get("metadata") or {}).get("resourceVersion") or current["metadata"]["resourceVersion"]
        return self.replace(rtype, namespace, name, patched, subresource, options, current=current)

    def _apply(self, rtype: ResourceType, namespace: str, name: str, raw: bytes, subresource: str | None,
               options: WriteOptions) -> dict:
        try:
            config = yaml.safe_load(raw or b"")
        except yaml.YAMLError as exc:
            raise bad_request(f"error decoding YAML: {exc}") from exc
        if not isinstance(config, dict):
            raise bad_request("apply patch must be an object")
        if not options.field_manager:
            raise bad_request("PATCH, fieldManager is required for apply requests")
        manager = options.field_manager
        config.setdefault("metadata", {})["name"] = name
        current = self.store.get(rtype.key, namespace, name)
        merged = server_side_apply(current, config, manager, rtype.group_version, keyed_lists=not rtype.custom)
        if current is None:
            if subresource:
                raise not_found(rtype.group, rtype.plural, name)
            return self.create(rtype, namespace, merged, options)
        merged["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.replace(rtype, namespace, name, merged, subresource, options, current=current)

    # -- delete ----------------------------------------------------------------------------------
    def delete(self, rtype: ResourceType, namespace: str, name: str, options: DeleteOptions | None = None) -> dict:
        """Delete an object: immediately, or by marking it (finalizers, pods on a node, namespaces)."""
        options = options or DeleteOptions()
        namespace = namespace if rtype.namespaced else ""
        obj = self.get(rtype, namespace, name)
        pre = options.preconditions or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
            raise conflict(rtype.group, rtype.plural, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                           f"UID in object meta: {obj['metadata']['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise conflict(rtype.group, rtype.plural, name, "Precondition failed: ResourceVersion in precondition does not match")
        if options.dry_run:
            return obj
        graceful = rtype.kind == "Pod" and (obj.get("spec") or {}).get("nodeName") and options.grace_period != 0 \
            and (obj.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        finalizers = list(obj["metadata"].get("finalizers") or [])
        if options.propagation == "Foreground":
            finalizers.append("foregroundDeletion")
        if options.propagation == "Orphan":
            finalizers.append("orphan")
        if rtype.kind == "Namespace":
            return self._mark_deleted(rtype, obj, 0, finalizers, phase="Terminating")
        if finalizers or graceful:
            if obj["metadata"].get("deletionTimestamp"):
                if graceful and options.grace_period is not None and options.grace_period < \
                        (obj["metadata"].get("deletionGracePeriodSeconds") or 0):
                    return self._mark_deleted(rtype, obj, options.grace_period, finalizers)
                return obj
            grace = options.grace_period
            if graceful and grace is None:
                grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            return self._mark_deleted(rtype, obj, grace or 0, finalizers)
        change = self.store.remove(rtype.key, namespace, name)
        return change.obj if change else obj

    def _mark_deleted(self, rtype: ResourceType, obj: dict, grace: int, finalizers: list[str],
                      phase: str | None = None) -> dict:
        updated = clone(obj)
        meta = updated["metadata"]
        if not meta.get("deletionTimestamp") or (meta.get("deletionGracePeriodSeconds") or 0) > grace:
            meta["deletionTimestamp"] = (datetime.now(timezone.utc) + timedelta(seconds=grace)).strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["deletionGracePeriodSeconds"] = grace
        if finalizers:
            meta["finalizers"] = list(dict.fromkeys(finalizers))
        if phase:
            updated.setdefault("status", {})["phase"] = phase
        if meta.get("generation") is not None:
            meta["generation"] += 1
        self.store.put(rtype.key, updated)
        return updated

    def delete_collection(self, rtype: ResourceType, namespace: str | None, label_selector: str | None,
                          field_selector: str | None, options: DeleteOptions | None = None) -> list[dict]:
        items, *_ = self.list(rtype, namespace, label_selector, field_selector)
        deleted = []
        for obj in items:
            try:
                deleted.append(self.delete(rtype, obj["metadata"].get("namespace") or "", obj["metadata"]["name"], options))
            except ApiError as exc:
                if exc.code != 404:
                    raise
        return deleted

    # -- direct writes for controllers --------------------------------------------------------------
    def write(self, key: tuple[str, str], obj: dict) -> dict:
        """Store an object as a controller would after a successful update (no validation)."""
        self.store.put(key, obj)
        return obj

    def mutate(self, key: tuple[str, str], namespace: str, name: str, change: Callable[[dict], object]) -> dict | None:
        """Apply ``change`` to a copy of an object and store it if anything changed.

        ``change`` edits the copy in place; returning False aborts. Returns the stored object.
        """
        current = self.store.get(key, namespace, name)
        if current is None:
            return None
        updated = clone(current)
        if change(updated) is False or updated == current:
            return current
        if updated["metadata"].get("deletionTimestamp") and not updated["metadata"].get("finalizers") \
                and current["metadata"].get("finalizers"):
            self.store.remove(key, namespace, name)
            return None
        self.store.put(key, updated)
        return updated

    def remove(self, key: tuple[str, str], namespace: str, name: str) -> Change | None:
        """Remove an object at once (a kubelet confirming a pod is gone, a controller done)."""
        return self.store.remove(key, namespace, name)

    def create_internal(self, key: tuple[str, str], obj: dict) -> dict:
        """Create an object from a controller: server fields set, defaults applied, no admission."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", new_uid())
        meta.setdefault("creationTimestamp", now())
        if not obj.get("kind", "").endswith("Event") and "spec" in obj and obj.get("kind") not in ("Pod", "Node"):
            meta.setdefault("generation", 1)
        if not self.registry.by_key(*key).custom:
            defaults.apply_defaults(obj)
        self.store.put(key, obj)
        return obj

    # -- events ----------------------------------------------------------------------------------------
    def record_event(self, involved: dict, reason: str, message: str, type_: str = "Normal",
                     component: str = "default-scheduler", host: str | None = None, field_path: str = "") -> None:
        """Record a core/v1 Event about ``involved`` (repeated events increase ``count``)."""
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        if self.store.get(NAMESPACES, "", namespace) is None:
            return
        key = (namespace, meta.get("uid"), reason, message, component)
        timestamp = now()
        existing_name = self._event_index.get(key)
        if existing_name:
            def bump(event: dict) -> None:
                event["count"] = event.get("count", 1) + 1
                event["lastTimestamp"] = timestamp
            if self.mutate(EVENTS, namespace, existing_name, bump):
                return
        name = f"{meta['name']}.{random_hex(16)}"
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                               "name": meta["name"], "namespace": meta.get("namespace") or "",
                               "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion"),
                               **({"fieldPath": field_path} if field_path else {})},
            "reason": reason, "message": message, "type": type_,
            "source": {"component": component, **({"host": host} if host else {})},
            "firstTimestamp": timestamp, "lastTimestamp": timestamp, "count": 1,
            "eventTime": None, "reportingComponent": component, "reportingInstance": host or "",
        }
        if not meta.get("namespace"):
            event["involvedObject"].pop("namespace")
        self.create_internal(EVENTS, event)
        self._event_index[key] = name
        if len(self._event_index) > 20000:
            for stale in list(self._event_index)[:10000]:
                self._event_index.pop(stale, None)

    # -- CRDs ----------------------------------------------------------------------------------------------
    def _on_crd_change(self, key, change: Change) -> None:
        crd = change.obj
        spec = crd.get("spec") or {}
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        for rtype in self.registry.remove_group_resource(group, plural):
            self.custom_schemas.pop((rtype.group, rtype.version, rtype.plural), None)
        if change.type == "DELETED":
            self.store.drop_collection((group, plural))
            return
        names = spec.get("names") or {}
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            subresources = tuple(sorted((version.get("subresources") or {}).keys()))
            rtype = ResourceType(
                group=group, version=version["name"], plural=plural, kind=names.get("kind", ""),
                namespaced=spec.get("scope") == "Namespaced", short_names=tuple(names.get("shortNames") or ()),
                subresources=subresources, categories=tuple(names.get("categories") or ()),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=version.get("additionalPrinterColumns") or [], custom=True)
            self.registry.add(rtype)
            self.custom_schemas[(group, version["name"], plural)] = validation.CustomSchema(rtype.schema)



def _spec_of(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _without_rv(obj: dict) -> dict:
    return {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}}


def stamp() -> str:
    return now_micro()

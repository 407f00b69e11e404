"""Base of the workload controllers: a reconcile loop that syncs only the objects a change
concerns (all of them once at start), as the controller-manager's work queues do."""

from __future__ import annotations

import asyncio
import logging

from ...errors import ApiError
from ..base import Controller
from ...objects import owner_reference
from ...selectors import match_label_selector
from .pods import controlled_by, controller_ref

log = logging.getLogger(__name__)

PODS = ("", "pods")


class KeyedController(Controller):
    """Subclasses set ``primary`` (the collection they sync), implement ``route`` (which
    primary objects a change concerns) and ``sync`` (one object)."""

    primary: tuple[str, str] = ("", "")
    kind = ""

    def __init__(self, runtime):
        super().__init__(runtime)
        self._pending: set[tuple[str, str]] = set()
        self._resync = True
        self._later: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self.pods = self.cluster.resource(*PODS)

    # -- queueing ------------------------------------------------------------------------------
    def mark(self, namespace: str, name: str) -> None:
        """Sync this object on the next reconcile."""
        self._pending.add((namespace, name))

    def mark_namespace(self, namespace: str) -> None:
        for obj in self.cluster.store.list(self.primary, namespace):
            self.mark(namespace, obj["metadata"]["name"])

    def mark_all(self) -> None:
        """Sync every object on the next reconcile (a node change concerns all DaemonSets)."""
        self._resync = True

    def mark_owner(self, obj: dict | None) -> None:
        """Queue the controller of ``obj`` when it is of this controller's kind."""
        if obj is None:
            return
        ref = controller_ref(obj)
        if ref is not None and ref.get("kind") == self.kind:
            self.mark(obj["metadata"].get("namespace") or "", ref.get("name", ""))

    def mark_adopters(self, change) -> None:
        """An object without a controller appeared or changed labels: it may be adopted."""
        obj = change.obj
        if change.type == "DELETED" or controller_ref(obj) is not None or not self.cluster.store.count(self.primary):
            return
        old = change.old
        if old is not None and old["metadata"].get("labels") == obj["metadata"].get("labels") and \
                old["metadata"].get("ownerReferences") == obj["metadata"].get("ownerReferences"):
            return
        self.mark_namespace(obj["metadata"].get("namespace") or "")

    def later(self, namespace: str, name: str, delay: float) -> None:
        """Sync this object again after ``delay`` seconds (minReadySeconds, deadlines); one
        timer per object, the earliest kept."""
        loop = asyncio.get_running_loop()
        when = loop.time() + max(delay, 0.05)
        key = (namespace, name)
        timer = self._later.get(key)
        if timer is not None and not timer.cancelled() and loop.time() < timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()

        def fire() -> None:
            self._later.pop(key, None)
            self.mark(namespace, name)
            self.kick()
        self._later[key] = loop.call_at(when, fire)

    def interested(self, key, change) -> bool:
        """Queue what the change concerns; a reconcile is needed while anything is queued."""
        self.route(key, change)
        return bool(self._pending) or self._resync

    def route(self, key, change) -> None:
        """Mark the primary objects a change of collection ``key`` concerns."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Cancel the per-object timers, then stop the loop."""
        for timer in self._later.values():
            timer.cancel()
        await super().stop()

    # -- the loop --------------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Sync the queued objects (each failure is retried alone a second later)."""
        store = self.cluster.store
        if self._resync:
            self._resync = False
            for obj in store.list(self.primary):
                self.mark(obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
        pending, self._pending = self._pending, set()
        for namespace, name in sorted(pending):
            obj = store.get(self.primary, namespace, name)
            if obj is None:
                continue
            try:
                self.sync(obj)
            except Exception:
                log.exception("%s: sync of %s/%s failed", self.name, namespace, name)
                self.later(namespace, name, 1.0)

    def sync(self, obj: dict) -> None:
        """Bring one primary object's dependents and status to where its spec wants them."""
        raise NotImplementedError

    # -- writes ----------------------------------------------------------------------------------
    def create_pod(self, owner: dict, pod: dict, component: str) -> dict | None:
        """Create a pod through the API semantics (admission: service account, namespace);
        records SuccessfulCreate or FailedCreate on the owner as the real controllers do."""
        namespace = owner["metadata"].get("namespace") or "default"
        try:
            created = self.cluster.create(self.pods, namespace, pod)
        except ApiError as exc:
            self.cluster.record_event(owner, "FailedCreate", f"Error creating: {exc.message}", "Warning",
                                      component=component)
            self.later(namespace, owner["metadata"]["name"], 2.0)
            return None
        self.cluster.record_event(owner, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                                  component=component)
        return created

    def delete_pod(self, owner: dict, pod: dict, component: str) -> None:
        """Delete a pod (gracefully when bound: the kubelet stops it) and record SuccessfulDelete."""
        meta = pod["metadata"]
        try:
            self.cluster.delete(self.pods, meta["namespace"], meta["name"])
        except ApiError as exc:
            if exc.code != 404:
                self.cluster.record_event(owner, "FailedDelete", f"Error deleting: {exc.message}", "Warning",
                                          component=component)
            return
        self.cluster.record_event(owner, "SuccessfulDelete", f"Deleted pod: {meta['name']}", component=component)

    def write_status(self, obj: dict, status: dict) -> None:
        """Store ``status`` on the object if it differs (no write, no event otherwise)."""
        if (obj.get("status") or {}) == status:
            return
        meta = obj["metadata"]
        self.cluster.mutate(self.primary, meta.get("namespace") or "", meta["name"],
                            lambda current: current.__setitem__("status", status))

    def claim(self, key: tuple[str, str], owner: dict, selector: dict) -> list[dict]:
        """The objects of ``key`` (pods, ReplicaSets) ``owner`` controls: its own, plus orphans
        matching ``selector`` it adopts (none while it is being deleted); its objects that
        stopped matching are released, as the controller-manager's ref managers do."""
        meta = owner["metadata"]
        namespace = meta.get("namespace") or ""
        claimed = []
        for obj in self.cluster.store.list(key, namespace):
            ref = controller_ref(obj)
            matches = match_label_selector(selector, obj["metadata"].get("labels"))
            if ref is not None and ref.get("uid") == meta["uid"]:
                if matches or meta.get("deletionTimestamp"):
                    claimed.append(obj)
                else:
                    self._set_owner(key, obj, owner, adopt=False)
            elif ref is None and matches and not meta.get("deletionTimestamp") and \
                    not obj["metadata"].get("deletionTimestamp"):
                adopted = self._set_owner(key, obj, owner, adopt=True)
                if adopted is not None and controlled_by(adopted, owner):
                    claimed.append(adopted)
        return claimed

    def _set_owner(self, key, obj: dict, owner: dict, adopt: bool) -> dict | None:
        uid = owner["metadata"]["uid"]

        def change(current: dict):
            refs = [r for r in current["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if adopt:
                if controller_ref(current) is not None:
                    return False
                refs.append(owner_reference(owner))
            if refs:
                current["metadata"]["ownerReferences"] = refs
            else:
                current["metadata"].pop("ownerReferences", None)
        meta = obj["metadata"]
        return self.cluster.mutate(key, meta.get("namespace") or "", meta["name"], change)

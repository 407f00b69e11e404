"""The garbage collector: when an owner is deleted, its dependents (objects whose
``ownerReferences`` name it) are deleted too, unless they still have a living owner;
with ``propagationPolicy: Orphan`` the references are removed instead. Owners
deleted with Foreground propagation go once their dependents are gone."""

from __future__ import annotations

from .base import Controller


class GarbageCollector(Controller):
    name = "garbage-collector"
    watches = None  # every collection

    def __init__(self, runtime):
        super().__init__(runtime)
        self._dependents: dict[str, set[tuple[tuple[str, str], str, str]]] = {}
        self._gone: list[tuple[str, bool]] = []
        self._foreground: set[tuple[tuple[str, str], str, str]] = set()

    def start(self) -> None:
        self.cluster.store.subscribe(None, self._observe)
        super().start()

    def interested(self, key, change) -> bool:
        return False  # _observe decides

    def _observe(self, key, change) -> None:
        meta = change.obj["metadata"]
        ref = (key, meta.get("namespace") or "", meta["name"])
        old_owners = {o.get("uid") for o in ((change.old or {}).get("metadata") or {}).get("ownerReferences") or []}
        new_owners = {o.get("uid") for o in meta.get("ownerReferences") or []} if change.type != "DELETED" else set()
        for uid in old_owners - new_owners:
            self._dependents.get(uid, set()).discard(ref)
        for uid in new_owners:
            self._dependents.setdefault(uid, set()).add(ref)
        finalizers = meta.get("finalizers") or []
        if change.type == "DELETED":
            self._gone.append((meta.get("uid"), "orphan" in finalizers))
            self._foreground.discard(ref)
            self._dirty.set()
        elif meta.get("deletionTimestamp") and ("orphan" in finalizers or "foregroundDeletion" in finalizers):
            self._foreground.add(ref)
            self._dirty.set()

    async def reconcile(self) -> None:
        store = self.cluster.store
        for ref in list(self._foreground):
            key, namespace, name = ref
            owner = store.get(key, namespace, name)
            if owner is None:
                self._foreground.discard(ref)
                continue
            finalizers = owner["metadata"].get("finalizers") or []
            uid = owner["metadata"]["uid"]
            dependents = [d for d in self._dependents.get(uid, set()) if store.get(*d) is not None]
            if "orphan" in finalizers:
                for dependent in dependents:
                    self._drop_reference(dependent, uid)
                dependents = []
            elif dependents:
                for dependent in dependents:
                    self._delete(dependent)
                self.wake_at(0.3)
                continue
            self.cluster.mutate(key, namespace, name, lambda obj: obj["metadata"].__setitem__(
                "finalizers", [f for f in obj["metadata"].get("finalizers") or [] if f not in ("orphan", "foregroundDeletion")]))
            self._foreground.discard(ref)
        gone, self._gone = self._gone, []
        for uid, orphan in gone:
            for dependent in list(self._dependents.pop(uid, set())):
                if orphan:
                    self._drop_reference(dependent, uid)
                    continue
                obj = store.get(*dependent)
                if obj is None:
                    continue
                living = [o for o in obj["metadata"].get("ownerReferences") or [] if o.get("uid") != uid
                          and self._owner_exists(o, dependent[1])]
                if not living:
                    self._delete(dependent)

    def _owner_exists(self, reference: dict, namespace: str) -> bool:
        api_version, kind = reference.get("apiVersion", ""), reference.get("kind", "")
        rtype = self.cluster.registry.by_kind(api_version, kind)
        if rtype is None:
            return False
        owner = self.cluster.store.get(rtype.key, namespace if rtype.namespaced else "", reference.get("name", ""))
        return owner is not None and owner["metadata"].get("uid") == reference.get("uid")

    def _drop_reference(self, dependent, uid: str) -> None:
        key, namespace, name = dependent
        self.cluster.mutate(key, namespace, name, lambda obj: obj["metadata"].__setitem__(
            "ownerReferences", [o for o in obj["metadata"].get("ownerReferences") or [] if o.get("uid") != uid]))

    def _delete(self, dependent) -> None:
        key, namespace, name = dependent
        rtype = self.cluster.registry.by_key(*key)
        if rtype is None:
            return
        try:
            self.cluster.delete(rtype, namespace, name)
        except Exception:
            pass

"""The namespace controller: a namespace being deleted (phase Terminating) has all its
objects deleted (pods gracefully), then its ``kubernetes`` finalizer removed, and goes."""

from __future__ import annotations

from .base import Controller

NAMESPACES = ("", "namespaces")
PODS = ("", "pods")


class NamespaceController(Controller):
    name = "namespace"
    watches = (NAMESPACES,)

    async def reconcile(self) -> None:
        store = self.cluster.store
        for namespace in store.list(NAMESPACES):
            if not namespace["metadata"].get("deletionTimestamp"):
                continue
            name = namespace["metadata"]["name"]
            remaining = 0
            for rtype in self.cluster.registry.types():
                if not rtype.namespaced or rtype.key == ("", "events"):
                    continue
                for obj in store.list(rtype.key, name):
                    remaining += 1
                    if not obj["metadata"].get("deletionTimestamp"):
                        self.cluster.delete(rtype, name, obj["metadata"]["name"])
                    elif rtype.key != PODS or not (obj.get("spec") or {}).get("nodeName"):
                        self.cluster.remove(rtype.key, name, obj["metadata"]["name"])
            if remaining:
                self.wake_at(0.3)
                continue
            for event in store.list(("", "events"), name):
                self.cluster.remove(("", "events"), name, event["metadata"]["name"])
            self.cluster.remove(NAMESPACES, "", name)

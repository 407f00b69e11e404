"""In-memory object store with one global, monotonic resourceVersion and watch history.

Every write gets the next revision, written into ``metadata.resourceVersion``. Each
collection (one per resource) keeps a bounded history of changes so that a watch can
resume from a resourceVersion; resuming from a revision older than the history is
answered with 410 Gone, as etcd compaction would be. Nothing is persisted: a restart
is a fresh cluster (the controllers rebuild nodes from the local AWS).

Stored objects are never mutated in place: writers store new dicts, so a change
record and its cached JSON encoding stay valid for every watcher.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Callable, Iterable

from .errors import gone

Key = tuple[str, str]  # (group, plural)
HISTORY_PER_COLLECTION = 20000
WATCHER_BACKLOG_LIMIT = 100000


class Change:
    """One write: ADDED, MODIFIED or DELETED, with the object before (``old``) and after."""

    __slots__ = ("revision", "type", "obj", "old", "_encoded")

    def __init__(self, revision: int, type_: str, obj: dict, old: dict | None):
        self.revision = revision
        self.type = type_
        self.obj = obj
        self.old = old
        self._encoded: dict[str, bytes] = {}

    def encoded(self, type_: str) -> bytes:
        """The watch-stream line for this change as seen with event type ``type_`` (cached)."""
        line = self._encoded.get(type_)
        if line is None:
            line = json.dumps({"type": type_, "object": self.obj}, separators=(",", ":")).encode() + b"\n"
            self._encoded[type_] = line
        return line


class Watcher:
    """A subscription to one collection, filtered by namespace and a selector predicate."""

    def __init__(self, collection: "Collection", namespace: str | None, predicate: Callable[[dict], bool] | None):
        self.collection = collection
        self.namespace = namespace
        self.predicate = predicate
        self.queue: asyncio.Queue[tuple[str, Change] | None] = asyncio.Queue()
        self.overflowed = False

    def _selected(self, obj: dict | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.predicate is None or self.predicate(obj)

    def event_type(self, change: Change) -> str | None:
        """The event type this watcher sees for a change (objects entering/leaving the selection)."""
        if change.type == "DELETED":
            return "DELETED" if self._selected(change.obj) else None
        now = self._selected(change.obj)
        before = change.type == "MODIFIED" and self._selected(change.old)
        if now and before:
            return "MODIFIED"
        if now:
            return "ADDED"
        if before:
            return "DELETED"
        return None

    def offer(self, change: Change) -> None:
        type_ = self.event_type(change)
        if type_ is None:
            return
        if self.queue.qsize() > WATCHER_BACKLOG_LIMIT:
            self.overflowed = True
            self.close()
            return
        self.queue.put_nowait((type_, change))

    def close(self) -> None:
        self.collection.watchers.discard(self)
        self.queue.put_nowait(None)


class Collection:
    """Objects of one resource, keyed by (namespace, name), with their change history."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict] = {}
        self.history: deque[Change] = deque()
        self.compacted = 0  # changes with revision <= compacted are no longer in history
        self.watchers: set[Watcher] = set()

    def record(self, change: Change) -> None:
        self.history.append(change)
        if len(self.history) > HISTORY_PER_COLLECTION:
            self.compacted = self.history.popleft().revision
        for watcher in list(self.watchers):
            watcher.offer(change)


class Store:
    """All collections plus in-process listeners (the controllers)."""

    def __init__(self) -> None:
        self.revision = 1
        self._collections: dict[Key, Collection] = {}
        self._listeners: list[tuple[frozenset[Key] | None, Callable[[Key, Change], None]]] = []

    def collection(self, key: Key) -> Collection:
        coll = self._collections.get(key)
        if coll is None:
            coll = self._collections[key] = Collection()
        return coll

    def next_revision(self) -> int:
        self.revision += 1
        return self.revision

    # -- reads -----------------------------------------------------------------------------
    def get(self, key: Key, namespace: str, name: str) -> dict | None:
        return self.collection(key).objects.get((namespace or "", name))

    def list(self, key: Key, namespace: str | None = None,
             predicate: Callable[[dict], bool] | None = None) -> list[dict]:
        """Objects of a collection, sorted by (namespace, name), optionally filtered."""
        objects = self.collection(key).objects
        keys = sorted(objects)
        result = []
        for ns_name in keys:
            if namespace is not None and ns_name[0] != namespace:
                continue
            obj = objects[ns_name]
            if predicate is None or predicate(obj):
                result.append(obj)
        return result

    def count(self, key: Key) -> int:
        return len(self.collection(key).objects)

    # -- writes ----------------------------------------------------------------------------
    def put(self, key: Key, obj: dict) -> Change:
        """Store ``obj`` (taking ownership of the dict) with the next resourceVersion."""
        coll = self.collection(key)
        meta = obj["metadata"]
        ns_name = (meta.get("namespace") or "", meta["name"])
        old = coll.objects.get(ns_name)
        revision = self.next_revision()
        meta["resourceVersion"] = str(revision)
        coll.objects[ns_name] = obj
        change = Change(revision, "MODIFIED" if old is not None else "ADDED", obj, old)
        self._publish(key, coll, change)
        return change

    def remove(self, key: Key, namespace: str, name: str) -> Change | None:
        """Remove an object; the DELETED event carries it with a new resourceVersion."""
        coll = self.collection(key)
        old = coll.objects.pop((namespace or "", name), None)
        if old is None:
            return None
        revision = self.next_revision()
        final = {**old, "metadata": {**old["metadata"], "resourceVersion": str(revision)}}
        change = Change(revision, "DELETED", final, old)
        self._publish(key, coll, change)
        return change

    def drop_collection(self, key: Key) -> None:
        """Forget a collection entirely (its CRD was deleted); watchers are closed."""
        coll = self._collections.pop(key, None)
        if coll:
            for watcher in list(coll.watchers):
                watcher.close()

    def _publish(self, key: Key, coll: Collection, change: Change) -> None:
        coll.record(change)
        for keys, callback in self._listeners:
            if keys is None or key in keys:
                callback(key, change)

    # -- watching --------------------------------------------------------------------------
    def subscribe(self, keys: Iterable[Key] | None, callback: Callable[[Key, Change], None]) -> None:
        """Call ``callback(key, change)`` synchronously after every write to ``keys`` (None: all)."""
        self._listeners.append((frozenset(keys) if keys is not None else None, callback))

    def watch(self, key: Key, namespace: str | None, predicate: Callable[[dict], bool] | None,
              since: int | None) -> tuple[Watcher, list[tuple[str, Change]]]:
        """Open a watch. Returns the watcher and the backlog to send before live events.

        ``since`` None means "current state first" (synthetic ADDED events); a number
        replays history after it, or raises 410 Gone if that history was compacted.
        """
        coll = self.collection(key)
        watcher = Watcher(coll, namespace, predicate)
        backlog: list[tuple[str, Change]] = []
        if since is None:
            for obj in self.list(key, namespace, predicate):
                backlog.append(("ADDED", Change(int(obj["metadata"]["resourceVersion"]), "ADDED", obj, None)))
        else:
            if since < coll.compacted:
                raise gone(f"too old resource version: {since} ({coll.compacted + 1})")
            for change in coll.history:
                if change.revision > since:
                    type_ = watcher.event_type(change)
                    if type_:
                        backlog.append((type_, change))
        coll.watchers.add(watcher)
        return watcher, backlog

    def close_all_watchers(self) -> None:
        for coll in self._collections.values():
            for watcher in list(coll.watchers):
                watcher.close()

    def keys(self) -> list[Key]:
        return list(self._collections)

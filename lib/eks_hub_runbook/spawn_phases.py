"""Where a spawn's time goes: per user, the phases between asking the hub and the server answering.

Each user's spawn is split by *marks*, seconds since its spawn request on this machine's monotonic
clock, stamped as each fact arrives (a fact that arrives after a later one it must precede, through
the other watch, is dated no later than that one):

    requested -> created -> scheduled -> pulled -> started -> answered

- ``created``: the user's pod exists (the hub queued the spawn, KubeSpawner built and created it);
- ``scheduled``: the pod is bound to a node (a new node's launch is waited for here);
- ``pulled``: the kubelet has the image of the pod's (first) container (its ``Pulled`` event: pulled,
  or already present on the node); an init container's image is pulled, and the init container
  run, before it (z2jh's ``block-cloud-metadata``), so they count in this phase;
- ``started``: the container's process runs (``Started``, or the container state ``running``);
- ``answered``: the server answered through the proxy with the user's own token.

:class:`SpawnWatch` stamps the cluster's marks with two watches (the user pods, their events)
on threads of their own, as KubeSpawner's reflectors do; the load check stamps ``requested``
and ``answered`` itself. :func:`phase_durations` turns marks into the five :data:`PHASES`, and
:class:`Floor` is the least time N users can take on this machine: the configured waits plus
the CPU one server needs to start, times N, over the cores.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

#: (phase, from mark, to mark), in order
PHASES: tuple[tuple[str, str, str], ...] = (
    ("hub queue", "requested", "created"),
    ("node wait", "created", "scheduled"),
    ("image pull", "scheduled", "pulled"),
    ("process start", "pulled", "started"),
    ("server answering", "started", "answered"),
)
MARKS: tuple[str, ...] = ("requested", *(end for _, _, end in PHASES))
PHASE_NAMES: tuple[str, ...] = tuple(name for name, _, _ in PHASES)
_EVENT_MARKS = {"Scheduled": "scheduled", "Pulled": "pulled", "Started": "started"}
_ALREADY_PRESENT = "already present"


def phase_durations(marks: dict[str, float]) -> dict[str, float | None]:
    """Seconds per phase from a user's marks (seconds since its request, ``requested`` = 0).

    A mark that arrived out of order (a watch event later than the next fact) counts as reached
    with the previous one; a missing mark leaves the phases around it None.
    """
    durations: dict[str, float | None] = {}
    reached: dict[str, float] = {"requested": marks.get("requested", 0.0)}
    latest = reached["requested"]
    for name, start, end in PHASES:
        begin, stop = reached.get(start), marks.get(end)
        if stop is not None:
            latest = reached[end] = max(stop, latest)
        durations[name] = None if begin is None or stop is None else reached[end] - begin
    return durations


def ordered(marks: dict[str, float]) -> bool:
    """Every mark present and none earlier than the one before it (as the facts arrived)."""
    values = [marks.get(name) for name in MARKS]
    return None not in values and all(a <= b for a, b in zip(values, values[1:]))


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The ``pct`` percentile with linear interpolation (numpy's default); None when empty."""
    ordered_values = sorted(values)
    if not ordered_values:
        return None
    rank = (len(ordered_values) - 1) * pct / 100
    low, high = int(rank), min(int(rank) + 1, len(ordered_values) - 1)
    return ordered_values[low] + (ordered_values[high] - ordered_values[low]) * (rank - low)


def phase_rows(per_user: Sequence[dict[str, float | None]]) -> list[dict[str, Any]]:
    """One row per phase: users measured, p50, p95, max and its share of the total time (mean)."""
    totals = [sum(v for v in phases.values() if v is not None) for phases in per_user]
    total = sum(totals)
    rows = []
    for name in PHASE_NAMES:
        values = [phases[name] for phases in per_user if phases.get(name) is not None]
        rows.append({"phase": name, "users": len(values),
                     "p50 (s)": _round(percentile(values, 50)), "p95 (s)": _round(percentile(values, 95)),
                     "max (s)": _round(max(values) if values else None),
                     "share": f"{100 * sum(values) / total:.0f}%" if total else ""})
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# -- the floor ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    """The least time N users starting together can take here: the waits they cannot avoid (a new
    node's launch, the first image pull: the target's configured delays, counted when the run met
    them), plus the CPU one user server takes to start, times N, over the cores."""

    users: int
    cores: int
    cpu_per_server_s: float
    node_launch_s: float = 0.0
    image_pull_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.node_launch_s + self.image_pull_s + self.cpu_per_server_s * self.users / max(self.cores, 1)

    def as_dict(self) -> dict[str, Any]:
        """The floor and its parts, for a record."""
        return {"users": self.users, "cores": self.cores, "cpu_per_server_s": round(self.cpu_per_server_s, 3),
                "node_launch_s": self.node_launch_s, "image_pull_s": self.image_pull_s,
                "floor_s": round(self.seconds, 2)}


def cores() -> int:
    """The cores this process may run on (what the user servers share on a local target)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a live process has used (``/proc/<pid>/stat``); None when gone."""
    try:
        stat = open(f"/proc/{pid}/stat", encoding="ascii", errors="replace").read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_mb(pid: int) -> float | None:
    """A live process's resident memory in MiB (``VmRSS`` of ``/proc/<pid>/status``); None when gone."""
    try:
        for line in open(f"/proc/{pid}/status", encoding="ascii", errors="replace"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# -- the watch ---------------------------------------------------------------------------------------


@dataclass
class _PodMarks:
    user: str = ""
    stamps: dict[str, float] = field(default_factory=dict)
    fresh_pulls: int = 0  # images pulled for it, one after the other (not already present on the node)
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (when, reason, container) as they came


class SpawnWatch:
    """Stamps, on this machine's monotonic clock, when each user pod is created, bound to a node,
    has its image and runs its process, from watches on the pods (``label_selector``) and the events
    of ``namespace``. Use as a context manager around the spawns; :meth:`marks` afterwards.

    Both watches are established (listed, then watched from the list's resourceVersion) before
    ``__enter__`` returns, so nothing that happens inside the block is missed; what existed before
    it is not stamped.
    """

    def __init__(self, api, namespace: str, label_selector: str, user_label: str,
                 clock: Callable[[], float] = time.monotonic, poll_seconds: int = 30) -> None:
        self.api, self.namespace, self.selector, self.user_label = api, namespace, label_selector, user_label
        self.clock, self.poll_seconds = clock, poll_seconds
        self._pods: dict[str, _PodMarks] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._streams: set = set()  # the responses being read, closed at exit to end the reads at once
        self.errors: list[str] = []

    # -- lifecycle
    def __enter__(self) -> "SpawnWatch":
        base = f"/api/v1/namespaces/{self.namespace}"
        pods_version = self._list_version(f"{base}/pods", labelSelector=self.selector)
        events_version = self._list_version(f"{base}/events")
        for path, version, handle, query in ((f"{base}/pods", pods_version, self._pod, {"labelSelector": self.selector}),
                                             (f"{base}/events", events_version, self._event, {})):
            thread = threading.Thread(target=self._follow, args=(path, version, handle, query),
                                      name=f"spawn-watch{path.rsplit('/', 1)[1]}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        with self._lock:
            streams = list(self._streams)
        for response in streams:
            response.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def events(self, user: str, requested: float) -> list[tuple[float, str, str]]:
        """The user's pod's events as they came: (seconds since ``requested``, reason, container field)."""
        with self._lock:
            mine = [p for p in self._pods.values() if p.user == user and p.stamps.get("created", -1) >= requested]
            pod = max(mine, key=lambda p: p.stamps["created"]) if mine else None
            return [(round(when - requested, 3), reason, where) for when, reason, where in (pod.events if pod else [])]

    def marks(self, user: str, requested: float) -> tuple[dict[str, float], int]:
        """The user's cluster marks in seconds since ``requested`` (a monotonic time), and how many
        images were pulled for its pod (not already on the node). The newest pod of the user counts."""
        with self._lock:
            mine = [p for p in self._pods.values() if p.user == user and p.stamps.get("created", -1) >= requested]
            if not mine:
                return {}, 0
            pod = max(mine, key=lambda p: p.stamps["created"])
            return {name: stamp - requested for name, stamp in pod.stamps.items()}, pod.fresh_pulls

    # -- the watches
    def _list_version(self, path: str, **query) -> str:
        from . import kube

        return (kube._get(self.api, path, limit=1, **query).get("metadata") or {}).get("resourceVersion", "")

    def _follow(self, path: str, version: str, handle: Callable[[dict], None], query: dict) -> None:
        """Watch ``path`` from ``version`` until stopped, re-watching (from the last version seen)
        after each server-side timeout."""
        from kubernetes.watch.watch import iter_resp_lines

        while not self._stop.is_set():
            try:
                params = [("watch", "true"), ("resourceVersion", version), ("allowWatchBookmarks", "true"),
                          ("timeoutSeconds", str(self.poll_seconds)), *query.items()]
                response = self.api.call_api(path, "GET", query_params=params, header_params={"Accept": "application/json"},
                                             auth_settings=["BearerToken"], _preload_content=False,
                                             _return_http_data_only=True,
                                             _request_timeout=(10, self.poll_seconds + 30))  # a busy API server is waited for
                with self._lock:
                    self._streams.add(response)
                try:
                    for line in iter_resp_lines(response):
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            handle(obj)
                        elif event.get("type") == "ERROR":  # e.g. 410 Gone: start from now
                            version = self._list_version(path, **query)
                finally:
                    with self._lock:
                        self._streams.discard(response)
                    response.release_conn()
            except Exception as exc:  # noqa: BLE001 - a watch that fails is reported, the run goes on
                if not self._stop.is_set():
                    self.errors.append(f"{path}: {type(exc).__name__}: {exc}"[:200])
                    self._stop.wait(0.5)

    def _stamp(self, pod_name: str, mark: str, user: str = "") -> _PodMarks:
        now = self.clock()
        with self._lock:
            pod = self._pods.setdefault(pod_name, _PodMarks())
            if user:
                pod.user = user
            # The two watches deliver in their own order: a pod seen running before its Pulled event
            # came. A fact that must precede one already stamped is dated no later than that one.
            later = [pod.stamps[m] for m in MARKS[MARKS.index(mark) + 1:] if m in pod.stamps]
            pod.stamps.setdefault(mark, min([now, *later]))
            return pod

    def _pod(self, pod: dict) -> None:
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        name, user = meta.get("name", ""), (meta.get("labels") or {}).get(self.user_label, "")
        self._stamp(name, "created", user)
        if spec.get("nodeName"):
            self._stamp(name, "scheduled")
        if any("running" in (c.get("state") or {}) for c in status.get("containerStatuses") or []):
            self._stamp(name, "started")

    def _event(self, event: dict) -> None:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") != "Pod":
            return
        name = involved.get("name", "")
        with self._lock:
            self._pods.setdefault(name, _PodMarks()).events.append(
                (self.clock(), event.get("reason", ""), involved.get("fieldPath", "")))
        mark = _EVENT_MARKS.get(event.get("reason", ""))
        if mark is None:
            return
        if mark == "pulled" and _ALREADY_PRESENT not in (event.get("message") or ""):
            with self._lock:
                self._pods.setdefault(name, _PodMarks()).fresh_pulls += 1
        if mark == "pulled" and involved.get("fieldPath", "").startswith("spec.initContainers"):
            return  # the init container's image: the main container's Pulled marks the phase's end
        self._stamp(name, mark)


"""Load check: can the hub hold a workshop-sized crowd?

``run(hub_url, users=N, profile=SLUG, out_dir=...)``:

1. signs N users in concurrently: with an admin (a token, or an admin user who logs in)
   the users ``load-001``... are created through the hub's REST API and each gets its own
   short-lived API token; without one, each user logs in through the hub's login page
   (works when the hub lets them in, e.g. ``allow_all``);
2. starts every user's server with the profile, all at once (one thread per user), and
   measures the time from the request to "ready" (the hub's progress stream); with cluster
   access, watches of the user pods and their events split each spawn into phases (hub queue,
   node wait, image pull, process start, server answering: :mod:`.spawn_phases`), and on a
   local hub each server's CPU gives the run's *floor* (configured waits + CPU per server x N
   / cores) and the figure of merit p95 / floor;
3. checks every server answers through the proxy (``GET /user/<name>/api/status`` with
   the user's own token);
4. counts the GPU nodes the pods landed on (Karpenter's doing) against the ideal
   ``ceil(N x GPUs per user / GPUs per node)`` (4 time-sliced replicas per g5 node);
5. stops every server, checks no user pod and (on a local hub) no ``jupyterhub-singleuser``
   process of a load user is left, and deletes the users it created.

Results: :class:`LoadResult` with one row per user, a summary (p50/p95/max, ready count,
errors, floor, GPU nodes vs ideal, orphans), p50/p95 per phase, and a plot stacked by phase; :meth:`LoadResult.write` puts
``loadtest.json``, ``loadtest.csv`` and ``loadtest.png`` into a record folder.

Everything is bounded: at most :data:`MAX_USERS` users, one overall deadline, and threads
that all finish before ``run`` returns. Tokens stay inside the hub clients; nothing here
prints or records them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar
from urllib.parse import urlsplit

from . import spawn_phases
from .errors import HubError, ParameterError, RunbookError
from .hub import HubClient
from .spawn_phases import Floor, percentile

MAX_USERS = 100
USER_PREFIX = "load-"
ADMIN_TOKEN_ENV = "RUNBOOK_HUB_ADMIN_TOKEN"
GPU_RESOURCE = "nvidia.com/gpu"
SINGLEUSER_SELECTOR = "component=singleuser-server"
USERNAME_LABEL = "hub.jupyter.org/username"
DEFAULT_NAMESPACE = "jupyterhub"
Progress = Callable[[str], None]
T = TypeVar("T")
# More GPU nodes than ideal: reported, not a failure of the load check. The platform's NodeOverlay
# (manifests/karpenter/nodeoverlays.yaml, feature gate nodeOverlay) lets Karpenter count the
# time-sliced replicas, so users starting together share nodes; without it Karpenter counts
# physical GPUs and each pending pod gets a node.
OVERPROVISION_NOTE = ("more GPU nodes than ideal: Karpenter counts time-sliced replicas only through the "
                      "platform's NodeOverlay with its feature gate on (kubectl get nodeoverlays), else physical "
                      "GPUs (upstream karpenter issue 729); spare nodes are consolidated once empty")


# -- hub clients for the load test ------------------------------------------------------------


class _UserClient(HubClient):
    """A hub session for one load user, either logged in or holding a token minted by an admin."""

    @classmethod
    def with_token(cls, url: str, username: str, token: str, verify: bool | str) -> "_UserClient":
        client = cls(url, verify=verify)
        client.username = username
        client._token = token
        return client

    def status(self) -> dict:
        """``GET /user/<name>/api/status`` through the proxy: the server itself answers."""
        self._ensure_token()
        response = self._request("GET", f"/user/{self._user()}/api/status")
        if response.status_code != 200:
            raise HubError(f"the server of {self.username} answered HTTP {response.status_code} on /api/status")
        return response.json()


class _AdminClient(HubClient):
    """Admin operations the load test needs: create and delete users, mint their tokens."""

    @classmethod
    def with_token(cls, url: str, token: str, verify: bool | str) -> "_AdminClient":
        client = cls(url, verify=verify)
        client._token = token
        who = client._api("GET", "/user").json()
        client.username = who.get("name")
        return client

    def check_admin(self) -> None:
        """Raise a clear HubError unless this session may create users and start their servers."""
        who = self._api("GET", "/user").json()
        scopes = set(who.get("scopes") or [])
        needed = {"admin:users", "admin:servers", "tokens"}
        if not who.get("admin") and not needed <= {s.split("!", 1)[0] for s in scopes}:
            raise HubError(f"{who.get('name') or 'this token'} is not a hub admin: the load test needs the scopes "
                           f"{', '.join(sorted(needed))} (deploy with -p admin_users <name>, or use an admin token)")

    def create_user(self, name: str) -> bool:
        """Create a user; False if it already exists."""
        response = self._api("POST", f"/users/{name}", expect=(201, 409))
        return response.status_code == 201

    def user_client(self, name: str, expires_in: int) -> _UserClient:
        """A client holding a fresh token of ``name`` (the token never leaves the clients)."""
        response = self._api("POST", f"/users/{name}/tokens", expect=(200, 201),
                             json={"note": "eks-hub-runbook loadtest", "expires_in": expires_in})
        return _UserClient.with_token(self.url, name, response.json()["token"], self._session.verify)

    def delete_user(self, name: str) -> None:
        self._api("DELETE", f"/users/{name}", expect=(204, 404))


# -- results ----------------------------------------------------------------------------------


@dataclass
class UserResult:
    """What happened to one load user."""

    user: str
    login_s: float | None = None
    ready_s: float | None = None
    answered: bool = False
    node: str = ""
    instance_type: str = ""
    stopped: bool = False
    error: str = ""
    answered_s: float | None = None  # seconds from the request to its answer through the proxy
    marks: dict[str, float] = field(default_factory=dict)  # seconds since the spawn request (spawn_phases.MARKS)
    events: list = field(default_factory=list)  # its pod's events as they came: (seconds, reason, container)
    fresh_pulls: int = 0  # images pulled for its pod, one after the other (not already on the node)
    cpu_s: float | None = None  # CPU seconds its server process had used once all were ready (local hub)
    rss_mb: float | None = None  # its server process's resident memory then (MiB)

    @property
    def ready(self) -> bool:
        return self.ready_s is not None

    @property
    def phases(self) -> dict[str, float | None]:
        """Seconds per phase (spawn_phases.PHASES); empty without the cluster's marks."""
        return spawn_phases.phase_durations(self.marks) if len(self.marks) > 1 else {}


@dataclass
class LoadResult:
    """The outcome of :func:`run`: per-user rows and a summary."""

    hub_url: str
    profile: str
    users: list[UserResult]
    login_mode: str
    wall_s: float
    gpu_nodes: int | None = None
    gpu_nodes_ideal: int | None = None
    gpu_per_node: int | None = None
    gpu_nodes_before: int | None = None
    gpu_nodes_peak: int | None = None
    orphan_pods: list[str] = field(default_factory=list)
    orphan_processes: list[int] = field(default_factory=list)
    orphan_check: str = ""
    floor: Floor | None = None
    watch_errors: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def ready_times(self) -> list[float]:
        return sorted(u.ready_s for u in self.users if u.ready_s is not None)

    @property
    def errors(self) -> list[str]:
        return [f"{u.user}: {u.error}" for u in self.users if u.error]

    @property
    def passed(self) -> bool:
        """All ready, all answered, all stopped, no errors, nothing orphaned (GPU node count is reported only)."""
        return (all(u.ready and u.answered and u.stopped for u in self.users) and not self.errors
                and not self.orphan_pods and not self.orphan_processes)

    def phase_rows(self) -> list[dict[str, Any]]:
        """p50/p95/max per phase of the users whose phases were recorded (spawn_phases.phase_rows)."""
        return spawn_phases.phase_rows([u.phases for u in self.users if u.phases])

    def summary(self) -> dict[str, Any]:
        """The figures for a report: counts, p50/p95/max time to ready, GPU nodes vs ideal, orphans,
        and the floor with p95 / floor (the figure of merit) when it was measured."""
        times = self.ready_times
        p95 = percentile(times, 95)
        floor = self.floor.seconds if self.floor is not None else None
        return {
            "users": len(self.users),
            "profile": self.profile,
            "login": self.login_mode,
            "ready": sum(u.ready for u in self.users),
            "answered": sum(u.answered for u in self.users),
            "errors": len(self.errors),
            "p50_s": _round(percentile(times, 50)),
            "p95_s": _round(percentile(times, 95)),
            "max_s": _round(max(times) if times else None),
            "wall_s": _round(self.wall_s),
            "gpu_nodes": self.gpu_nodes,
            "gpu_nodes_ideal": self.gpu_nodes_ideal,
            "gpu_nodes_created": (None if self.gpu_nodes_peak is None or self.gpu_nodes_before is None
                                  else self.gpu_nodes_peak - self.gpu_nodes_before),
            "orphan_pods": len(self.orphan_pods),
            "orphan_processes": len(self.orphan_processes),
            "orphan_check": self.orphan_check,
            "floor_s": _round(floor),
            "p95_over_floor": round(p95 / floor, 2) if p95 is not None and floor else None,
            "cpu_per_server_s": None if self.floor is None else round(self.floor.cpu_per_server_s, 2),
            "rss_per_server_mb": _round(percentile([u.rss_mb for u in self.users if u.rss_mb], 50)),
            "passed": self.passed,
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per user: user, login_s, ready_s, answered, node, instance_type, stopped, error."""
        rows = []
        for user in self.users:
            row = {**asdict(user), "login_s": _round(user.login_s), "ready_s": _round(user.ready_s),
                   "answered_s": _round(user.answered_s), "cpu_s": _round(user.cpu_s), "rss_mb": _round(user.rss_mb)}
            row.pop("marks")
            row.pop("events")
            row.update({f"{name} (s)": None if value is None else round(value, 2) for name, value in user.phases.items()})
            rows.append(row)
        return rows

    def summary_rows(self) -> list[dict[str, Any]]:
        """The summary as check rows (check, value, expected, ok, note) for a notebook table.

        The GPU-node row is informational: ``passed`` does not depend on it (see the note).
        """
        s = self.summary()
        ideal = s["gpu_nodes_ideal"]
        over = ideal is not None and s["gpu_nodes"] is not None and s["gpu_nodes"] > ideal
        rows = [
            {"check": "servers ready", "value": f"{s['ready']}/{s['users']}", "expected": f"{s['users']}/{s['users']}",
             "ok": s["ready"] == s["users"]},
            {"check": "servers answer through the proxy", "value": f"{s['answered']}/{s['users']}",
             "expected": f"{s['users']}/{s['users']}", "ok": s["answered"] == s["users"]},
            {"check": "errors", "value": s["errors"], "expected": 0, "ok": s["errors"] == 0},
            {"check": "time to ready p50 / p95 / max (s)", "value": f"{s['p50_s']} / {s['p95_s']} / {s['max_s']}",
             "expected": "", "ok": s["ready"] > 0},
            {"check": "p95 / floor", "value": s["p95_over_floor"], "expected": "<= 1.25", "ok": None},
            {"check": "GPU nodes used (ideal)", "value": s["gpu_nodes"], "expected": ideal,
             "ok": None if ideal is None or s["gpu_nodes"] is None else s["gpu_nodes"] <= ideal},
            {"check": "orphans after stop (pods, processes)", "value": f"{s['orphan_pods']}, {s['orphan_processes']}",
             "expected": "0, 0", "ok": not self.orphan_pods and not self.orphan_processes},
        ]
        for row in rows:
            row["note"] = ""
        rows[4]["note"] = self._floor_note()
        rows[5]["note"] = (OVERPROVISION_NOTE if over else
                           "no cluster access: not counted" if ideal is None else f"{self.gpu_per_node} GPUs per node")
        rows[6]["note"] = s["orphan_check"]
        return rows

    def _floor_note(self) -> str:
        if self.floor is None:
            return "not measured (a remote hub: its servers' CPU is not visible here)"
        f = self.floor
        return (f"floor {f.seconds:.1f} s = node launch {f.node_launch_s:g} s + image pull {f.image_pull_s:g} s + "
                f"{f.cpu_per_server_s:.2f} CPU-s per server x {f.users} / {f.cores} cores")

    def plot(self, path: Path | None = None):
        """Each user's time to answer (sorted), stacked by phase when the phases were recorded, with
        the p50/p95 time to ready and the floor as lines; saved as PNG when ``path`` is given."""
        from matplotlib.figure import Figure

        ordered = sorted(self.users, key=lambda u: (u.ready_s is None, u.answered_s or u.ready_s or 0))
        fig = Figure(figsize=(8, 3.6), dpi=100)
        ax = fig.subplots()
        positions = range(len(ordered))
        if any(u.phases for u in ordered):
            bottom = [0.0] * len(ordered)
            for name in spawn_phases.PHASE_NAMES:
                heights = [(u.phases.get(name) or 0.0) for u in ordered]
                ax.bar(positions, heights, bottom=bottom, label=name, width=0.85)
                bottom = [b + h for b, h in zip(bottom, heights)]
            failed = [i for i, u in enumerate(ordered) if not (u.ready and u.answered)]
            ax.bar(failed, [max(bottom) if bottom else 1.0] * len(failed), color="tab:red", alpha=0.3, label="failed")
            ax.set_ylabel("seconds since the spawn request")
        else:
            colors = ["tab:blue" if u.ready and u.answered else "tab:red" for u in ordered]
            ax.bar(positions, [u.ready_s or 0 for u in ordered], color=colors)
            ax.set_ylabel("time to ready (s)")
        ax.set_xticks(list(positions), [u.user for u in ordered], rotation=90, fontsize=6 if len(ordered) > 40 else 7)
        s = self.summary()
        for name, color, label in (("p50_s", "tab:green", "p50 ready"), ("p95_s", "tab:orange", "p95 ready"),
                                   ("floor_s", "black", "floor")):
            if s[name] is not None:
                ax.axhline(s[name], color=color, linestyle="--" if name != "floor_s" else ":", linewidth=1,
                           label=f"{label} {s[name]} s")
        nodes = "" if s["gpu_nodes"] is None else f"; GPU nodes {s['gpu_nodes']} (ideal {s['gpu_nodes_ideal']})"
        merit = "" if s["p95_over_floor"] is None else f"; p95/floor {s['p95_over_floor']}"
        ax.set_title(f"{s['ready']}/{s['users']} servers ready with '{self.profile}'{nodes}{merit}", fontsize=10)
        if s["p50_s"] is not None:
            ax.legend(loc="upper left", fontsize=7, framealpha=0.9, ncol=2)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``loadtest.json`` (summary + rows), ``loadtest.csv`` (rows) and ``loadtest.png``."""
        import csv

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {"json": out / "loadtest.json", "csv": out / "loadtest.csv", "plot": out / "loadtest.png"}
        files["json"].write_text(json.dumps({"hub_url": self.hub_url, "summary": self.summary(), "users": self.rows(),
                                             "phases": self.phase_rows(), "marks": {u.user: u.marks for u in self.users},
                                             "events": {u.user: u.events for u in self.users},
                                             "floor": self.floor.as_dict() if self.floor else None,
                                             "watch_errors": self.watch_errors, "orphan_pods": self.orphan_pods,
                                             "orphan_processes": self.orphan_processes}, indent=2, default=str))
        rows = self.rows()
        with files["csv"].open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["user"])
            writer.writeheader()
            writer.writerows(rows)
        self.plot(files["plot"])
        self.files = files
        return files


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def ideal_gpu_nodes(users: int, gpus_per_user: int = 1, gpus_per_node: int = 4) -> int:
    """The fewest GPU nodes that fit ``users`` (e.g. 20 users, 1 of 4 time-sliced replicas each: 5)."""
    if gpus_per_node <= 0:
        raise ValueError("gpus_per_node must be positive")
    return math.ceil(users * gpus_per_user / gpus_per_node)


# -- local processes ----------------------------------------------------------------------------


def singleuser_processes(users: Sequence[str]) -> list[int]:
    """Local ``jupyterhub-singleuser`` processes serving any of ``users`` (the sandbox kubelet's pods).

    Matched by the ``JUPYTERHUB_USER`` variable the hub gives each server, so other
    people's servers on the same machine are never counted.
    """
    return sorted(pid for pids in singleuser_processes_by_user(users).values() for pid in pids)


def singleuser_processes_by_user(users: Sequence[str]) -> dict[str, list[int]]:
    """:func:`singleuser_processes` by user: the local server processes of each of ``users`` that has one."""
    wanted = {f"JUPYTERHUB_USER={u}".encode(): u for u in users}
    found: dict[str, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"jupyterhub-singleuser" not in cmdline and b"jupyter" not in cmdline:
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in environ:
            if entry in wanted:
                found.setdefault(wanted[entry], []).append(int(proc.name))
                break
    return found


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "localhost" or host.startswith("127.") or host == "::1"


# -- cluster view ------------------------------------------------------------------------------


def _gpu_nodes(api) -> dict[str, dict]:
    """GPU nodes by name (allocatable nvidia.com/gpu > 0 or a GPU node pool label)."""
    from . import kube

    return {row["node"]: row for row in kube.nodes(api) if row["gpu_allocatable"] > 0 or row["gpu_capacity"] > 0}


def _node_names(api) -> set[str]:
    """Every node's name."""
    from . import kube

    return {row["node"] for row in kube.nodes(api)}


def _watch_spawns(api, namespace: str) -> spawn_phases.SpawnWatch:
    """The watch of the load users' pods and events that stamps their spawns' phases."""
    return spawn_phases.SpawnWatch(api, namespace, SINGLEUSER_SELECTOR, USERNAME_LABEL)


def _user_pods(api, namespace: str, users: Sequence[str]) -> dict[str, dict]:
    """Load users' server pods by user name: pod, node, instance_type, gpu_request."""
    from kubernetes import client

    from . import kube

    wanted = set(users)
    try:
        pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=SINGLEUSER_SELECTOR).items
    except client.ApiException as exc:
        raise kube.KubeError(f"listing the user pods in {namespace} failed: HTTP {exc.status}") from None
    mine = [p for p in pods if (p.metadata.labels or {}).get(USERNAME_LABEL) in wanted]
    nodes = {row["node"]: row for row in kube.nodes(api)} if mine else {}
    found = {}
    for pod in mine:
        node = pod.spec.node_name or ""
        gpus = sum(int((c.resources.limits or {}).get(GPU_RESOURCE, 0) if c.resources else 0)
                   for c in pod.spec.containers)
        found[pod.metadata.labels[USERNAME_LABEL]] = {
            "pod": pod.metadata.name, "node": node,
            "instance_type": nodes.get(node, {}).get("instance_type", ""), "gpu_request": gpus,
        }
    return found


# -- per-user state and what each concurrent step hands back ----------------------------------


@dataclass
class _SignedIn:
    """What signing one user in handed back: its client (None when refused) and whether this run created it."""

    client: _UserClient | None = None
    created: bool = False
    login_s: float | None = None
    error: str = ""
    unexpected: Exception | None = None  # anything but a HubError; raised by the caller after merging


@dataclass
class _Started:
    """What starting one user's server handed back: when it was requested (monotonic), seconds to
    ready and to its answer through the proxy, and whether it answered."""

    requested: float | None = None
    ready_s: float | None = None
    answered_s: float | None = None
    answered: bool = False
    error: str = ""
    unexpected: Exception | None = None


@dataclass
class _Stopped:
    """What stopping one user's server handed back."""

    stopped: bool = False
    error: str = ""
    unexpected: Exception | None = None


@dataclass
class _LoadUser:
    """One load user during a run: its result row, its client once signed in, and whether this run
    created it (only those are deleted). Worker threads never touch it: the caller merges their outcomes."""

    row: UserResult
    client: _UserClient | None = None
    created: bool = False

    def signed_in(self, outcome: _SignedIn) -> None:
        """Merge the sign-in outcome: the client to use from now on, login time or error."""
        self.client, self.created = outcome.client, outcome.created
        self.row.login_s = outcome.login_s
        if outcome.error:
            self.row.error = outcome.error

    def started(self, outcome: _Started) -> None:
        """Merge the start outcome: time to ready, answered, error."""
        self.row.ready_s = outcome.ready_s
        self.row.answered, self.row.answered_s = outcome.answered, outcome.answered_s
        if outcome.error:
            self.row.error = outcome.error

    def stopped(self, outcome: _Stopped) -> None:
        """Merge the stop outcome; a stop error is appended to any earlier one."""
        self.row.stopped = outcome.stopped
        if outcome.error:
            self.row.error = (self.row.error + "; " if self.row.error else "") + outcome.error

    def timed(self, outcome: _Started, marks: dict[str, float], fresh_pulls: int) -> None:
        """Merge the cluster's marks of the user's spawn (seconds since its request) with its own."""
        self.row.marks = {"requested": 0.0, **marks}
        if outcome.answered_s is not None:
            self.row.marks["answered"] = outcome.answered_s
        self.row.fresh_pulls = fresh_pulls

    def placed(self, pod: dict) -> None:
        """Record where the user's pod runs (a row of :func:`_user_pods`)."""
        self.row.node = pod.get("node", "")
        self.row.instance_type = pod.get("instance_type", "")


def _raise_unexpected(outcomes: Iterable[_SignedIn | _Started | _Stopped]) -> None:
    """Raise the first exception other than HubError that a worker caught (after its outcome was merged)."""
    for outcome in outcomes:
        if outcome.unexpected is not None:
            raise outcome.unexpected


# -- the per-user work (runs on worker threads; returns, never shares) -------------------------


def _sign_in(name: str, admin: _AdminClient | None, hub_url: str, verify: bool | str, password: str,
             token_life: int) -> _SignedIn:
    """Sign one load user in: created by the admin and given its own token, or logged in through the login page."""
    outcome = _SignedIn()
    t0 = time.monotonic()
    try:
        if admin is not None:
            outcome.created = admin.create_user(name)
            outcome.client = admin.user_client(name, expires_in=token_life)
        else:
            client = _UserClient(hub_url, verify=verify)
            client.login(name, password)
            client.token(note="eks-hub-runbook loadtest", expires_in=token_life)
            outcome.client = client
        outcome.login_s = time.monotonic() - t0
    except HubError as exc:
        outcome.error = f"login: {exc}"
    except Exception as exc:  # the caller raises it, but first learns which user was created
        outcome.unexpected = exc
    return outcome


def _start_server(client: _UserClient, profile: str, deadline: float, stop_timeout: float) -> _Started:
    """Start one user's server with ``profile``, wait until ready (timed from the request), then check it answers."""
    outcome = _Started()
    try:
        if client.server() is not None:
            client.stop(timeout=stop_timeout)  # a leftover server from an earlier run
        outcome.requested = time.monotonic()
        client.spawn(profile)
        client.wait_ready(timeout=max(1.0, deadline - time.monotonic()))
        outcome.ready_s = time.monotonic() - outcome.requested
    except HubError as exc:
        outcome.error = f"spawn: {exc}"
        return outcome
    except Exception as exc:
        outcome.unexpected = exc
        return outcome
    return _check_answers(client, outcome)


def _check_answers(client: _UserClient, outcome: _Started) -> _Started:
    """Check a ready server answers through the proxy with the user's own token; returns ``outcome`` completed."""
    try:
        client.status()
        outcome.answered = True
        outcome.answered_s = time.monotonic() - outcome.requested
    except HubError as exc:
        outcome.error = f"status: {exc}"
    except Exception as exc:
        outcome.unexpected = exc
    return outcome


def _stop_server(client: _UserClient | None, stop_timeout: float) -> _Stopped:
    """Stop one user's server if it runs (a user that never signed in has nothing to stop)."""
    if client is None:
        return _Stopped(stopped=True)
    try:
        if client.server() is not None:
            client.stop(timeout=stop_timeout)
        return _Stopped(stopped=True)
    except HubError as exc:
        return _Stopped(error=f"stop: {exc}")
    except Exception as exc:
        return _Stopped(unexpected=exc)


def _concurrently(work: Callable[[str], T], names: Sequence[str], workers: int, label: str,
                  while_waiting: Callable[[], object] | None = None) -> dict[str, T]:
    """``work(name)`` for every name on up to ``workers`` threads; the results by name, in ``names`` order.

    Every call has finished when this returns. ``while_waiting``, when given, is called on this
    thread about once a second until they have (the GPU node watch while servers start).
    """
    with ThreadPoolExecutor(workers, thread_name_prefix=f"load-{label}") as pool:
        futures = {name: pool.submit(work, name) for name in names}
        if while_waiting is not None:
            while not all(f.done() for f in futures.values()):
                while_waiting()
                time.sleep(1.0)
    return {name: future.result() for name, future in futures.items()}


# -- cluster figures ---------------------------------------------------------------------------


class _GpuWatch:
    """The GPU nodes there were before the run, and every one seen since (the peak), and the names of
    all nodes before it (a pod elsewhere waited for a new node); no-op without cluster access."""

    def __init__(self, kube_api) -> None:
        self.kube_api = kube_api
        self.before: dict[str, dict] | None = _gpu_nodes(kube_api) if kube_api is not None else None
        self.nodes_before: set[str] = _node_names(kube_api) if kube_api is not None else set()
        self.seen: set[str] = set(self.before or {})

    def sample(self) -> None:
        """Look at the GPU nodes now and remember them for the peak."""
        if self.kube_api is not None:
            self.seen.update(_gpu_nodes(self.kube_api))


@dataclass
class _GpuCount:
    """GPU nodes the load users' pods landed on, against the ideal, and before / at the peak of the run."""

    nodes: int
    ideal: int
    per_node: int
    before: int
    peak: int


def _count_gpu_nodes(users: int, pods: dict[str, dict], gpu_nodes: dict[str, dict], gpus_per_node: int | None,
                     before: dict | None, seen: set[str]) -> _GpuCount:
    """Count the GPU nodes in use by ``pods`` (user -> :func:`_user_pods` row) among ``gpu_nodes``.

    GPUs per node: ``gpus_per_node`` if given, else the most allocatable on a used node, else 4;
    GPUs per user: the largest request of a pod, at least 1. The ideal is 0 when no pod is on a GPU node.
    """
    used = {pod.get("node", "") for pod in pods.values()}
    used = {node for node in used if node and node in gpu_nodes}
    per_node = gpus_per_node or max((gpu_nodes[n]["gpu_allocatable"] for n in used), default=4)
    per_user = max((int(pod.get("gpu_request") or 0) for pod in pods.values()), default=1) or 1
    return _GpuCount(nodes=len(used), ideal=ideal_gpu_nodes(users, per_user, per_node) if used else 0,
                     per_node=per_node, before=len(before or {}), peak=len(seen))


@dataclass
class _Orphans:
    """What was left of the load users after the stop."""

    pods: list[str]
    processes: list[int]
    check: str


def _orphan_note(checks: Sequence[str], found: int) -> str:
    """The orphan check's one-line verdict, e.g. ``none (pods checked)``, ``2 left``, ``not checked (...)``."""
    if not checks:
        return "not checked (no cluster access, remote hub)"
    return f"none ({' and '.join(checks)} checked)" if not found else f"{found} left"


def _check_orphans(names: Sequence[str], kube_api, namespace: str, hub_url: str, grace: float = 60.0) -> _Orphans:
    """Wait (bounded) until no pod and no local server process of the load users remains."""
    local = _is_loopback(hub_url)
    checks = []
    if kube_api is not None:
        checks.append("pods")
    if local:
        checks.append("jupyterhub-singleuser processes")
    deadline = time.monotonic() + grace
    while True:
        pods = sorted(_user_pods(kube_api, namespace, names)) if kube_api is not None else []
        processes = singleuser_processes(names) if local else []
        if (not pods and not processes) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return _Orphans(pods, processes, _orphan_note(checks, len(pods) + len(processes)))


# -- the run -----------------------------------------------------------------------------------


def _admin_client(hub_url: str, verify: bool | str, admin_token: str | None, admin_user: str | None,
                  password: str) -> _AdminClient | None:
    """The admin session that creates the load users (token, else an admin user who logs in); None without one."""
    token = admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None
    if token:
        admin = _AdminClient.with_token(hub_url, token, verify)
    elif admin_user:
        admin = _AdminClient(hub_url, verify=verify)
        admin.login(admin_user, password)
        admin.token(note="eks-hub-runbook loadtest admin", expires_in=3600)
    else:
        return None
    admin.check_admin()
    return admin


def _check_arguments(users: int, profile: str) -> None:
    """Refuse a crowd outside 1..MAX_USERS or a missing profile, before anything runs."""
    if not 1 <= int(users) <= MAX_USERS:
        raise RunbookError(f"--users must be between 1 and {MAX_USERS} (got {users})")
    if not profile:
        raise RunbookError("a profile slug is needed (e.g. gpu-time-slicing)")


@dataclass
class _LoadRun:
    """One run's settings and its users' state; the steps of :func:`run` are its methods.

    Only the thread that calls the methods changes ``users``; the per-user work on worker
    threads returns outcome objects that the methods merge.
    """

    hub_url: str
    profile: str
    users: dict[str, _LoadUser]
    admin: _AdminClient | None
    gpus: _GpuWatch
    verify: bool | str
    password: str
    deadline: float
    stop_timeout: float
    token_life: int
    say: Progress
    namespace: str = DEFAULT_NAMESPACE
    delays: dict[str, float] | None = None
    watch_errors: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Every load user, in order."""
        return list(self.users)

    @property
    def workers(self) -> int:
        """Threads per concurrent step: one per user, as a room of people would."""
        return len(self.users)

    @property
    def login_mode(self) -> str:
        """How the users sign in, as the summary says it."""
        return "admin API (users and tokens created by an admin)" if self.admin else "login page"

    def signed_in_names(self) -> list[str]:
        """The users who signed in (they hold a client)."""
        return [name for name, user in self.users.items() if user.client is not None]

    def sign_in_all(self) -> None:
        """Create the users and their tokens (admin), or log each in; HubError with advice if none got in."""
        self.say(f"signing in {len(self.users)} users ({self.login_mode})")
        outcomes = _concurrently(
            lambda name: _sign_in(name, self.admin, self.hub_url, self.verify, self.password, self.token_life),
            self.names, self.workers, "login")
        for name, outcome in outcomes.items():
            self.users[name].signed_in(outcome)
        _raise_unexpected(outcomes.values())
        if not self.signed_in_names():
            first = next(iter(self.users.values())).row.error
            raise HubError(f"no load user could sign in ({first}); give an admin: --admin-user NAME "
                           f"(deployed with -p admin_users NAME) or ${ADMIN_TOKEN_ENV}, or deploy with -p allow_all True")

    def start_all(self) -> None:
        """Start every signed-in user's server at once, wait until each is ready and answers.

        The GPU nodes are sampled about once a second meanwhile, for the peak.
        """
        names = self.signed_in_names()
        self.say(f"starting {len(names)} servers with profile '{self.profile}'")
        with self._spawn_watch() as watch:
            outcomes = _concurrently(
                lambda name: _start_server(self.users[name].client, self.profile, self.deadline, self.stop_timeout),
                names, self.workers, "spawn", while_waiting=self.gpus.sample)
        for name, outcome in outcomes.items():
            self.users[name].started(outcome)
            if watch is not None and outcome.requested is not None:
                self.users[name].timed(outcome, *watch.marks(name, outcome.requested))
                self.users[name].row.events = watch.events(name, outcome.requested)
        if watch is not None:
            self.watch_errors = watch.errors
        if _is_loopback(self.hub_url):
            for name, pids in singleuser_processes_by_user(names).items():
                used = [spawn_phases.process_cpu_seconds(pid) for pid in pids]
                memory = [spawn_phases.process_rss_mb(pid) for pid in pids]
                self.users[name].row.cpu_s = sum(u for u in used if u is not None) or None
                self.users[name].row.rss_mb = sum(m for m in memory if m is not None) or None
        # Not raised, as before: an error other than HubError leaves the row not ready or not answering.
        rows = [user.row for user in self.users.values()]
        self.say(f"{sum(r.ready for r in rows)}/{len(rows)} ready; {sum(r.answered for r in rows)} answered")

    def _spawn_watch(self):
        """The pods' and events' watch that stamps each spawn's phases (a context); None without cluster access."""
        return contextlib.nullcontext() if self.gpus.kube_api is None else _watch_spawns(self.gpus.kube_api, self.namespace)

    def floor(self, rows: Sequence[UserResult]) -> Floor | None:
        """The floor of this run (spawn_phases.Floor): measured only where the servers' processes are
        visible (a local hub); the configured waits count when the run met them (a pod on a node that
        was not there before; each image a pod pulled, not already present: an init container's and
        then the server's are pulled one after the other)."""
        cpu = [r.cpu_s for r in rows if r.cpu_s]
        if not cpu:
            return None
        delays = self.delays or {}
        new_node = any(r.node and r.node not in self.gpus.nodes_before for r in rows)
        pulls = max((r.fresh_pulls for r in rows), default=0)  # pulls one after the other: the longest chain
        return Floor(users=len(rows), cores=spawn_phases.cores(), cpu_per_server_s=percentile(cpu, 50),
                     node_launch_s=delays.get("node launch", 0.0) if new_node else 0.0,
                     image_pull_s=delays.get("image pull", 0.0) * pulls)

    def measure(self, namespace: str, gpus_per_node: int | None) -> LoadResult:
        """The result so far; with cluster access, each user's node and the GPU node counts."""
        result = LoadResult(self.hub_url, self.profile, [user.row for user in self.users.values()],
                            self.login_mode, 0.0, watch_errors=self.watch_errors)
        kube_api = self.gpus.kube_api
        if kube_api is None:
            return result
        self.gpus.sample()
        pods = _user_pods(kube_api, namespace, self.names)
        for name, pod in pods.items():
            self.users[name].placed(pod)
        count = _count_gpu_nodes(len(self.users), pods, _gpu_nodes(kube_api), gpus_per_node,
                                 self.gpus.before, self.gpus.seen)
        result.gpu_nodes, result.gpu_per_node, result.gpu_nodes_ideal = count.nodes, count.per_node, count.ideal
        result.gpu_nodes_before, result.gpu_nodes_peak = count.before, count.peak
        result.floor = self.floor(result.users)
        return result

    def stop_all(self) -> None:
        """Stop every user's server (always, even after a failure), waiting until each is gone."""
        self.say(f"stopping {len(self.signed_in_names())} servers")
        outcomes = _concurrently(lambda name: _stop_server(self.users[name].client, self.stop_timeout),
                                 self.names, self.workers, "stop")
        for name, outcome in outcomes.items():
            self.users[name].stopped(outcome)
        _raise_unexpected(outcomes.values())

    def delete_created(self) -> None:
        """Delete the users this run created (admin mode); a failure is reported, not raised."""
        if self.admin is None:
            return
        for name, user in self.users.items():
            if not user.created:
                continue
            try:
                self.admin.delete_user(name)
            except HubError as exc:
                self.say(f"could not delete {name}: {exc}")


def run(
    hub_url: str,
    users: int,
    profile: str,
    *,
    out_dir: str | Path | None = None,
    admin_token: str | None = None,
    admin_user: str | None = None,
    password: str = "loadtest",
    user_prefix: str = USER_PREFIX,
    kube_api=None,
    namespace: str = DEFAULT_NAMESPACE,
    gpus_per_node: int | None = None,
    timeout: float = 900.0,
    stop_timeout: float = 180.0,
    delete_users: bool = True,
    verify: bool | str = True,
    progress: Progress | None = None,
    emulated_delays: dict[str, float] | None = None,
) -> LoadResult:
    """Start ``users`` servers with ``profile`` at once, measure, check, stop, look for orphans.

    Args:
        hub_url: the hub's public URL (a local target's: ``Target.local_hub_url()``).
        users: how many users (1..MAX_USERS); named ``<user_prefix>001``...
        profile: profile slug (e.g. ``gpu-time-slicing``).
        out_dir: when given, rows, summary and plot are written there (:meth:`LoadResult.write`).
        admin_token: an admin API token (else ``$RUNBOOK_HUB_ADMIN_TOKEN``); never recorded.
        admin_user: an admin user who logs in through the login page (dummy, or the identity
            provider) to mint a short-lived admin token, when no token is given.
            Without any admin, every load user logs in through the login page instead.
        password: typed into login forms (dummy accepts any).
        kube_api: a kubernetes ApiClient (``kube.load_client(...)``) for node placement, GPU node
            counts and the orphan-pod check; None skips them.
        gpus_per_node: allocatable GPUs per node for the ideal count; default: read from the
            nodes the pods landed on (4 on a time-sliced g5), else 4.
        timeout: overall seconds for logins and spawns; ``stop_timeout`` for stopping.
        delete_users: delete the users this run created (admin mode only).
        verify: TLS verification for the hub (False or a CA bundle for a self-signed hub).
        progress: called with one-line progress messages (e.g. ``print``).
        emulated_delays: the target's configured waits (``Target.emulated_delays()``: ``node launch``,
            ``image pull`` seconds) for the floor; None: a real cloud's, which are not configured.

    Raises:
        RunbookError: bad arguments; HubError: no way to sign users in (the message says how).
    """
    _check_arguments(users, profile)
    names = [f"{user_prefix}{i:03d}" for i in range(1, int(users) + 1)]
    started = time.monotonic()
    admin = _admin_client(hub_url, verify, admin_token, admin_user, password)
    job = _LoadRun(hub_url, profile, users={name: _LoadUser(UserResult(name)) for name in names}, admin=admin,
                   gpus=_GpuWatch(kube_api), verify=verify, password=password, deadline=started + timeout,
                   stop_timeout=stop_timeout, token_life=int(timeout + stop_timeout + 300),
                   say=progress or (lambda _message: None), namespace=namespace, delays=emulated_delays)
    try:
        job.sign_in_all()
        job.start_all()
        result = job.measure(namespace, gpus_per_node)
    finally:
        job.stop_all()
        if delete_users:
            job.delete_created()

    result.wall_s = time.monotonic() - started
    orphans = _check_orphans(names, kube_api, namespace, hub_url)
    result.orphan_pods, result.orphan_processes, result.orphan_check = orphans.pods, orphans.processes, orphans.check
    job.say(f"orphans: {result.orphan_check}")
    if out_dir is not None:
        result.write(out_dir)
    return result


# -- 04's load check on a deployment -----------------------------------------------------------


def signing_in(params, users: int) -> str | None:
    """Who signs the load users in on ``params``'s hub: its first admin, or None when each may log in
    through the login page (dummy login open to anyone). ParameterError (option ``load_users``) when
    neither: raised by 04's validation cell, before any server starts."""
    if not users:
        return None
    if not 0 <= int(users) <= MAX_USERS:
        raise ParameterError("load_users", f"must be between 0 and {MAX_USERS} (got {users})",
                             f"give a number of users from 1 to {MAX_USERS}, or 0 to skip the load check")
    if params.admin_users:
        return params.admin_users[0]
    if params.auth == "dummy" and (params.allow_all or not params.allowed_users):
        return None
    raise ParameterError("load_users", f"{users} load users cannot sign in: the hub has no admin to create them",
                         "re-run 02_deploy with -p admin_users hub-admin (or set load_users 0)")


def check_deployment(params, users: int, profile: str, *, kube_api=None, progress=None,
                     timeout: float = 900.0) -> LoadResult | None:
    """04's load check: ``users`` servers with ``profile`` at once on the deployment's hub (reached as
    the demo reaches it), signed in by its admin (:func:`signing_in`), with phases and the floor where
    the target shows them. None when ``users`` is 0 (the option is off)."""
    from . import targets
    from .deploy import hub_endpoint
    from .gpu_sharing import passwords

    admin = signing_in(params, users)
    if not users:
        return None
    report = progress or (lambda *_: None)
    step = f"{users} users start {profile} at once"
    password = passwords(params, (admin,))(admin) if admin else "loadtest"
    with hub_endpoint(params) as (url, verify):
        report(step, "running", "signing in")
        result = run(url, users, profile, admin_user=admin, password=password, kube_api=kube_api, verify=verify,
                     timeout=timeout, progress=lambda message: report(step, "running", message),
                     emulated_delays=targets.of(params).emulated_delays())
    report(step, "done" if result.passed else "failed", f"{result.summary()['ready']}/{users} ready")
    return result


def check_rows(load: LoadResult | None) -> list[dict[str, Any]]:
    """The load check's summary as the notebooks' check rows (check, value, expected, status, note):
    ``pass``/``fail`` where :attr:`LoadResult.passed` depends on it, ``info`` for the figures; none
    when the check did not run."""
    if load is None:
        return []
    status = {True: "pass", False: "fail", None: "info"}
    return [{"check": row["check"], "value": row["value"], "expected": row["expected"],
             "status": "info" if row["check"] in _INFORMATIONAL else status[row["ok"]], "note": row["note"]}
            for row in load.summary_rows()]


# summary rows that LoadResult.passed does not depend on: figures to read, not checks
_INFORMATIONAL = ("time to ready p50 / p95 / max (s)", "p95 / floor", "GPU nodes used (ideal)")


def phase_table(load: LoadResult | None) -> list[dict[str, Any]]:
    """p50/p95/max per phase (:meth:`LoadResult.phase_rows`); none when the check did not run."""
    return load.phase_rows() if load is not None else []


def chart(load: LoadResult | None):
    """The stacked chart of each user's phases (:meth:`LoadResult.plot`), or None when the check did not run."""
    return load.plot() if load is not None else None

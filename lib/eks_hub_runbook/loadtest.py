"""Load check: can the hub hold a workshop-sized crowd?

``run(hub_url, users=N, profile=SLUG, out_dir=...)``:

1. signs N users in concurrently: with an admin (a token, or an admin user who logs in)
   the users ``load-001``... are created through the hub's REST API and each gets its own
   short-lived API token; without one, each user logs in through the hub's login page
   (works when the hub lets them in, e.g. ``allow_all``);
2. starts every user's server with the profile, all at once, and measures the time from
   the request to "ready" (the hub's progress stream);
3. checks every server answers through the proxy (``GET /user/<name>/api/status`` with
   the user's own token);
4. counts the GPU nodes the pods landed on (Karpenter's doing) against the ideal
   ``ceil(N x GPUs per user / GPUs per node)`` (4 time-sliced replicas per g5 node);
5. stops every server, checks no user pod and (on a local hub) no ``jupyterhub-singleuser``
   process of a load user is left, and deletes the users it created.

Results: :class:`LoadResult` with one row per user, a summary (p50/p95/max, ready count,
errors, GPU nodes vs ideal, orphans), and a plot; :meth:`LoadResult.write` puts
``loadtest.json``, ``loadtest.csv`` and ``loadtest.png`` into a record folder.

Everything is bounded: at most :data:`MAX_USERS` users, one overall deadline, and threads
that all finish before ``run`` returns. Tokens stay inside the hub clients; nothing here
prints or records them.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from .errors import HubError, RunbookError
from .hub import HubClient

MAX_USERS = 100
USER_PREFIX = "load-"
ADMIN_TOKEN_ENV = "RUNBOOK_HUB_ADMIN_TOKEN"
GPU_RESOURCE = "nvidia.com/gpu"
SINGLEUSER_SELECTOR = "component=singleuser-server"
USERNAME_LABEL = "hub.jupyter.org/username"
DEFAULT_NAMESPACE = "jupyterhub"
Progress = Callable[[str], None]
# Karpenter over-provisions GPU nodes under time-slicing (it counts physical GPUs, not
# replicas): expected, reported, not a failure of the load check.
OVERPROVISION_NOTE = ("Karpenter sizes GPU nodes by physical GPUs, not time-sliced replicas, so pods pending "
                      "together each get a node (upstream karpenter issue 729); consolidation removes them once empty")


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

    @property
    def ready(self) -> bool:
        return self.ready_s is not None


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

    def summary(self) -> dict[str, Any]:
        """The figures for a report: counts, p50/p95/max time to ready, GPU nodes vs ideal, orphans."""
        times = self.ready_times
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
            "passed": self.passed,
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per user: user, login_s, ready_s, answered, node, instance_type, stopped, error."""
        return [{**asdict(u), "login_s": _round(u.login_s), "ready_s": _round(u.ready_s)} for u in self.users]

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
            {"check": "GPU nodes used (ideal)", "value": s["gpu_nodes"], "expected": ideal,
             "ok": None if ideal is None or s["gpu_nodes"] is None else s["gpu_nodes"] <= ideal},
            {"check": "orphans after stop (pods, processes)", "value": f"{s['orphan_pods']}, {s['orphan_processes']}",
             "expected": "0, 0", "ok": not self.orphan_pods and not self.orphan_processes},
        ]
        for row in rows:
            row["note"] = ""
        rows[4]["note"] = (OVERPROVISION_NOTE if over else
                           "no cluster access: not counted" if ideal is None else f"{self.gpu_per_node} GPUs per node")
        rows[5]["note"] = s["orphan_check"]
        return rows

    def plot(self, path: Path | None = None):
        """Time to ready per user (sorted) with p50/p95 lines; saved as PNG when ``path`` is given."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        ordered = sorted(self.users, key=lambda u: (u.ready_s is None, u.ready_s or 0))
        fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
        colors = ["tab:blue" if u.ready and u.answered else "tab:red" for u in ordered]
        ax.bar(range(len(ordered)), [u.ready_s or 0 for u in ordered], color=colors)
        ax.set_xticks(range(len(ordered)), [u.user for u in ordered], rotation=90, fontsize=7)
        ax.set_ylabel("time to ready (s)")
        s = self.summary()
        for name, color in (("p50_s", "tab:green"), ("p95_s", "tab:orange")):
            if s[name] is not None:
                ax.axhline(s[name], color=color, linestyle="--", linewidth=1, label=f"{name[:3]} {s[name]} s")
        nodes = "" if s["gpu_nodes"] is None else f"; GPU nodes {s['gpu_nodes']} (ideal {s['gpu_nodes_ideal']})"
        ax.set_title(f"{s['ready']}/{s['users']} servers ready with '{self.profile}'{nodes}", fontsize=10)
        if s["p50_s"] is not None:
            ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
            plt.close(fig)
        return fig

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``loadtest.json`` (summary + rows), ``loadtest.csv`` (rows) and ``loadtest.png``."""
        import csv

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {"json": out / "loadtest.json", "csv": out / "loadtest.csv", "plot": out / "loadtest.png"}
        files["json"].write_text(json.dumps({"hub_url": self.hub_url, "summary": self.summary(), "users": self.rows(),
                                             "orphan_pods": self.orphan_pods,
                                             "orphan_processes": self.orphan_processes}, indent=2, default=str))
        rows = self.rows()
        with files["csv"].open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["user"])
            writer.writeheader()
            writer.writerows(rows)
        self.plot(files["plot"])
        self.files = files
        return files


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The ``pct`` percentile with linear interpolation (numpy's default); None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


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
    wanted = {f"JUPYTERHUB_USER={u}".encode() for u in users}
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"jupyterhub-singleuser" not in cmdline and b"jupyter" not in cmdline:
                continue
            environ = set((proc / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if environ & wanted:
            found.append(int(proc.name))
    return sorted(found)


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "localhost" or host.startswith("127.") or host == "::1"


# -- cluster view ------------------------------------------------------------------------------


def _gpu_nodes(api) -> dict[str, dict]:
    """GPU nodes by name (allocatable nvidia.com/gpu > 0 or a GPU node pool label)."""
    from . import kube

    return {row["node"]: row for row in kube.nodes(api) if row["gpu_allocatable"] > 0 or row["gpu_capacity"] > 0}


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


# -- the run -----------------------------------------------------------------------------------


def _admin_client(hub_url: str, verify: bool | str, admin_token: str | None, admin_user: str | None,
                  password: str) -> _AdminClient | None:
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
) -> LoadResult:
    """Start ``users`` servers with ``profile`` at once, measure, check, stop, look for orphans.

    Args:
        hub_url: the hub's public URL (sandbox: ``platform.sandbox_hub.url()``).
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

    Raises:
        RunbookError: bad arguments; HubError: no way to sign users in (the message says how).
    """
    if not 1 <= int(users) <= MAX_USERS:
        raise RunbookError(f"--users must be between 1 and {MAX_USERS} (got {users})")
    if not profile:
        raise RunbookError("a profile slug is needed (e.g. gpu-time-slicing)")
    say = progress or (lambda _message: None)
    names = [f"{user_prefix}{i:03d}" for i in range(1, int(users) + 1)]
    results = {name: UserResult(name) for name in names}
    clients: dict[str, _UserClient] = {}
    started = time.monotonic()
    deadline = started + timeout

    admin = _admin_client(hub_url, verify, admin_token, admin_user, password)
    login_mode = "admin API (users and tokens created by an admin)" if admin else "login page"
    created: list[str] = []
    before = _gpu_nodes(kube_api) if kube_api is not None else None
    peak: set[str] = set(before or {})
    workers = min(len(names), 32)

    def sign_in(name: str) -> None:
        t0 = time.monotonic()
        try:
            if admin is not None:
                if admin.create_user(name):
                    created.append(name)
                clients[name] = admin.user_client(name, expires_in=int(timeout + stop_timeout + 300))
            else:
                client = _UserClient(hub_url, verify=verify)
                client.login(name, password)
                client.token(note="eks-hub-runbook loadtest", expires_in=int(timeout + stop_timeout + 300))
                clients[name] = client
            results[name].login_s = time.monotonic() - t0
        except HubError as exc:
            results[name].error = f"login: {exc}"

    def spawn(name: str) -> None:
        client = clients.get(name)
        if client is None:
            return
        t0 = time.monotonic()
        try:
            if client.server() is not None:
                client.stop(timeout=stop_timeout)  # a leftover server from an earlier run
            client.spawn(profile)
            client.wait_ready(timeout=max(1.0, deadline - time.monotonic()))
            results[name].ready_s = time.monotonic() - t0
        except HubError as exc:
            results[name].error = f"spawn: {exc}"
            return
        try:
            client.status()
            results[name].answered = True
        except HubError as exc:
            results[name].error = f"status: {exc}"

    def stop(name: str) -> None:
        client = clients.get(name)
        if client is None:
            results[name].stopped = True
            return
        try:
            if client.server() is not None:
                client.stop(timeout=stop_timeout)
            results[name].stopped = True
        except HubError as exc:
            results[name].error = (results[name].error + "; " if results[name].error else "") + f"stop: {exc}"

    try:
        say(f"signing in {len(names)} users ({login_mode})")
        with ThreadPoolExecutor(workers, thread_name_prefix="load-login") as pool:
            list(pool.map(sign_in, names))
        if not clients:
            first = next(iter(results.values())).error
            raise HubError(f"no load user could sign in ({first}); give an admin: --admin-user NAME "
                           f"(deployed with -p admin_users NAME) or ${ADMIN_TOKEN_ENV}, or deploy with -p allow_all True")
        say(f"starting {len(clients)} servers with profile '{profile}'")
        with ThreadPoolExecutor(workers, thread_name_prefix="load-spawn") as pool:
            futures = [pool.submit(spawn, name) for name in names]
            while not all(f.done() for f in futures):
                if kube_api is not None:
                    peak.update(_gpu_nodes(kube_api))
                time.sleep(1.0)
        ready = sum(r.ready for r in results.values())
        say(f"{ready}/{len(names)} ready; {sum(r.answered for r in results.values())} answered")

        result = LoadResult(hub_url, profile, list(results.values()), login_mode, 0.0)
        if kube_api is not None:
            peak.update(_gpu_nodes(kube_api))
            placed = _user_pods(kube_api, namespace, names)
            for name, info in placed.items():
                results[name].node = info.get("node", "")
                results[name].instance_type = info.get("instance_type", "")
            gpu_nodes = _gpu_nodes(kube_api)
            used = {r.node for r in results.values() if r.node and r.node in gpu_nodes}
            per_node = gpus_per_node or max((gpu_nodes[n]["gpu_allocatable"] for n in used), default=4)
            per_user = max((int(info.get("gpu_request") or 0) for info in placed.values()), default=1) or 1
            result.gpu_nodes = len(used)
            result.gpu_per_node = per_node
            result.gpu_nodes_ideal = ideal_gpu_nodes(len(names), per_user, per_node) if used else 0
            result.gpu_nodes_before = len(before or {})
            result.gpu_nodes_peak = len(peak)
    finally:
        say(f"stopping {len(clients)} servers")
        with ThreadPoolExecutor(workers, thread_name_prefix="load-stop") as pool:
            list(pool.map(stop, names))
        if admin is not None and delete_users:
            for name in created:
                try:
                    admin.delete_user(name)
                except HubError as exc:
                    say(f"could not delete {name}: {exc}")

    result.wall_s = time.monotonic() - started
    _check_orphans(result, names, kube_api, namespace, hub_url)
    say(f"orphans: {result.orphan_check}")
    if out_dir is not None:
        result.write(out_dir)
    return result


def _check_orphans(result: LoadResult, names: Sequence[str], kube_api, namespace: str, hub_url: str,
                   grace: float = 60.0) -> None:
    """Wait (bounded) until no pod and no local server process of the load users remains."""
    local = _is_loopback(hub_url)
    checks = []
    if kube_api is not None:
        checks.append("pods")
    if local:
        checks.append("jupyterhub-singleuser processes")
    deadline = time.monotonic() + grace
    while True:
        result.orphan_pods = sorted(_user_pods(kube_api, namespace, names)) if kube_api is not None else []
        result.orphan_processes = singleuser_processes(names) if local else []
        if (not result.orphan_pods and not result.orphan_processes) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    found = len(result.orphan_pods) + len(result.orphan_processes)
    result.orphan_check = (f"none ({' and '.join(checks)} checked)" if checks and not found
                           else f"{found} left" if checks else "not checked (no cluster access, remote hub)")

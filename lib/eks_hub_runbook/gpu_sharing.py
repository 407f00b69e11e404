"""The GPU-sharing demo of 04_gpu_sharing: two users, one time-sliced GPU node.

The walkthrough: ``user-1`` logs in through the hub's own login (the dummy form, or
the OAuth flow for cognito/oauth) and starts the time-slicing profile; Karpenter
launches a g5 node whose device plugin advertises ``nvidia.com/gpu: 4`` (one GPU,
four time-sliced replicas). Then ``user-2`` starts the same profile and lands on the
same node in seconds: no new node, image cached. Finally the storage check: each
user's home is private, ``/home/shared`` is common and does not expose homes.

Everything goes through the hub's public URL and API, as a person would; the
cluster is only read (placement, node resources).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from . import records
from .errors import HubError, KubeError, ParameterError
from .hub import HOME_DIR, SHARED_DIR, HubClient
from .params import SECRET_ENV, DeploymentParameters
from .platform import facts
from .platform.values import hub_namespace

DEFAULT_PROFILE = facts.default_profile()  # the profile the hub preselects (the values' `default: true`)
DEFAULT_USERS = ("user-1", "user-2")
NAMESPACE = hub_namespace()
USER_POD_SELECTOR = "component=singleuser-server"
USERNAME_LABEL = "hub.jupyter.org/username"
TIME_SLICING_REPLICAS = facts.time_slicing_replicas()
# For oauth (type 3) the demo users live in your identity provider: their password, if it checks one.
DEMO_PASSWORD_ENV = SECRET_ENV["demo_password"]

ProgressCallback = Callable[[str, str, str], None]


@dataclass
class UserServer:
    """One user's run: login, spawn, time to ready."""

    user: str
    client: HubClient = field(repr=False)
    profile: str
    login_seconds: float = 0.0
    ready_seconds: float = 0.0
    server_url: str = ""
    started_new: bool = True  # False: the server was already running (a re-run)


@dataclass
class Demo:
    """The state of one demo run: the users' servers in start order."""

    params: DeploymentParameters
    hub_url: str
    profile: str
    servers: list[UserServer] = field(default_factory=list)
    _endpoint: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Close the way to the hub (e.g. stop a port-forward); servers are not touched."""
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None

    def client(self, user: str) -> HubClient:
        return next(s.client for s in self.servers if s.user == user)

    def timing_rows(self) -> list[dict[str, Any]]:
        """Time to ready per user: the first is the cold start (new node), the others warm."""
        rows = []
        for index, server in enumerate(self.servers):
            rows.append({
                "user": server.user,
                "start": "cold (new node)" if index == 0 else "warm (same node)",
                "login (s)": round(server.login_seconds, 1),
                "ready (s)": round(server.ready_seconds, 1),
                "note": "" if server.started_new else "already running: not re-measured",
            })
        return rows

    def users(self) -> list[str]:
        return [s.user for s in self.servers]


def check(params: DeploymentParameters, users: tuple[str, ...] = DEFAULT_USERS) -> None:
    """Validation-cell check: the demo users may log in with the deployment's settings."""
    if params.allow_all or params.auth == "dummy" and not params.allowed_users:
        return
    allowed = set(params.allowed_users) | set(params.admin_users)
    missing = [params.login_name(u) for u in users if params.login_name(u) not in allowed]
    if missing:
        raise ParameterError("allowed_users", f"the demo users {', '.join(missing)} are not allowed to log in",
                             "re-run 02_deploy with -p allowed_users user-1,user-2 (or -p allow_all True)")


def passwords(params: DeploymentParameters, users: tuple[str, ...] = DEFAULT_USERS) -> Callable[[str], str]:
    """How each demo user's password is found, by login method.

    cognito: the users are created in the pool 02_deploy recorded, with random passwords
    kept in memory; oauth: ``$RUNBOOK_DEMO_PASSWORD`` (the users live in your provider);
    dummy: any password works.
    """
    from .records.redact import register_secret

    if params.auth == "cognito":
        from .aws import cognito

        pool = records.recall(params.deployment, "cognito_user_pool_id", "")
        if not pool:
            raise HubError("no Cognito user pool recorded for this deployment: run 02_deploy first")
        created = cognito.ensure_users(params, pool, list(users))
        return lambda user: created.get(user, "")
    value = os.environ.get(DEMO_PASSWORD_ENV, "") if params.auth == "oauth" else ""
    register_secret(value)
    return lambda user: value or "any-password"


def _login(hub_url: str, user: str, password: str, verify: bool | str) -> tuple[HubClient, float]:
    started = time.monotonic()
    client = HubClient(hub_url, verify=verify)
    name = client.login(user, password)
    if name != user:
        raise HubError(f"logged in as {name!r}, expected {user!r}: check oauth_username_claim")
    return client, time.monotonic() - started


def start_users(
    params: DeploymentParameters,
    *,
    profile: str = DEFAULT_PROFILE,
    users: tuple[str, ...] = DEFAULT_USERS,
    timeout: float = 900.0,
    progress: ProgressCallback | None = None,
) -> Demo:
    """Log each user in and start ``profile`` for them, one after the other, timing each.

    The hub is reached the way :func:`deploy.hub_endpoint` says (sandbox URL, a
    port-forward, or the domain); the endpoint stays open until :func:`stop_servers`.
    Users start in order so that the first one pays for the new node (cold) and the
    others show the warm start. A server that is already running (a re-run after
    ``keep_servers``) is kept and reported as such.
    """
    import contextlib

    from .deploy import hub_endpoint

    report = progress or (lambda *_: None)
    stack = contextlib.ExitStack()
    hub_url, verify = stack.enter_context(hub_endpoint(params))
    demo = Demo(params, hub_url, profile, _endpoint=stack)
    try:
        password = passwords(params, users)
        for name in users:
            user = params.login_name(name)  # cognito users are email addresses
            step = f"{user}: log in and start {profile}"
            report(step, "running", "logging in")
            client, login_seconds = _login(hub_url, user, password(user), verify)
            current = client.server()
            if current and current.get("ready"):
                demo.servers.append(UserServer(user, client, profile, login_seconds, 0.0, current.get("url", ""), False))
                report(step, "done", "already running")
                continue
            started = time.monotonic()
            if current is None:
                client.spawn(profile)
            report(step, "running", "waiting for the server (a new node takes longest)")
            model = client.wait_ready(timeout=timeout)
            demo.servers.append(UserServer(user, client, profile, login_seconds, time.monotonic() - started,
                                           model.get("url", "")))
            report(step, "done", "")
    except BaseException:
        stack.close()
        raise
    return demo


def storage_rows(demo: Demo) -> list[dict[str, str]]:
    """The storage check as rows: home private, shared folder common, homes not exposed.

    Writes a uniquely named file into the first user's home and the shared folder
    and reads them back as the second user, through the Jupyter contents API.
    """
    if len(demo.servers) < 2:
        raise HubError("the storage check needs two users' servers")
    first, second = demo.servers[0], demo.servers[1]
    one, two = first.client, second.client
    marker = uuid.uuid4().hex[:8]  # this run's content, so an earlier run's file cannot pass the check
    private_path, shared_path = f"{HOME_DIR}/runbook-private.txt", f"{SHARED_DIR}/runbook-shared.txt"
    private_text, shared_text = f"written by {first.user} ({marker})", f"shared by {first.user} ({marker})"

    def attempt(action: Callable[[], Any]) -> tuple[Any, str]:
        try:
            return action(), ""
        except HubError as exc:  # reported as a failed check, so the servers are still stopped afterwards
            return None, str(exc)

    _, wrote_private = attempt(lambda: one.write_file(private_path, private_text))
    _, wrote_shared = attempt(lambda: one.write_file(shared_path, shared_text))
    own, read_own = attempt(lambda: one.read_file(private_path))
    seen_by_other, read_other = attempt(lambda: two.read_file(private_path))
    shared_seen, read_shared = attempt(lambda: two.read_file(shared_path))
    listing, listed = attempt(lambda: two.list_dir(SHARED_DIR))
    exposed = set(demo.users()) & set(listing or [])
    return [
        {"check": f"{first.user} reads back a file in its home (/home/jovyan)",
         "status": "pass" if own == private_text else "fail",
         "detail": wrote_private or read_own or "efs-persist, the user's own sub-folder"},
        {"check": f"{second.user} cannot see {first.user}'s home file",
         "status": "pass" if seen_by_other is None and not (read_other or wrote_private) else "fail",
         "detail": read_other or wrote_private or ("not in its own home" if seen_by_other is None else "visible: homes are not private")},
        {"check": f"{second.user} reads {first.user}'s file in /home/shared",
         "status": "pass" if shared_seen == shared_text else "fail",
         "detail": wrote_shared or read_shared or "efs-persist-shared, mounted in every pod"},
        {"check": "/home/shared does not expose users' homes",
         "status": "fail" if exposed or listed else "pass",
         "detail": listed or (f"user folders visible: {', '.join(sorted(exposed))}" if exposed else "no user folders in it")},
    ]


def stop_servers(demo: Demo, keep: bool = False) -> list[dict[str, str]]:
    """Stop every demo server unless ``keep``; rows of what happened to each."""
    rows = []
    try:
        for server in demo.servers:
            if keep:
                rows.append({"user": server.user, "server": "kept running", "open": f"{deploy_url(demo)}/user/{server.user}/lab"})
                continue
            server.client.stop()
            rows.append({"user": server.user, "server": "stopped", "open": ""})
    finally:
        demo.close()
    return rows


def deploy_url(demo: Demo) -> str:
    """The URL a person opens for the hub (not a port-forward this process opened)."""
    from .deploy import hub_url

    return hub_url(demo.params)


def time_to_ready_chart(demo: Demo):
    """A bar chart of time to ready per user, cold start vs warm start (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = demo.timing_rows()
    figure = Figure(figsize=(6, 3.2), dpi=100)
    axes = figure.add_subplot()
    labels = [f"{r['user']}\n{r['start']}" for r in rows]
    values = [r["ready (s)"] for r in rows]
    colours = ["#d62728" if i == 0 else "#2ca02c" for i in range(len(rows))]
    bars = axes.bar(labels, values, color=colours)
    axes.bar_label(bars, labels=[f"{v:.1f} s" for v in values], padding=2)
    axes.set_ylabel("seconds to ready")
    axes.set_title(f"Time to a running server: {demo.profile}")
    axes.margins(y=0.2)
    figure.tight_layout()
    return figure


def _user_pods(api) -> list[Any]:
    from kubernetes import client

    return client.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector=USER_POD_SELECTOR).items


def placement_rows(demo: Demo, api) -> list[dict[str, Any]]:
    """Where each demo user's server runs: user, pod, node, instance type, pool, GPUs requested.

    What ``kubectl get pods -n jupyterhub -o wide | grep -i user`` shows, plus the node's
    instance type and the pod's ``nvidia.com/gpu`` request.
    """
    from . import kube

    placed = {r["pod"]: r for r in kube.placement(api, NAMESPACE, USER_POD_SELECTOR)}
    users = set(demo.users())
    rows = []
    for pod in _user_pods(api):
        # KubeSpawner annotates the real user name (the label holds an escaped form).
        user = (pod.metadata.annotations or {}).get(USERNAME_LABEL) or (pod.metadata.labels or {}).get(USERNAME_LABEL, "")
        if user not in users:
            continue
        info = placed.get(pod.metadata.name, {})
        rows.append({"user": user, "pod": pod.metadata.name, "node": info.get("node", ""),
                     "instance type": info.get("instance_type", ""), "pool": info.get("nodepool", ""),
                     "nvidia.com/gpu requested": info.get("gpu_request", 0), "pod status": info.get("status", "")})
    order = {u: i for i, u in enumerate(demo.users())}
    return sorted(rows, key=lambda r: (order.get(r["user"], 99), r["pod"]))


def node_rows(placement: list[dict[str, Any]], api) -> list[dict[str, Any]]:
    """The nodes that run the demo servers: ``nvidia.com/gpu`` capacity/allocatable and who is on them.

    With time-slicing a g5.2xlarge (one A10G) advertises 4: the check passes when it does.
    """
    from . import kube

    names = {r["node"] for r in placement if r["node"]}
    rows = []
    for node in kube.nodes(api):
        if node["node"] not in names:
            continue
        on_node = [r for r in placement if r["node"] == node["node"]]
        shared = node["gpu_capacity"] == TIME_SLICING_REPLICAS and node["gpu_allocatable"] == TIME_SLICING_REPLICAS
        rows.append({
            "node": node["node"], "instance type": node["instance_type"], "pool": node["pool"],
            "nvidia.com/gpu capacity": node["gpu_capacity"], "nvidia.com/gpu allocatable": node["gpu_allocatable"],
            "requested by demo": sum(r["nvidia.com/gpu requested"] for r in on_node),
            "users": ", ".join(r["user"] for r in on_node),
            "status": "pass" if shared else "fail",
        })
    return rows


def sharing_rows(demo: Demo, placement: list[dict[str, Any]], nodes: list[dict[str, Any]],
                 identities: list[dict[str, Any]] | None = None) -> list[dict[str, str]]:
    """The demo's claims as checks: every server ready, one shared node, time-slicing advertised,
    GPU nodes launched vs ideal, and with ``identities`` (:func:`gpu_identity_rows`) that the
    users share one physical GPU."""
    placed_users = {r["user"] for r in placement}
    rows = [{"check": "every demo server is ready", "status": "pass" if len(placed_users) == len(demo.servers) else "fail",
             "detail": f"{len(placed_users)} of {len(demo.servers)} servers placed"}]
    distinct = {r["node"] for r in placement}
    if not placement:
        detail = "no demo server was placed on a node"
    elif len(distinct) == 1:
        detail = "one node, no second node launched"
    else:
        # Either an idle node was already there (the scheduler prefers the emptier node) or
        # Karpenter launched one more for users pending at once (karpenter issue 729).
        detail = (f"{len(distinct)} nodes: a user did not join the first user's node (an idle node already "
                  "running, or Karpenter launched another: karpenter issue 729)")
    rows.append({"check": "the users share one GPU node", "status": "pass" if len(distinct) == 1 and placement else "fail",
                 "detail": detail})
    replicas = {n["nvidia.com/gpu capacity"] for n in nodes}
    rows.append({"check": f"the node advertises nvidia.com/gpu: {TIME_SLICING_REPLICAS} (time-slicing)",
                 "status": "pass" if replicas == {TIME_SLICING_REPLICAS} else "fail",
                 "detail": f"capacity {', '.join(map(str, sorted(replicas))) or 'none'}"})
    rows.append(packing_row(placement, nodes))
    if identities is not None:
        rows.append(same_gpu_row(identities))
    return rows


# --------------------------------------------------------------------------- the GPU's identity

# What each user's server says about its GPU: the device plugin's NVIDIA_VISIBLE_DEVICES (the
# UUID of the GPU or MIG device it allocated), and `nvidia-smi -L` where the image and node have
# it (on EKS; on the sandbox only on a machine with a real GPU).
IDENTITY_COMMAND = ["sh", "-c", 'echo "NVIDIA_VISIBLE_DEVICES=${NVIDIA_VISIBLE_DEVICES:-}"; '
                                'if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L; fi']
PROCESSES_COMMAND = ["sh", "-c", "command -v nvidia-smi >/dev/null 2>&1 || exit 0; "
                                 "nvidia-smi --query-compute-apps=pid,used_memory,gpu_uuid --format=csv,noheader"]
_GPU_LINE = re.compile(r"^GPU (\d+): (.+?) \(UUID: (GPU-[0-9a-fA-F-]+)\)")
_MIG_LONG = re.compile(r"^MIG-(GPU-[0-9a-fA-F-]+)/\d+/\d+$")
_MIG_LINE = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[0-9a-fA-F-]+)\)")


@dataclass
class GpuIdentity:
    """The GPU a server sees: its physical GPU's UUID and name, the MIG device if it got a slice."""

    uuid: str = ""
    name: str = ""
    mig_uuid: str = ""
    source: str = ""  # what said so: "nvidia-smi -L" or "NVIDIA_VISIBLE_DEVICES"


def parse_identity(output: str) -> GpuIdentity:
    """The identity in :data:`IDENTITY_COMMAND`'s output (the variable's line, then ``nvidia-smi -L``).

    The device plugin's UUID says which device was allocated; ``nvidia-smi -L`` names it and
    gives a MIG device's parent GPU. Without the variable (a runtime that mounts devices
    instead) the only GPU ``nvidia-smi -L`` lists is taken."""
    visible: list[str] = []
    listed: list[tuple[str, str, list[str]]] = []  # (GPU uuid, name, its MIG uuids)
    for line in output.splitlines():
        if line.startswith("NVIDIA_VISIBLE_DEVICES="):
            value = line.partition("=")[2].strip()
            visible = [v for v in value.split(",") if v.startswith(("GPU-", "MIG-"))]
        elif match := _GPU_LINE.match(line):
            listed.append((match.group(3), match.group(2), []))
        elif (match := _MIG_LINE.match(line)) and listed:
            listed[-1][2].append(match.group(3))
    if not visible:
        if len(listed) == 1:
            uuid_, name, migs = listed[0]
            return GpuIdentity(uuid_, name, migs[0] if len(migs) == 1 else "", "nvidia-smi -L")
        return GpuIdentity()
    wanted = visible[0]
    for uuid_, name, migs in listed:
        if wanted == uuid_ or wanted in migs:
            return GpuIdentity(uuid_, name, wanted if wanted.startswith("MIG-") else "", "nvidia-smi -L")
    if wanted.startswith("MIG-"):  # the long form MIG-<GPU UUID>/<gi>/<ci> names its parent
        parent = _MIG_LONG.match(wanted)
        return GpuIdentity(parent.group(1) if parent else "", "", wanted, "NVIDIA_VISIBLE_DEVICES")
    return GpuIdentity(wanted, "", "", "NVIDIA_VISIBLE_DEVICES")


def gpu_identity_rows(placement: list[dict[str, Any]], api) -> list[dict[str, Any]]:
    """Each placed server's GPU, read from inside it (one exec per server, :data:`IDENTITY_COMMAND`):
    user, node, GPU UUID, GPU, MIG device, and what said so.

    The GPU's name comes from ``nvidia-smi -L``, else from the node's ``nvidia.com/gpu.product``
    label (GPU feature discovery's). A server that cannot be asked is a row with the reason."""
    from . import kube

    products: dict[str, str] = {}
    rows = []
    for row in placement:
        if not row.get("node"):
            continue
        try:
            code, out, err = kube.exec_in_pod(api, NAMESPACE, row["pod"], IDENTITY_COMMAND)
            identity = parse_identity(out) if code == 0 else GpuIdentity(source=f"exit {code}: {err.strip()[:120]}")
        except KubeError as exc:
            identity = GpuIdentity(source=str(exc)[:160])
        if not identity.name and identity.source == "NVIDIA_VISIBLE_DEVICES":
            if row["node"] not in products:
                labels = kube.node(api, row["node"])["metadata"].get("labels") or {}
                products[row["node"]] = labels.get("nvidia.com/gpu.product", "")
            identity.name = products[row["node"]] + " (node label)" if products[row["node"]] else ""
        rows.append({"user": row["user"], "node": row["node"], "GPU UUID": identity.uuid or "-",
                     "GPU": identity.name or "-", "MIG device": identity.mig_uuid or "-",
                     "read from": identity.source or "nothing: no GPU in the server"})
    return rows


def parse_processes(output: str) -> list[tuple[int, str, str]]:
    """``nvidia-smi --query-compute-apps=pid,used_memory,gpu_uuid --format=csv,noheader``: (pid, memory, GPU UUID)."""
    found = []
    for line in output.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3 and fields[0].isdigit():
            found.append((int(fields[0]), fields[1], fields[2]))
    return found


def gpu_process_rows(placement: list[dict[str, Any]], api) -> list[dict[str, Any]]:
    """The compute processes on the users' GPUs as ``nvidia-smi`` lists them from inside each server:
    pid, GPU memory, GPU UUID, and the users whose server lists it (with a real GPU shared by
    time-slicing, both users' processes appear on one UUID). Empty where no server has nvidia-smi
    (the sandbox's emulated GPUs)."""
    from . import kube

    seen: dict[tuple[int, str], dict[str, Any]] = {}
    for row in placement:
        if not row.get("node"):
            continue
        try:
            code, out, _ = kube.exec_in_pod(api, NAMESPACE, row["pod"], PROCESSES_COMMAND)
        except KubeError:
            continue
        for pid, memory, gpu in parse_processes(out) if code == 0 else []:
            entry = seen.setdefault((pid, gpu), {"pid": pid, "GPU memory": memory, "GPU UUID": gpu, "listed by": []})
            entry["listed by"].append(row["user"])
    return [{**e, "listed by": ", ".join(e["listed by"])} for e in seen.values()]


def same_gpu_row(identities: list[dict[str, Any]]) -> dict[str, str]:
    """The proof of sharing: the first two users' servers see the same physical GPU (UUID)."""
    users = [r["user"] for r in identities[:2]]
    title = f"{' and '.join(users) if len(users) == 2 else 'the demo users'} share one physical GPU"
    uuids = [r["GPU UUID"] for r in identities[:2]]
    if len(uuids) < 2 or "-" in uuids:
        return {"check": title, "status": "fail",
                "detail": "a server's GPU is unknown: " + "; ".join(f"{r['user']}: {r['read from']}" for r in identities)}
    same = uuids[0] == uuids[1]
    return {"check": title, "status": "pass" if same else "fail",
            "detail": f"both {uuids[0]}" if same else f"different GPUs: {uuids[0]} and {uuids[1]}"}


def packing_row(placement: list[dict[str, Any]], nodes: list[dict[str, Any]],
                replicas: int = TIME_SLICING_REPLICAS) -> dict[str, str]:
    """GPU nodes launched for the demo vs the ideal: the users' GPU requests over what one node advertises."""
    gpu_users = [r for r in placement if r.get("nvidia.com/gpu requested")]
    requested = sum(r["nvidia.com/gpu requested"] for r in gpu_users)
    per_node = max([n["nvidia.com/gpu capacity"] for n in nodes] or [replicas]) or replicas
    ideal = -(-requested // per_node)
    launched = len({r["node"] for r in gpu_users if r.get("node")})
    return {"check": "GPU nodes launched vs ideal", "status": "pass" if gpu_users and launched <= ideal else "fail",
            "detail": f"{launched} launched, ideal {ideal} ({len(gpu_users)} users x 1 nvidia.com/gpu, "
                      f"{per_node} per node)"}


# --------------------------------------------------------------------------- MIG (option `mig`)


def mig_profile() -> tuple[str, str]:
    """(slug, resource) of the hub's profile that asks for a MIG slice (``nvidia.com/mig-1g.5gb``), from the values."""
    for profile in facts.profile_list():
        limits = (profile.get("kubespawner_override") or {}).get("extra_resource_limits") or {}
        for resource in limits:
            if resource.startswith("nvidia.com/mig-"):
                return profile["slug"], resource
    raise ParameterError("mig", "the hub's profile list has no profile that requests a nvidia.com/mig-* slice",
                         "add one to terraform/helm-values/jupyterhub/base.yaml or run with mig = False")


def start_mig(params: DeploymentParameters, enabled: bool, *, users: tuple[str, ...] = DEFAULT_USERS,
              timeout: float = 900.0, progress: ProgressCallback | None = None) -> Demo:
    """The MIG section's start: the users start the MIG profile (:func:`mig_profile`) one after the
    other, as :func:`start_users` does; ``enabled`` False (option ``mig``): no server, an empty demo.

    Run it after the time-slicing servers stopped (a user has one server at a time)."""
    slug, _ = mig_profile()
    if not enabled:
        return Demo(params, "", slug)
    return start_users(params, profile=slug, users=users, timeout=timeout, progress=progress)


def mig_placement_rows(demo: Demo, api) -> list[dict[str, Any]]:
    """Where each MIG server runs and the slice it requested (user, pod, node, instance type, pool, request)."""
    if not demo.servers:
        return []
    from . import kube

    _, resource = mig_profile()
    requests = {r["pod"]: r.get("extended", "") for r in kube.placement(api, NAMESPACE, USER_POD_SELECTOR)}
    rows = []
    for row in placement_rows(demo, api):
        requested = next((part.split("=", 1)[1] for part in requests.get(row["pod"], "").split(", ")
                          if part.startswith(f"{resource}=")), "0")
        rows.append({**{k: v for k, v in row.items() if k != "nvidia.com/gpu requested"},
                     f"{resource} requested": int(requested)})
    return rows


def mig_node_rows(placement: list[dict[str, Any]], api) -> list[dict[str, Any]]:
    """The MIG resources of the nodes that run the MIG servers, as the walkthrough shows them
    (``kubectl describe node``): per ``nvidia.com/mig-*`` resource its capacity and allocatable,
    the layout (``nvidia.com/mig.config``) and GPU feature discovery's count label."""
    from . import kube

    rows = []
    for name in sorted({r["node"] for r in placement if r["node"]}):
        node = kube.node(api, name)
        labels = node["metadata"].get("labels") or {}
        status = node.get("status") or {}
        capacity, allocatable = status.get("capacity") or {}, status.get("allocatable") or {}
        for resource in sorted(k for k in capacity if k.startswith("nvidia.com/mig-")):
            profile = resource.removeprefix("nvidia.com/")
            rows.append({"node": name, "resource": resource, "capacity": int(capacity[resource]),
                         "allocatable": int(allocatable.get(resource, 0)),
                         "nvidia.com/mig.config": labels.get("nvidia.com/mig.config", ""),
                         "mig.strategy": labels.get("nvidia.com/mig.strategy", ""),
                         f"{profile}.count (GFD)": labels.get(f"nvidia.com/{profile}.count", ""),
                         "GPUs": labels.get("nvidia.com/gpu.count", ""), "product": labels.get("nvidia.com/gpu.product", "")})
    return rows


def mig_rows(demo: Demo, placement: list[dict[str, Any]], identities: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The MIG section's checks: every server placed, on one node, two different MIG devices, one parent GPU.

    Empty when the section did not run (option ``mig`` off)."""
    if not demo.servers:
        return []
    placed = {r["user"] for r in placement if r["node"]}
    nodes = {r["node"] for r in placement if r["node"]}
    migs = [r["MIG device"] for r in identities[:2]]
    parents = [r["GPU UUID"] for r in identities[:2]]
    known = len(migs) == 2 and "-" not in migs
    rows = [
        {"check": "every MIG server is placed", "status": "pass" if len(placed) == len(demo.servers) else "fail",
         "detail": f"{len(placed)} of {len(demo.servers)} servers placed"},
        {"check": "the MIG servers share one node", "status": "pass" if len(nodes) == 1 else "fail",
         "detail": ", ".join(sorted(nodes)) or "none"},
        {"check": "the users got different MIG devices", "status": "pass" if known and migs[0] != migs[1] else "fail",
         "detail": " / ".join(migs) if known else "a server's MIG device is unknown: "
                   + "; ".join(f"{r['user']}: {r['read from']}" for r in identities)},
        {"check": "both MIG devices are slices of one physical GPU",
         "status": "pass" if len(parents) == 2 and "-" not in parents and parents[0] == parents[1] else "fail",
         "detail": " / ".join(parents) if parents else "no GPU read"},
    ]
    return rows

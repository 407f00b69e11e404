"""gpu_sharing.py: 04_gpu_sharing's demo (two users start the time-slicing profile one after the
other, share one GPU node; the storage check) and its tables and chart.

Unit tests drive the demo through a fake hub (users, servers and files in memory) on the ``aws``
target; the sandbox test places two demo servers' pods on a time-sliced g5 node of the emulated
cluster and reads placement, node and sharing rows from it.
"""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import pytest

from eks_hub_runbook import deploy, gpu_sharing, kube
from eks_hub_runbook.errors import HubError, ParameterError
from eks_hub_runbook.params import resolve

COGNITO = dict(auth="cognito", domain="hub.example.com")
PROFILE = gpu_sharing.DEFAULT_PROFILE


# --------------------------------------------------------------------------- a fake hub


class FakeHubWorld:
    """What the hub and the users' servers hold: servers by user, files by place, what happened."""

    def __init__(self, private_homes: bool = True):
        self.servers: dict[str, dict] = {}
        self.files: dict[tuple, str] = {}
        self.private_homes = private_homes
        self.events: list[tuple] = []
        self.renamed: dict[str, str] = {}  # a login that answers another name (a wrong username claim)
        self.failing: set[str] = set()  # "write:<user>" / "read:<user>": the contents API answers an error

    def client(self, url, verify=True):
        return FakeHub(self, url, verify)


class FakeHub:
    def __init__(self, world: FakeHubWorld, url: str, verify):
        self.world, self.url, self.verify, self.username = world, url, verify, None

    def login(self, user, password=""):
        self.world.events.append(("login", user, password, self.url, self.verify))
        self.username = self.world.renamed.get(user, user)
        return self.username

    def server(self):
        return self.world.servers.get(self.username)

    def spawn(self, profile):
        self.world.events.append(("spawn", self.username, profile))
        self.world.servers[self.username] = {"ready": False, "url": f"/user/{self.username}/"}

    def wait_ready(self, timeout=900.0):
        self.world.events.append(("wait", self.username))
        self.world.servers[self.username]["ready"] = True
        return self.world.servers[self.username]

    def stop(self):
        self.world.events.append(("stop", self.username))
        self.world.servers.pop(self.username, None)

    def _place(self, path):
        top, _, rest = path.partition("/")
        if top == "shared":
            return ("shared", rest)
        return ("home", self.username if self.world.private_homes else "everyone", rest)

    def _check(self, action):
        if f"{action}:{self.username}" in self.world.failing:
            raise HubError(f"could not {action} in the server of {self.username}: HTTP 500")

    def write_file(self, path, text):
        self._check("write")
        self.world.files[self._place(path)] = text

    def read_file(self, path):
        self._check("read")
        return self.world.files.get(self._place(path))

    def list_dir(self, path=""):
        names = {key[1].split("/")[0] for key in self.world.files if key[0] == "shared"}
        if not self.world.private_homes:
            names |= set(self.world.servers)  # the homes' parent folder mounted as /home/shared
        return sorted(names)


@pytest.fixture
def hub(monkeypatch):
    """The demo's hub: HubClient is the fake; deploy.hub_endpoint yields a URL and records its closing."""
    world = FakeHubWorld()
    monkeypatch.setattr(gpu_sharing, "HubClient", world.client)

    @contextlib.contextmanager
    def endpoint(params):
        world.events.append(("endpoint open", params.deployment))
        try:
            yield "http://127.0.0.1:40123", "/state/ca.pem"
        finally:
            world.events.append(("endpoint closed", params.deployment))

    monkeypatch.setattr(deploy, "hub_endpoint", endpoint)
    return world


def _demo(world: FakeHubWorld, users=("user-1", "user-2")) -> gpu_sharing.Demo:
    demo = gpu_sharing.Demo(resolve(target="aws"), "http://hub", PROFILE)
    for user in users:
        client = world.client("http://hub")
        client.login(user)
        world.servers[user] = {"ready": True}
        demo.servers.append(gpu_sharing.UserServer(user, client, PROFILE))
    return demo


# --------------------------------------------------------------------------- checks and passwords


def test_demo_users_must_be_allowed():
    gpu_sharing.check(resolve(target="aws"))
    gpu_sharing.check(resolve(target="aws", **COGNITO))  # user-1 becomes user-1@example.com on both sides
    with pytest.raises(ParameterError, match="allowed_users.*user-2@example.com"):
        gpu_sharing.check(resolve(target="aws", allowed_users="user-1", **COGNITO))
    gpu_sharing.check(resolve(target="aws", allowed_users="someone", allow_all=True, **COGNITO))


def test_demo_users_may_be_admins():
    gpu_sharing.check(resolve(target="aws", allowed_users="user-1", admin_users="user-2"))
    with pytest.raises(ParameterError, match="the demo users user-2 are not allowed"):
        gpu_sharing.check(resolve(target="aws", allowed_users="user-1"))


def test_passwords_per_login_method(monkeypatch):
    from eks_hub_runbook.records.redact import known_secrets

    assert gpu_sharing.passwords(resolve(target="aws"))("user-1") == "any-password"
    oauth = resolve(target="aws", auth="oauth", domain="hub.example.com", oauth_domain="kc.example.com",
                    oauth_client_id="jupyterhub")
    monkeypatch.setenv("RUNBOOK_DEMO_PASSWORD", "demo-password-from-the-idp-42")
    assert gpu_sharing.passwords(oauth)("user-2") == "demo-password-from-the-idp-42"
    assert "demo-password-from-the-idp-42" in known_secrets()  # redacted from every output
    monkeypatch.delenv("RUNBOOK_DEMO_PASSWORD")
    assert gpu_sharing.passwords(oauth)("user-2") == "any-password"  # a provider that checks no password


def test_cognito_passwords_come_from_the_users_created_in_the_recorded_pool(monkeypatch):
    from eks_hub_runbook import records
    from eks_hub_runbook.aws import cognito

    params = resolve(target="aws", deployment="pool-demo", **COGNITO)
    with pytest.raises(HubError, match="no Cognito user pool recorded.*run 02_deploy first"):
        gpu_sharing.passwords(params)
    records.remember("pool-demo", "cognito_user_pool_id", "us-west-2_AbC123")
    created = []
    monkeypatch.setattr(cognito, "ensure_users", lambda p, pool, users: created.append((pool, users)) or
                        {p.login_name(u): f"pw-{u}" for u in users})
    password = gpu_sharing.passwords(params)
    assert created == [("us-west-2_AbC123", ["user-1", "user-2"])]
    assert password("user-1@example.com") == "pw-user-1" and password("someone@example.com") == ""


# --------------------------------------------------------------------------- starting and stopping


def test_start_users_logs_each_user_in_and_starts_the_profile_in_turn(hub):
    reports = []
    demo = gpu_sharing.start_users(resolve(target="aws", deployment="demo-start"), profile="gpu-mig",
                                   progress=lambda *r: reports.append(r))
    assert demo.users() == ["user-1", "user-2"] and demo.hub_url == "http://127.0.0.1:40123"
    assert [e for e in hub.events if e[0] in ("login", "spawn", "wait")] == [
        ("login", "user-1", "any-password", "http://127.0.0.1:40123", "/state/ca.pem"), ("spawn", "user-1", "gpu-mig"),
        ("wait", "user-1"),
        ("login", "user-2", "any-password", "http://127.0.0.1:40123", "/state/ca.pem"), ("spawn", "user-2", "gpu-mig"),
        ("wait", "user-2")]
    assert all(s.started_new and s.server_url == f"/user/{s.user}/" and s.ready_seconds >= 0 for s in demo.servers)
    assert ("endpoint closed", "demo-start") not in hub.events  # open until the servers are stopped
    assert reports[0] == ("user-1: log in and start gpu-mig", "running", "logging in")
    assert [r for r in reports if r[1] == "done"] == [("user-1: log in and start gpu-mig", "done", ""),
                                                      ("user-2: log in and start gpu-mig", "done", "")]
    assert demo.client("user-2").username == "user-2"

    rows = gpu_sharing.stop_servers(demo)
    assert rows == [{"user": "user-1", "server": "stopped", "open": ""}, {"user": "user-2", "server": "stopped", "open": ""}]
    assert hub.events[-1] == ("endpoint closed", "demo-start") and hub.servers == {}


def test_cognito_users_log_in_by_email(hub, monkeypatch):
    monkeypatch.setattr(gpu_sharing, "passwords", lambda params, users: lambda user: f"pw-{user}")
    demo = gpu_sharing.start_users(resolve(target="aws", **COGNITO))
    assert demo.users() == ["user-1@example.com", "user-2@example.com"]
    assert [e[1:3] for e in hub.events if e[0] == "login"] == [("user-1@example.com", "pw-user-1@example.com"),
                                                             ("user-2@example.com", "pw-user-2@example.com")]


def test_a_running_server_is_kept_and_a_starting_one_awaited(hub):
    hub.servers = {"user-1": {"ready": True, "url": "/user/user-1/"}, "user-2": {"ready": False, "url": "/user/user-2/"}}
    reports = []
    demo = gpu_sharing.start_users(resolve(target="aws"), progress=lambda *r: reports.append(r))
    first, second = demo.servers
    assert (first.started_new, first.ready_seconds, first.server_url) == (False, 0.0, "/user/user-1/")
    assert second.started_new and not any(e[0] == "spawn" for e in hub.events)  # nothing spawned twice
    assert ("wait", "user-2") in hub.events and ("wait", "user-1") not in hub.events
    assert ("user-1: log in and start gpu-time-slicing", "done", "already running") in reports
    assert [r["note"] for r in demo.timing_rows()] == ["already running: not re-measured", ""]


def test_start_users_closes_the_endpoint_when_a_login_goes_wrong(hub):
    hub.renamed["user-2"] = "user-2@example.com"
    with pytest.raises(HubError, match="logged in as 'user-2@example.com', expected 'user-2': check oauth_username_claim"):
        gpu_sharing.start_users(resolve(target="aws", deployment="demo-fails"))
    assert hub.events[-1] == ("endpoint closed", "demo-fails")


def test_stop_servers_can_keep_them_running_with_the_url_to_open(hub, monkeypatch):
    monkeypatch.setattr(gpu_sharing, "passwords", lambda params, users: lambda user: "pw")
    demo = gpu_sharing.start_users(resolve(target="aws", **COGNITO), users=("user-1",))
    assert gpu_sharing.deploy_url(demo) == "https://hub.example.com"  # not the port-forward this process used
    rows = gpu_sharing.stop_servers(demo, keep=True)
    assert rows == [{"user": "user-1@example.com", "server": "kept running",
                     "open": "https://hub.example.com/user/user-1@example.com/lab"}]
    assert "user-1@example.com" in hub.servers and hub.events[-1][0] == "endpoint closed"
    demo.close()  # closing twice is harmless
    assert [e[0] for e in hub.events].count("endpoint closed") == 1


def test_stop_servers_closes_the_endpoint_even_when_a_stop_fails(hub):
    demo = gpu_sharing.start_users(resolve(target="aws", deployment="demo-stop-fails"))

    def refuse():
        raise HubError("the server of user-1 did not stop within 120 s")

    demo.servers[0].client.stop = refuse
    with pytest.raises(HubError, match="did not stop"):
        gpu_sharing.stop_servers(demo)
    assert hub.events[-1] == ("endpoint closed", "demo-stop-fails")


# --------------------------------------------------------------------------- storage


def test_storage_rows_pass_when_homes_are_private_and_shared_is_common(hub):
    demo = _demo(hub)
    rows = gpu_sharing.storage_rows(demo)
    assert [(r["check"], r["status"]) for r in rows] == [
        ("user-1 reads back a file in its home (/home/jovyan)", "pass"),
        ("user-2 cannot see user-1's home file", "pass"),
        ("user-2 reads user-1's file in /home/shared", "pass"),
        ("/home/shared does not expose users' homes", "pass")]
    written = dict(hub.files)
    assert written[("shared", "runbook-shared.txt")].startswith("shared by user-1 (")
    marker = written[("home", "user-1", "runbook-private.txt")].rsplit("(", 1)[1]
    gpu_sharing.storage_rows(demo)
    assert hub.files[("home", "user-1", "runbook-private.txt")].rsplit("(", 1)[1] != marker  # new content each run


def test_storage_rows_fail_when_homes_are_not_private(hub):
    hub.private_homes = False
    rows = {r["check"]: r for r in gpu_sharing.storage_rows(_demo(hub))}
    other = rows["user-2 cannot see user-1's home file"]
    assert (other["status"], other["detail"]) == ("fail", "visible: homes are not private")
    exposed = rows["/home/shared does not expose users' homes"]
    assert (exposed["status"], exposed["detail"]) == ("fail", "user folders visible: user-1, user-2")


def test_storage_errors_are_failed_checks_not_exceptions(hub):
    hub.failing = {"write:user-1"}
    rows = gpu_sharing.storage_rows(_demo(hub))
    assert [r["status"] for r in rows] == ["fail", "fail", "fail", "pass"]
    assert rows[0]["detail"] == "could not write in the server of user-1: HTTP 500"
    assert rows[1]["detail"] == rows[0]["detail"]  # not a pass: nothing was written that user-2 could miss


def test_storage_check_needs_two_servers(hub):
    with pytest.raises(HubError, match="needs two users' servers"):
        gpu_sharing.storage_rows(_demo(hub, users=("user-1",)))


# --------------------------------------------------------------------------- placement, nodes, sharing


def test_sharing_rows():
    demo = gpu_sharing.Demo(resolve(target="aws"), "http://hub", "gpu-time-slicing")
    demo.servers = [gpu_sharing.UserServer("user-1", None, "gpu-time-slicing", 0.1, 60.0),
                    gpu_sharing.UserServer("user-2", None, "gpu-time-slicing", 0.1, 3.0)]
    placement = [{"user": "user-1", "node": "n1", "nvidia.com/gpu requested": 1},
                 {"user": "user-2", "node": "n1", "nvidia.com/gpu requested": 1}]
    nodes = [{"nvidia.com/gpu capacity": 4}]
    assert {r["status"] for r in gpu_sharing.sharing_rows(demo, placement, nodes)} == {"pass"}
    spread = [dict(placement[0]), {**placement[1], "node": "n2"}]
    rows = {r["check"]: r for r in gpu_sharing.sharing_rows(demo, spread, [{"nvidia.com/gpu capacity": 1}])}
    assert rows["the users share one GPU node"]["status"] == "fail"
    assert "karpenter issue 729" in rows["the users share one GPU node"]["detail"]
    assert "an idle node already running" in rows["the users share one GPU node"]["detail"]
    assert [r["start"] for r in demo.timing_rows()] == ["cold (new node)", "warm (same node)"]
    figure = gpu_sharing.time_to_ready_chart(demo)
    assert figure.axes[0].get_ylabel() == "seconds to ready"


def test_sharing_rows_with_no_server_placed_fail_every_check():
    demo = gpu_sharing.Demo(resolve(target="aws"), "http://hub", PROFILE)
    demo.servers = [gpu_sharing.UserServer("user-1", None, PROFILE), gpu_sharing.UserServer("user-2", None, PROFILE)]
    rows = gpu_sharing.sharing_rows(demo, [], [])
    assert [r["status"] for r in rows] == ["fail", "fail", "fail", "fail"]
    assert rows[0]["detail"] == "0 of 2 servers placed" and rows[2]["detail"] == "capacity none"


def test_sharing_rows_do_not_blame_karpenter_when_nothing_was_placed():
    demo = gpu_sharing.Demo(resolve(target="aws"), "http://hub", PROFILE)
    demo.servers = [gpu_sharing.UserServer("user-1", None, PROFILE), gpu_sharing.UserServer("user-2", None, PROFILE)]
    detail = {r["check"]: r for r in gpu_sharing.sharing_rows(demo, [], [])}["the users share one GPU node"]["detail"]
    assert "Karpenter launched another" not in detail


def test_timing_rows_and_chart_mark_the_cold_start():
    demo = gpu_sharing.Demo(resolve(target="aws"), "http://hub", PROFILE, servers=[
        gpu_sharing.UserServer("user-1", None, PROFILE, 0.44, 71.26), gpu_sharing.UserServer("user-2", None, PROFILE, 0.31, 4.04),
        gpu_sharing.UserServer("user-3", None, PROFILE, 0.2, 3.5)])
    assert demo.timing_rows()[0] == {"user": "user-1", "start": "cold (new node)", "login (s)": 0.4, "ready (s)": 71.3, "note": ""}
    axes = gpu_sharing.time_to_ready_chart(demo).axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["user-1\ncold (new node)", "user-2\nwarm (same node)",
                                                             "user-3\nwarm (same node)"]
    assert [round(bar.get_height(), 1) for bar in axes.patches] == [71.3, 4.0, 3.5]
    assert axes.get_title() == f"Time to a running server: {PROFILE}"


def _user_pod(name, user, annotation=True):
    from kubernetes.client import ApiClient

    labels = {"component": "singleuser-server", gpu_sharing.USERNAME_LABEL: user.replace("@", "-40")}
    metadata = {"name": name, "namespace": "jupyterhub", "labels": labels,
                "annotations": {gpu_sharing.USERNAME_LABEL: user} if annotation else None}
    pod = {"metadata": metadata, "spec": {"containers": [{"name": "notebook"}]}}
    return ApiClient().deserialize(SimpleNamespace(data=json.dumps(pod)), "V1Pod")


def test_placement_rows_name_each_demo_users_server(monkeypatch):
    asked = []
    monkeypatch.setattr(kube, "placement", lambda api, namespace, selector: asked.append((namespace, selector)) or [
        {"pod": "jupyter-user-1-40example-2ecom", "node": "n1", "instance_type": "g5.2xlarge", "nodepool": "gpu-ts",
         "gpu_request": 1, "status": "Running"},
        {"pod": "jupyter-user-2-40example-2ecom", "node": "n1", "instance_type": "g5.2xlarge", "nodepool": "gpu-ts",
         "gpu_request": 1, "status": "Running"}])
    monkeypatch.setattr(gpu_sharing, "_user_pods", lambda api: [
        _user_pod("jupyter-user-2-40example-2ecom", "user-2@example.com"),
        _user_pod("jupyter-someone", "someone@example.com"),
        _user_pod("jupyter-user-1-40example-2ecom", "user-1@example.com")])
    demo = gpu_sharing.Demo(resolve(target="aws", **COGNITO), "http://hub", PROFILE, servers=[
        gpu_sharing.UserServer("user-1@example.com", None, PROFILE), gpu_sharing.UserServer("user-2@example.com", None, PROFILE)])
    rows = gpu_sharing.placement_rows(demo, "api")
    assert asked == [("jupyterhub", "component=singleuser-server")]
    assert rows == [{"user": "user-1@example.com", "pod": "jupyter-user-1-40example-2ecom", "node": "n1",
                     "instance type": "g5.2xlarge", "pool": "gpu-ts", "nvidia.com/gpu requested": 1, "pod status": "Running"},
                    {"user": "user-2@example.com", "pod": "jupyter-user-2-40example-2ecom", "node": "n1",
                     "instance type": "g5.2xlarge", "pool": "gpu-ts", "nvidia.com/gpu requested": 1, "pod status": "Running"}]


def test_placement_rows_read_the_label_when_a_pod_has_no_annotation(monkeypatch):
    monkeypatch.setattr(kube, "placement", lambda api, namespace, selector: [])
    monkeypatch.setattr(gpu_sharing, "_user_pods", lambda api: [_user_pod("jupyter-user-1", "user-1", annotation=False)])
    demo = gpu_sharing.Demo(resolve(target="aws"), "http://hub", PROFILE, servers=[gpu_sharing.UserServer("user-1", None, PROFILE)])
    assert gpu_sharing.placement_rows(demo, "api") == [{"user": "user-1", "pod": "jupyter-user-1", "node": "",
                                                        "instance type": "", "pool": "", "nvidia.com/gpu requested": 0,
                                                        "pod status": ""}]


def test_node_rows_pass_only_a_node_that_advertises_four_time_sliced_gpus(monkeypatch):
    def node(name, capacity, allocatable):
        return {"node": name, "instance_type": "g5.2xlarge", "pool": "gpu-ts", "gpu_capacity": capacity,
                "gpu_allocatable": allocatable}
    monkeypatch.setattr(kube, "nodes", lambda api: [node("n1", 4, 4), node("n2", 1, 1), node("n3", 4, 3), node("idle", 4, 4)])
    placement = [{"user": "user-1", "node": "n1", "nvidia.com/gpu requested": 1},
                 {"user": "user-2", "node": "n1", "nvidia.com/gpu requested": 1},
                 {"user": "user-3", "node": "n2", "nvidia.com/gpu requested": 1},
                 {"user": "user-4", "node": "n3", "nvidia.com/gpu requested": 1},
                 {"user": "user-5", "node": "", "nvidia.com/gpu requested": 1}]
    rows = {r["node"]: r for r in gpu_sharing.node_rows(placement, "api")}
    assert set(rows) == {"n1", "n2", "n3"}  # only nodes that run a demo server
    assert rows["n1"] == {"node": "n1", "instance type": "g5.2xlarge", "pool": "gpu-ts", "nvidia.com/gpu capacity": 4,
                          "nvidia.com/gpu allocatable": 4, "requested by demo": 2, "users": "user-1, user-2", "status": "pass"}
    assert rows["n2"]["status"] == rows["n3"]["status"] == "fail"


# --------------------------------------------------------------------------- the GPU's identity

A10G = "GPU-b7bdd9c7-5006-d4b2-b609-8e77a28884b6"
SMI_MIG = ("GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)\n"
           "  MIG 1g.5gb      Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)\n"
           "  MIG 1g.5gb      Device  1: (UUID: MIG-0e3b2a51-7f0c-5d55-9d6e-1f7c1a0b9c22)\n")


def test_parse_identity_reads_the_device_plugins_uuid_and_nvidia_smi():
    parse = gpu_sharing.parse_identity
    assert parse(f"NVIDIA_VISIBLE_DEVICES={A10G}\n") == gpu_sharing.GpuIdentity(A10G, "", "", "NVIDIA_VISIBLE_DEVICES")
    listed = parse(f"NVIDIA_VISIBLE_DEVICES={A10G}\nGPU 0: NVIDIA A10G (UUID: {A10G})\n")
    assert (listed.uuid, listed.name, listed.source) == (A10G, "NVIDIA A10G", "nvidia-smi -L")
    mig = parse("NVIDIA_VISIBLE_DEVICES=MIG-0e3b2a51-7f0c-5d55-9d6e-1f7c1a0b9c22\n" + SMI_MIG)
    assert (mig.uuid, mig.mig_uuid) == ("GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77", "MIG-0e3b2a51-7f0c-5d55-9d6e-1f7c1a0b9c22")
    long_form = parse(f"NVIDIA_VISIBLE_DEVICES=MIG-{A10G}/3/0\n")  # the parent is in the UUID
    assert (long_form.uuid, long_form.mig_uuid) == (A10G, f"MIG-{A10G}/3/0")
    assert parse(f"NVIDIA_VISIBLE_DEVICES=/var/run/nvidia-container-devices\nGPU 0: NVIDIA L4 (UUID: {A10G})\n").uuid == A10G
    assert parse("NVIDIA_VISIBLE_DEVICES=\n") == gpu_sharing.GpuIdentity()  # no GPU allocated
    assert parse("NVIDIA_VISIBLE_DEVICES=all\n" + SMI_MIG + SMI_MIG).uuid == ""  # two GPUs: which one is unknown


def test_gpu_identity_rows_exec_in_each_server_and_name_the_gpu_from_the_node(monkeypatch):
    calls = []
    outputs = {"jupyter-user-1": (0, f"NVIDIA_VISIBLE_DEVICES={A10G}\n", ""),
               "jupyter-user-2": (0, f"NVIDIA_VISIBLE_DEVICES={A10G}\n", "")}

    def exec_in_pod(api, namespace, pod, command, container=None, timeout=60.0):
        calls.append((namespace, pod, command))
        if pod == "jupyter-user-3":
            raise gpu_sharing.KubeError("exec in jupyterhub/jupyter-user-3 failed: pod is not running")
        return outputs[pod]

    monkeypatch.setattr(kube, "exec_in_pod", exec_in_pod)
    monkeypatch.setattr(kube, "node", lambda api, name: {"metadata": {"labels": {"nvidia.com/gpu.product": "NVIDIA-A10G-SHARED"}}})
    placement = [{"user": u, "pod": f"jupyter-{u}", "node": "n1"} for u in ("user-1", "user-2", "user-3")]
    rows = gpu_sharing.gpu_identity_rows(placement + [{"user": "user-4", "pod": "jupyter-user-4", "node": ""}], "api")
    assert [c[1] for c in calls] == ["jupyter-user-1", "jupyter-user-2", "jupyter-user-3"]  # not the unplaced one
    assert calls[0][2] == gpu_sharing.IDENTITY_COMMAND and calls[0][0] == gpu_sharing.NAMESPACE
    assert rows[0] == {"user": "user-1", "node": "n1", "GPU UUID": A10G, "GPU": "NVIDIA-A10G-SHARED (node label)",
                       "MIG device": "-", "read from": "NVIDIA_VISIBLE_DEVICES"}
    assert rows[2]["GPU UUID"] == "-" and "pod is not running" in rows[2]["read from"]
    check = gpu_sharing.same_gpu_row(rows[:2])
    assert (check["check"], check["status"], check["detail"]) == ("user-1 and user-2 share one physical GPU", "pass", f"both {A10G}")
    assert gpu_sharing.same_gpu_row([rows[0], {**rows[1], "GPU UUID": "GPU-other"}])["status"] == "fail"
    failed = gpu_sharing.same_gpu_row([rows[0], rows[2]])
    assert failed["status"] == "fail" and "pod is not running" in failed["detail"]
    assert gpu_sharing.same_gpu_row([])["status"] == "fail"


def test_sharing_rows_carry_the_uuid_check_and_nodes_launched_vs_ideal():
    demo = gpu_sharing.Demo(resolve(target="aws"), "http://hub", PROFILE,
                            servers=[gpu_sharing.UserServer(u, None, PROFILE) for u in ("user-1", "user-2")])
    placement = [{"user": u, "node": "n1", "nvidia.com/gpu requested": 1} for u in ("user-1", "user-2")]
    identities = [{"user": u, "GPU UUID": A10G, "read from": "NVIDIA_VISIBLE_DEVICES"} for u in ("user-1", "user-2")]
    rows = {r["check"]: r for r in gpu_sharing.sharing_rows(demo, placement, [{"nvidia.com/gpu capacity": 4}], identities)}
    assert rows["GPU nodes launched vs ideal"] == {"check": "GPU nodes launched vs ideal", "status": "pass",
                                                   "detail": "1 launched, ideal 1 (2 users x 1 nvidia.com/gpu, 4 per node)"}
    assert rows["user-1 and user-2 share one physical GPU"]["status"] == "pass"
    spread = [placement[0], {**placement[1], "node": "n2"}]
    assert gpu_sharing.packing_row(spread, [{"nvidia.com/gpu capacity": 4}])["detail"].startswith("2 launched, ideal 1")
    assert gpu_sharing.packing_row(spread, [{"nvidia.com/gpu capacity": 4}])["status"] == "fail"


def test_gpu_process_rows_list_what_nvidia_smi_shows_in_each_server(monkeypatch):
    csv = f"4242, 1024 MiB, {A10G}\n4343, 2048 MiB, {A10G}\n"
    monkeypatch.setattr(kube, "exec_in_pod", lambda api, ns, pod, command, **kw: (0, csv if pod != "p3" else "", ""))
    placement = [{"user": "user-1", "pod": "p1", "node": "n1"}, {"user": "user-2", "pod": "p2", "node": "n1"},
                 {"user": "user-3", "pod": "p3", "node": "n1"}]
    rows = gpu_sharing.gpu_process_rows(placement, "api")
    assert rows == [{"pid": 4242, "GPU memory": "1024 MiB", "GPU UUID": A10G, "listed by": "user-1, user-2"},
                    {"pid": 4343, "GPU memory": "2048 MiB", "GPU UUID": A10G, "listed by": "user-1, user-2"}]
    assert gpu_sharing.parse_processes("No running processes found\n") == []


def test_the_mig_profile_comes_from_the_hub_values_and_the_section_can_be_off():
    slug, resource = gpu_sharing.mig_profile()
    assert resource == "nvidia.com/mig-1g.5gb" and slug in {p["slug"] for p in gpu_sharing.facts.profile_list()}
    off = gpu_sharing.start_mig(resolve(target="aws"), enabled=False)
    assert off.servers == [] and off.profile == slug
    assert gpu_sharing.mig_placement_rows(off, "api") == [] and gpu_sharing.mig_rows(off, [], []) == []
    assert gpu_sharing.stop_servers(off) == []


def test_mig_rows_fail_on_equal_slices_or_different_parents():
    demo = gpu_sharing.Demo(resolve(target="aws"), "http://hub", "gpu-mig",
                            servers=[gpu_sharing.UserServer(u, None, "gpu-mig") for u in ("user-1", "user-2")])
    placement = [{"user": u, "node": "p4d"} for u in ("user-1", "user-2")]

    def ident(mig, parent):
        return {"user": "u", "MIG device": mig, "GPU UUID": parent, "read from": "NVIDIA_VISIBLE_DEVICES"}

    good = gpu_sharing.mig_rows(demo, placement, [ident("MIG-a", "GPU-1"), ident("MIG-b", "GPU-1")])
    assert [r["status"] for r in good] == ["pass"] * 4
    same = gpu_sharing.mig_rows(demo, placement, [ident("MIG-a", "GPU-1"), ident("MIG-a", "GPU-1")])
    assert [r["status"] for r in same] == ["pass", "pass", "fail", "pass"]
    apart = gpu_sharing.mig_rows(demo, placement, [ident("MIG-a", "GPU-1"), ident("MIG-b", "GPU-2")])
    assert [r["status"] for r in apart] == ["pass", "pass", "pass", "fail"]
    unknown = gpu_sharing.mig_rows(demo, placement[:1], [ident("-", "-")])
    assert [r["status"] for r in unknown] == ["fail", "pass", "fail", "fail"]


# --------------------------------------------------------------------------- against the sandbox cluster

SANDBOX_NS = "gpu-sharing-test"
GPU_NODE = "ip-10-9-1-20.us-west-2.compute.internal"
NODE_LABEL = "gpu-sharing-test/node"


@pytest.fixture
def time_sliced_node(kube_api, kubectl, nvidia_time_slicing, monkeypatch):
    """A g5.2xlarge node of this test's own (tainted like the GPU pool; the emulated NVIDIA device
    plugin advertises its GPU time-sliced) and the demo namespace pointed at a test namespace."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    resources = {"cpu": "8", "memory": "32Gi", "pods": "58"}
    core.create_node({"metadata": {"name": GPU_NODE, "labels": {
        NODE_LABEL: "yes", "kubernetes.io/hostname": GPU_NODE, "node.kubernetes.io/instance-type": "g5.2xlarge",
        "topology.kubernetes.io/zone": "us-west-2b", "karpenter.sh/nodepool": "gpu-ts-test",
        "nvidia.com/device-plugin.config": "time-slicing"}},
        "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "Exists", "effect": "NoSchedule"},
                            {"key": NODE_LABEL, "value": "only", "effect": "NoSchedule"}]},
        "status": {"capacity": resources, "allocatable": {**resources, "cpu": "7910m"},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                   "addresses": [{"type": "InternalIP", "address": "10.9.1.20"}]}})
    kube.wait_for(lambda: kubectl("get", "namespace", SANDBOX_NS, check=False).returncode != 0,
                  "the previous test's namespace to go", timeout=30, interval=0.3)
    kubectl("create", "namespace", SANDBOX_NS)
    monkeypatch.setattr(gpu_sharing, "NAMESPACE", SANDBOX_NS)
    try:
        kube.wait_for(lambda: [n for n in kube.nodes(kube_api, f"{NODE_LABEL}=yes") if n["gpu_allocatable"] == 4],
                      "the device plugin to advertise 4 GPUs", timeout=20, interval=0.3)
        yield core
    finally:
        kubectl("delete", "namespace", SANDBOX_NS, "--wait=false", check=False)
        kubectl("delete", "node", GPU_NODE, "--wait=false", check=False)


def _server_pod(user: str) -> dict:
    escaped = user.replace("@", "-40").replace(".", "-2e")
    return {"metadata": {"name": f"jupyter-{escaped}", "labels": {"component": "singleuser-server",
                                                                 gpu_sharing.USERNAME_LABEL: escaped},
                         "annotations": {gpu_sharing.USERNAME_LABEL: user}},
            "spec": {"nodeSelector": {NODE_LABEL: "yes"}, "terminationGracePeriodSeconds": 1,
                     "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                                     {"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
                     "containers": [{"name": "notebook", "image": "python:3.11", "command": ["sleep", "600"],
                                     "resources": {"requests": {"cpu": "2", "memory": "4Gi"},
                                                   "limits": {"nvidia.com/gpu": "1"}}}]}}


@pytest.mark.sandbox
@pytest.mark.slow
def test_two_demo_servers_on_one_time_sliced_node_of_the_sandbox(kube_api, time_sliced_node):
    users = ("user-1@example.com", "user-2@example.com")
    for user in (*users, "someone@example.com"):
        time_sliced_node.create_namespaced_pod(SANDBOX_NS, _server_pod(user))
    demo = gpu_sharing.Demo(resolve(target="aws", **COGNITO), "http://hub", PROFILE,
                            servers=[gpu_sharing.UserServer(u, None, PROFILE) for u in users])
    placement = kube.wait_for(
        lambda: (lambda rows: rows if [r["pod status"] for r in rows] == ["Running", "Running"] else None)(
            gpu_sharing.placement_rows(demo, kube_api)), "the demo servers running", timeout=30, interval=0.3)
    assert [(r["user"], r["node"], r["instance type"], r["pool"], r["nvidia.com/gpu requested"]) for r in placement] == [
        (u, GPU_NODE, "g5.2xlarge", "gpu-ts-test", 1) for u in users]
    nodes = gpu_sharing.node_rows(placement, kube_api)
    assert nodes == [{"node": GPU_NODE, "instance type": "g5.2xlarge", "pool": "gpu-ts-test",
                      "nvidia.com/gpu capacity": 4, "nvidia.com/gpu allocatable": 4, "requested by demo": 2,
                      "users": ", ".join(users), "status": "pass"}]
    identities = gpu_sharing.gpu_identity_rows(placement, kube_api)  # exec in each server
    assert [r["read from"] for r in identities] == ["NVIDIA_VISIBLE_DEVICES"] * 2
    assert identities[0]["GPU UUID"].startswith("GPU-") and identities[0]["GPU"] == "NVIDIA-A10G-SHARED (node label)"
    assert [r["status"] for r in gpu_sharing.sharing_rows(demo, placement, nodes, identities)] == ["pass"] * 5
    assert gpu_sharing.gpu_process_rows(placement, kube_api) == []  # no nvidia-smi: an emulated GPU


MIG_NODE = "ip-10-9-1-21.us-west-2.compute.internal"


@pytest.mark.sandbox
@pytest.mark.slow
def test_two_mig_servers_get_different_slices_of_one_gpu_on_the_sandbox(kube_api, time_sliced_node):
    """The MIG section on a p4d node of this test's own (the device plugin's mixed strategy, all-1g.5gb)."""
    slug, resource = gpu_sharing.mig_profile()
    node = {"metadata": {"name": MIG_NODE, "labels": {
        NODE_LABEL: "mig", "kubernetes.io/hostname": MIG_NODE, "node.kubernetes.io/instance-type": "p4d.24xlarge",
        "karpenter.sh/nodepool": "gpu-mig-test", "nvidia.com/device-plugin.config": "a100",
        "nvidia.com/mig.config": "all-1g.5gb"}},
        "spec": {"providerID": "aws:///us-west-2b/i-0mig", "taints": [
            {"key": "nvidia.com/gpu", "value": "Exists", "effect": "NoSchedule"},
            {"key": NODE_LABEL, "value": "only", "effect": "NoSchedule"}]},
        "status": {"capacity": {"cpu": "96", "memory": "1152Gi", "pods": "737"},
                   "allocatable": {"cpu": "95", "memory": "1100Gi", "pods": "737"},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                   "addresses": [{"type": "InternalIP", "address": "10.9.1.21"}]}}
    time_sliced_node.create_node(node)
    try:
        kube.wait_for(lambda: kube.node(kube_api, MIG_NODE)["status"]["allocatable"].get(resource) == "56",
                      "the device plugin to advertise 56 MIG slices", timeout=20, interval=0.3)
        users = ("user-1", "user-2")
        for user in users:
            pod = _server_pod(user)
            pod["spec"]["nodeSelector"] = {NODE_LABEL: "mig"}
            pod["spec"]["containers"][0]["resources"]["limits"] = {resource: "1"}
            time_sliced_node.create_namespaced_pod(SANDBOX_NS, pod)
        demo = gpu_sharing.Demo(resolve(target="aws"), "http://hub", slug,
                                servers=[gpu_sharing.UserServer(u, None, slug) for u in users])
        placement = kube.wait_for(
            lambda: (lambda rows: rows if [r["pod status"] for r in rows] == ["Running", "Running"] else None)(
                gpu_sharing.mig_placement_rows(demo, kube_api)), "the MIG servers running", timeout=30, interval=0.3)
        assert [(r["node"], r[f"{resource} requested"]) for r in placement] == [(MIG_NODE, 1), (MIG_NODE, 1)]
        (resources,) = gpu_sharing.mig_node_rows(placement, kube_api)
        assert (resources["resource"], resources["capacity"], resources["nvidia.com/mig.config"],
                resources["mig-1g.5gb.count (GFD)"]) == (resource, 56, "all-1g.5gb", "56")
        identities = gpu_sharing.gpu_identity_rows(placement, kube_api)
        one, two = identities
        assert one["MIG device"] != two["MIG device"] and one["GPU UUID"] == two["GPU UUID"] != "-"
        assert [r["status"] for r in gpu_sharing.mig_rows(demo, placement, identities)] == ["pass"] * 4
    finally:
        time_sliced_node.delete_node(MIG_NODE)

"""The load check (issue 7): N users start time-sliced GPU servers at once on the sandbox hub.

The suite runs a small crowd (4 users: one g5 node's worth of time-sliced replicas); the
workshop-sized N=20 is run by hand (``runbook loadtest --users 20 --admin-user hub-admin``).
"""

from __future__ import annotations

import contextlib

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from eks_hub_runbook import browser, loadtest, spawn_phases, targets
from eks_hub_runbook import params as runbook_params
from eks_hub_runbook.errors import HubError, RunbookError

ADMIN = "hub-admin"
PROFILE = "gpu-time-slicing"


# -- figures (no sandbox) ---------------------------------------------------------------------

def test_percentiles_interpolate_like_numpy():
    assert loadtest.percentile([], 50) is None
    assert loadtest.percentile([3.0], 95) == 3.0
    assert loadtest.percentile([1, 2, 3, 4], 50) == 2.5
    assert loadtest.percentile(list(range(1, 21)), 95) == pytest.approx(19.05)


def test_ideal_gpu_nodes_counts_time_sliced_replicas():
    assert loadtest.ideal_gpu_nodes(20) == 5
    assert loadtest.ideal_gpu_nodes(4) == 1
    assert loadtest.ideal_gpu_nodes(5) == 2
    assert loadtest.ideal_gpu_nodes(3, gpus_per_user=8, gpus_per_node=8) == 3


def test_bounds_are_checked_before_anything_runs():
    with pytest.raises(RunbookError, match="between 1 and"):
        loadtest.run("http://127.0.0.1:9", 0, PROFILE)
    with pytest.raises(RunbookError, match="between 1 and"):
        loadtest.run("http://127.0.0.1:9", loadtest.MAX_USERS + 1, PROFILE)


def test_results_are_written_as_json_csv_and_a_plot(tmp_path):
    users = [loadtest.UserResult("load-001", 0.1, 3.2, True, "node-a", "g5.2xlarge", True),
             loadtest.UserResult("load-002", 0.1, None, False, "", "", True, "spawn: failed")]
    result = loadtest.LoadResult("http://127.0.0.1:1", PROFILE, users, "admin API", 5.0, gpu_nodes=1,
                                 gpu_nodes_ideal=1, gpu_per_node=4, gpu_nodes_before=0, gpu_nodes_peak=1)
    files = result.write(tmp_path)
    assert set(files) == {"json", "csv", "plot"}
    assert browser.png_size(files["plot"])[0] == 800
    summary = result.summary()
    assert (summary["ready"], summary["errors"], summary["passed"]) == (1, 1, False)
    assert summary["gpu_nodes_created"] == 1
    assert "load-002" in files["csv"].read_text()
    assert {row["check"] for row in result.summary_rows()} >= {"servers ready", "errors"}


def test_singleuser_processes_are_matched_by_user(tmp_path):
    # a stand-in process whose command line and environment look like a user server's
    script = tmp_path / "jupyterhub-singleuser"
    script.write_text("import time; time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "JUPYTERHUB_USER": "load-zz9"})
    try:
        deadline = time.monotonic() + 5
        while proc.pid not in loadtest.singleuser_processes(["load-zz9"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert loadtest.singleuser_processes(["load-zz9"]) == [proc.pid]
        assert loadtest.singleuser_processes(["someone-else"]) == []
    finally:
        proc.kill()
        proc.wait()
    assert loadtest.singleuser_processes(["load-zz9"]) == []


# -- the steps of run(), with fake inputs (no hub, no cluster) ---------------------------------

def _pod(node, gpus=1):
    return {"pod": "jupyter-x", "node": node, "instance_type": "g5.2xlarge", "gpu_request": gpus}


def _gpu_node(allocatable):
    return {"gpu_allocatable": allocatable, "gpu_capacity": 1, "instance_type": "g5.2xlarge"}


def test_gpu_nodes_are_counted_from_where_the_pods_landed():
    pods = {"load-001": _pod("gpu-a"), "load-002": _pod("gpu-a"), "load-003": _pod("gpu-b"), "load-004": _pod("cpu-1")}
    count = loadtest._count_gpu_nodes(5, pods, {"gpu-a": _gpu_node(4), "gpu-b": _gpu_node(4)}, None,
                                      before={"gpu-old": {}}, seen={"gpu-old", "gpu-a", "gpu-b", "gpu-gone"})
    # the CPU node is not counted; 5 users of one replica each fit ceil(5/4) = 2 nodes
    assert (count.nodes, count.per_node, count.ideal, count.before, count.peak) == (2, 4, 2, 1, 4)
    # an explicit GPUs per node wins; the largest GPU request counts per user
    count = loadtest._count_gpu_nodes(2, {"load-001": _pod("gpu-a", 8)}, {"gpu-a": _gpu_node(4)}, 8, None, set())
    assert (count.nodes, count.per_node, count.ideal, count.before, count.peak) == (1, 8, 2, 0, 0)


def test_no_pod_on_a_gpu_node_means_an_ideal_of_zero():
    count = loadtest._count_gpu_nodes(4, {"load-001": _pod("")}, {"gpu-a": _gpu_node(4)}, None, {}, {"gpu-a"})
    assert (count.nodes, count.per_node, count.ideal, count.before, count.peak) == (0, 4, 0, 0, 1)
    assert loadtest._count_gpu_nodes(4, {}, {}, None, None, set()).ideal == 0


def test_orphan_note_says_what_was_checked():
    assert loadtest._orphan_note(["pods"], 0) == "none (pods checked)"
    assert loadtest._orphan_note(["pods", "jupyterhub-singleuser processes"], 0) == \
        "none (pods and jupyterhub-singleuser processes checked)"
    assert loadtest._orphan_note(["pods"], 3) == "3 left"
    assert loadtest._orphan_note([], 0) == "not checked (no cluster access, remote hub)"


def test_orphans_are_looked_for_in_the_cluster_and_on_a_local_hub(monkeypatch):
    asked = []
    monkeypatch.setattr(loadtest, "_user_pods", lambda api, namespace, names: asked.append(namespace) or {})
    monkeypatch.setattr(loadtest, "singleuser_processes", lambda names: [])
    found = loadtest._check_orphans(["load-001"], object(), "hub-ns", "http://127.0.0.1:8000")
    assert (found.pods, found.processes, found.check) == ([], [], "none (pods and jupyterhub-singleuser processes checked)")
    assert asked == ["hub-ns"]
    found = loadtest._check_orphans(["load-001"], None, "hub-ns", "https://hub.example.com")
    assert (found.pods, found.processes, found.check) == ([], [], "not checked (no cluster access, remote hub)")


def test_orphans_left_after_the_grace_are_reported(monkeypatch):
    monkeypatch.setattr(loadtest, "_user_pods", lambda api, namespace, names: {"load-002": {}, "load-001": {}})
    monkeypatch.setattr(loadtest, "singleuser_processes", lambda names: [4242])
    found = loadtest._check_orphans(["load-001", "load-002"], object(), "jupyterhub", "http://localhost:8000",
                                    grace=-1)
    assert (found.pods, found.processes, found.check) == (["load-001", "load-002"], [4242], "3 left")


def test_a_user_merges_the_outcomes_of_each_step():
    user = loadtest._LoadUser(loadtest.UserResult("load-001"))
    client = object()
    user.signed_in(loadtest._SignedIn(client=client, created=True, login_s=0.25))
    user.started(loadtest._Started(ready_s=3.0, error="status: HTTP 502"))
    user.stopped(loadtest._Stopped(error="stop: timed out"))
    user.placed({"node": "gpu-a", "instance_type": "g5.2xlarge"})
    assert (user.client, user.created) == (client, True)
    row = user.row
    assert (row.login_s, row.ready_s, row.answered, row.stopped) == (0.25, 3.0, False, False)
    assert (row.node, row.instance_type) == ("gpu-a", "g5.2xlarge")
    assert row.error == "status: HTTP 502; stop: timed out"
    refused = loadtest._LoadUser(loadtest.UserResult("load-002"))
    refused.signed_in(loadtest._SignedIn(error="login: 403"))
    refused.stopped(loadtest._Stopped(stopped=True))
    assert (refused.client, refused.row.login_s, refused.row.stopped, refused.row.error) == (None, None, True, "login: 403")


class FakeHub:
    """A hub in memory: users, running servers, and which calls should fail."""

    def __init__(self, existing=(), refuse=(), boom=(), fail_spawn=(), fail_status=(), leftover=()):
        self.existing, self.refuse, self.boom = set(existing), set(refuse), set(boom)
        self.fail_spawn, self.fail_status = set(fail_spawn), set(fail_status)
        self.running, self.created, self.deleted, self.stops = set(leftover), [], [], []
        self.lock = threading.Lock()


class FakeClient:
    def __init__(self, hub, name):
        self.hub, self.username = hub, name

    def server(self):
        return {"ready": True} if self.username in self.hub.running else None

    def stop(self, timeout):
        with self.hub.lock:
            self.hub.stops.append(self.username)
            self.hub.running.discard(self.username)

    def spawn(self, profile):
        if self.username in self.hub.fail_spawn:
            raise HubError("quota exceeded")
        with self.hub.lock:
            self.hub.running.add(self.username)

    def wait_ready(self, timeout):
        assert timeout >= 1.0
        return {"ready": True}

    def status(self):
        if self.username in self.hub.fail_status:
            raise HubError("HTTP 502")
        return {"started": "now"}


class FakeAdmin:
    def __init__(self, hub):
        self.hub = hub

    def create_user(self, name):
        with self.hub.lock:
            self.hub.created.append(name)
        return name not in self.hub.existing

    def user_client(self, name, expires_in):
        if name in self.hub.refuse:
            raise HubError("HTTP 403")
        if name in self.hub.boom:
            raise KeyError("token")  # not a HubError: a bug, not a refusal
        return FakeClient(self.hub, name)

    def delete_user(self, name):
        self.hub.deleted.append(name)


def test_sign_in_hands_back_the_client_or_the_error():
    hub = FakeHub(existing={"load-002"}, refuse={"load-003"}, boom={"load-004"})
    admin = FakeAdmin(hub)
    new = loadtest._sign_in("load-001", admin, "http://hub", True, "pw", 600)
    assert new.created and new.client.username == "load-001" and new.login_s >= 0 and not new.error
    existing = loadtest._sign_in("load-002", admin, "http://hub", True, "pw", 600)
    assert not existing.created and existing.client is not None
    refused = loadtest._sign_in("load-003", admin, "http://hub", True, "pw", 600)
    assert (refused.client, refused.login_s, refused.error) == (None, None, "login: HTTP 403")
    # an unexpected failure after the user was created still says so (for the cleanup)
    boom = loadtest._sign_in("load-004", admin, "http://hub", True, "pw", 600)
    assert boom.created and isinstance(boom.unexpected, KeyError) and not boom.error


def test_sign_in_through_the_login_page(monkeypatch):
    class RefusedLogin:
        def __init__(self, url, verify):
            pass

        def login(self, name, password):
            raise HubError("the hub refused this user")

    monkeypatch.setattr(loadtest, "_UserClient", RefusedLogin)
    outcome = loadtest._sign_in("load-001", None, "http://hub", True, "pw", 600)
    assert (outcome.client, outcome.error) == (None, "login: the hub refused this user")


def test_start_server_times_the_spawn_and_checks_it_answers():
    hub = FakeHub(leftover={"load-001"}, fail_spawn={"load-002"}, fail_status={"load-003"})
    deadline = time.monotonic() + 60
    ok = loadtest._start_server(FakeClient(hub, "load-001"), PROFILE, deadline, 5)
    assert ok.ready_s is not None and ok.answered and not ok.error
    assert hub.stops == ["load-001"]  # the leftover server was stopped first
    failed = loadtest._start_server(FakeClient(hub, "load-002"), PROFILE, deadline, 5)
    assert (failed.ready_s, failed.answered, failed.error) == (None, False, "spawn: quota exceeded")
    silent = loadtest._start_server(FakeClient(hub, "load-003"), PROFILE, deadline, 5)
    assert silent.ready_s is not None and (silent.answered, silent.error) == (False, "status: HTTP 502")


def test_stop_server_outcomes():
    hub = FakeHub(leftover={"load-001"})
    assert loadtest._stop_server(None, 5) == loadtest._Stopped(stopped=True)
    assert loadtest._stop_server(FakeClient(hub, "load-001"), 5) == loadtest._Stopped(stopped=True)
    assert loadtest._stop_server(FakeClient(hub, "load-002"), 5) == loadtest._Stopped(stopped=True)
    assert hub.stops == ["load-001"]  # only a running server is stopped

    class Stuck(FakeClient):
        def stop(self, timeout):
            raise HubError("did not stop within 5 s")

    hub.running.add("load-003")
    assert loadtest._stop_server(Stuck(hub, "load-003"), 5) == loadtest._Stopped(error="stop: did not stop within 5 s")


def test_concurrent_work_returns_results_in_name_order(monkeypatch):
    monkeypatch.setattr(loadtest.time, "sleep", lambda _s: None)
    release = threading.Event()
    waited = []

    def work(name):
        release.wait(5)
        return name.upper(), threading.current_thread().name

    def while_waiting():
        waited.append(threading.current_thread() is threading.main_thread())
        release.set()

    names = [f"load-{i:03d}" for i in range(1, 8)]
    results = loadtest._concurrently(work, names, 3, "test", while_waiting=while_waiting)
    assert list(results) == names
    assert [r[0] for r in results.values()] == [n.upper() for n in names]
    assert all(r[1].startswith("load-test") for r in results.values())
    assert waited and all(waited)  # the watch runs on the calling thread


def _fake_run(monkeypatch, hub, users=3, **kwargs):
    monkeypatch.setattr(loadtest, "_admin_client", lambda *args: FakeAdmin(hub))
    monkeypatch.setattr(loadtest.time, "sleep", lambda _s: None)  # the GPU node watch's pause
    said = []
    result = loadtest.run("https://hub.example.com", users, PROFILE, progress=said.append, **kwargs)
    return result, said


def test_run_steps_with_a_fake_hub(monkeypatch, tmp_path):
    hub = FakeHub(existing={"load-002"})
    result, said = _fake_run(monkeypatch, hub, out_dir=tmp_path)
    assert [u.user for u in result.users] == ["load-001", "load-002", "load-003"]
    assert all(u.ready and u.answered and u.stopped and not u.error for u in result.users)
    assert result.passed and result.login_mode.startswith("admin API")
    assert sorted(hub.deleted) == ["load-001", "load-003"]  # load-002 existed before: kept
    assert hub.running == set()
    assert said == ["signing in 3 users (admin API (users and tokens created by an admin))",
                    f"starting 3 servers with profile '{PROFILE}'", "3/3 ready; 3 answered",
                    "stopping 3 servers", "orphans: not checked (no cluster access, remote hub)"]
    assert (result.gpu_nodes, result.orphan_check) == (None, "not checked (no cluster access, remote hub)")
    assert set(result.files) == {"json", "csv", "plot"}
    record = json.loads((tmp_path / "loadtest.json").read_text())
    assert record["summary"]["users"] == 3 and [row["user"] for row in record["users"]] == list(
        u.user for u in result.users)


def test_run_reports_failed_users_and_still_stops_everyone(monkeypatch):
    hub = FakeHub(refuse={"load-001"}, fail_spawn={"load-002"}, fail_status={"load-003"})
    result, said = _fake_run(monkeypatch, hub, users=4, delete_users=False)
    rows = {u.user: u for u in result.users}
    assert rows["load-001"].error == "login: HTTP 403" and rows["load-001"].stopped
    assert rows["load-002"].error == "spawn: quota exceeded" and not rows["load-002"].ready
    assert rows["load-003"].error == "status: HTTP 502" and rows["load-003"].ready
    assert not rows["load-004"].error and rows["load-004"].answered
    assert all(u.stopped for u in result.users) and hub.running == set()
    assert not result.passed and len(result.errors) == 3
    assert "starting 3 servers" in said[1] and said[2] == "2/4 ready; 1 answered" and said[3] == "stopping 3 servers"
    assert hub.deleted == []


def test_run_refuses_when_nobody_signs_in_and_cleans_up(monkeypatch):
    hub = FakeHub(refuse={"load-001", "load-002"})
    with pytest.raises(HubError, match=r"no load user could sign in \(login: HTTP 403\); give an admin"):
        _fake_run(monkeypatch, hub, users=2)
    assert sorted(hub.deleted) == ["load-001", "load-002"]  # created, then refused a token: deleted


def test_run_raises_an_unexpected_sign_in_error_after_cleaning_up(monkeypatch):
    hub = FakeHub(boom={"load-002"})
    with pytest.raises(KeyError, match="token"):
        _fake_run(monkeypatch, hub, users=2)
    # the other user's server was never started; both users were created, and both are deleted
    assert hub.running == set() and sorted(hub.deleted) == ["load-001", "load-002"]


def test_run_counts_gpu_nodes_with_a_fake_cluster(monkeypatch):
    hub = FakeHub()
    nodes = {"gpu-a": _gpu_node(4), "gpu-b": _gpu_node(4)}
    monkeypatch.setattr(loadtest, "_gpu_nodes", lambda api: nodes if hub.running else {"gpu-a": nodes["gpu-a"]})
    placement = {"load-001": "gpu-a", "load-002": "gpu-a", "load-003": "gpu-b"}
    monkeypatch.setattr(loadtest, "_user_pods", lambda api, namespace, names: {
        name: _pod(placement[name]) for name in names if name in hub.running})
    monkeypatch.setattr(loadtest, "_node_names", lambda api: set(nodes) if hub.running else {"gpu-a"})
    monkeypatch.setattr(loadtest, "_watch_spawns", lambda api, namespace: contextlib.nullcontext())
    result, said = _fake_run(monkeypatch, hub, kube_api=object())
    assert [(u.node, u.instance_type) for u in result.users] == [("gpu-a", "g5.2xlarge"), ("gpu-a", "g5.2xlarge"),
                                                                  ("gpu-b", "g5.2xlarge")]
    summary = result.summary()
    assert (summary["gpu_nodes"], summary["gpu_nodes_ideal"], result.gpu_per_node) == (2, 1, 4)
    assert (result.gpu_nodes_before, result.gpu_nodes_peak, summary["gpu_nodes_created"]) == (1, 2, 1)
    assert summary["orphan_check"] == "none (pods checked)" and result.passed


# -- against the sandbox hub ------------------------------------------------------------------

@pytest.fixture(scope="module")
def admin_hub(full_sandbox, platform_outputs):
    """The platform with dummy login and one hub admin who creates the load users."""
    from eks_hub_runbook.platform import install
    from eks_hub_sandbox import hub as sandbox_hub

    install.install(runbook_params.resolve(admin_users=ADMIN), platform_outputs)
    yield sandbox_hub.url()
    sandbox_hub.stop()


@pytest.fixture(scope="module")
def kube_client(full_sandbox):
    from eks_hub_runbook import kube

    return kube.load_client(full_sandbox.kubeconfig_path())


@pytest.mark.sandbox
@pytest.mark.slow
def test_four_users_start_at_once_and_leave_nothing_behind(admin_hub, kube_client, tmp_path):
    result = loadtest.run(admin_hub, 4, PROFILE, out_dir=tmp_path, admin_user=ADMIN, kube_api=kube_client,
                          timeout=420, stop_timeout=120, emulated_delays=targets.get("sandbox").emulated_delays())
    summary = result.summary()
    # each spawn split into its phases, as the cluster's watches saw them, in order
    assert result.watch_errors == []
    for user in result.users:
        assert spawn_phases.ordered(user.marks), (user.user, user.marks)
        assert set(user.phases) == set(spawn_phases.PHASE_NAMES) and None not in user.phases.values(), user.phases
        assert sum(user.phases.values()) == pytest.approx(user.answered_s, abs=0.01)
        assert user.cpu_s and user.cpu_s > 0.1, user  # a real jupyterhub-singleuser process started
        assert user.rss_mb and 20 < user.rss_mb < 2000, user
    assert [row["phase"] for row in result.phase_rows()] == list(spawn_phases.PHASE_NAMES)
    assert all(row["users"] == 4 for row in result.phase_rows())
    # the floor: the configured waits the run met plus the servers' CPU over the cores
    floor = result.floor
    assert floor.users == 4 and floor.cores == spawn_phases.cores()
    assert floor.seconds == pytest.approx(floor.node_launch_s + floor.image_pull_s + floor.cpu_per_server_s * 4 / floor.cores)
    assert summary["rss_per_server_mb"] > 20
    assert summary["p95_over_floor"] == pytest.approx(loadtest.percentile(result.ready_times, 95) / floor.seconds, abs=0.01)
    assert result.errors == []
    assert (summary["ready"], summary["answered"]) == (4, 4)
    assert all(u.stopped for u in result.users)
    assert 0 < summary["p50_s"] <= summary["p95_s"] <= summary["max_s"] < 420
    # every server landed on a time-sliced g5 node; 4 users fit one node's 4 replicas
    assert all(u.instance_type.startswith("g5.") for u in result.users), result.rows()
    assert result.gpu_per_node == 4 and summary["gpu_nodes_ideal"] == 1
    assert summary["gpu_nodes"] >= 1
    assert (summary["orphan_pods"], summary["orphan_processes"]) == (0, 0)
    assert summary["orphan_check"].startswith("none")
    assert result.passed
    for name in ("loadtest.json", "loadtest.csv", "loadtest.png"):
        assert (tmp_path / name).is_file()


@pytest.mark.sandbox
@pytest.mark.slow
def test_without_an_admin_unlisted_users_are_refused_with_advice(admin_hub):
    with pytest.raises(RunbookError, match="admin"):
        loadtest.run(admin_hub, 2, PROFILE, timeout=60)

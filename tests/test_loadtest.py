"""The load check (issue 7): N users start time-sliced GPU servers at once on the sandbox hub.

The suite runs a small crowd (4 users: one g5 node's worth of time-sliced replicas); the
workshop-sized N=20 is run by hand (``runbook loadtest --users 20 --admin-user hub-admin``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from eks_hub_runbook import browser, loadtest
from eks_hub_runbook import params as runbook_params
from eks_hub_runbook.errors import RunbookError

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


# -- against the sandbox hub ------------------------------------------------------------------

@pytest.fixture(scope="module")
def admin_hub(full_sandbox, sandbox_outputs):
    """The platform with dummy login and one hub admin who creates the load users."""
    from eks_hub_runbook.platform import install, sandbox_hub

    install.install(runbook_params.resolve(admin_users=ADMIN), sandbox_outputs)
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
                          timeout=420, stop_timeout=120)
    summary = result.summary()
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

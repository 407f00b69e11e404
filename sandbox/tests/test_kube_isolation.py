"""Containers in namespaces of their own: the plan (pure) and ``launch.py`` carrying it out."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from eks_hub_sandbox.kube.controllers.kubelet import isolation
from eks_hub_sandbox.kube.controllers.kubelet.isolation import CAPABILITY_NUMBERS, Bind

from eks_hub_runbook.paths import REPO_ROOT

# what the kubelet keeps where it is (a clone under /tmp would vanish with the container's /tmp)
KEEP = [str(REPO_ROOT), sys.prefix, sys.base_prefix]
ROOT = isolation.credentials({}, {})
JOVYAN = isolation.credentials({"spec": {"securityContext": {"runAsUser": 1000, "fsGroup": 100}}}, {})


def test_credentials_follow_the_security_context():
    pod = {"spec": {"securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 2000,
                                        "supplementalGroups": [3000]}}}
    creds = isolation.credentials(pod, {"securityContext": {"runAsUser": 1001}})
    assert (creds.uid, creds.gid, creds.groups, creds.capabilities) == (1001, 100, [100, 2000, 3000], [])


def test_root_keeps_containerds_defaults_without_mknod_and_never_sys_admin():
    assert set(ROOT.capabilities) == {CAPABILITY_NUMBERS[c] for c in isolation.DEFAULT_CAPABILITIES}
    assert CAPABILITY_NUMBERS["MKNOD"] not in ROOT.capabilities
    added = isolation.credentials({}, {"securityContext": {"capabilities": {"add": ["NET_ADMIN", "SYS_ADMIN"],
                                                                            "drop": ["KILL"]}}})
    assert CAPABILITY_NUMBERS["NET_ADMIN"] in added.capabilities
    assert {CAPABILITY_NUMBERS["SYS_ADMIN"], CAPABILITY_NUMBERS["KILL"]}.isdisjoint(added.capabilities)
    assert isolation.credentials({}, {"securityContext": {"capabilities": {"drop": ["ALL"]}}}).capabilities == []
    privileged = isolation.credentials({}, {"securityContext": {"privileged": True}})
    assert CAPABILITY_NUMBERS["SYS_ADMIN"] not in privileged.capabilities


def test_plan_lets_a_non_root_user_reach_the_interpreter_and_keeps_the_repository(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    plan = isolation.plan([Bind(str(tmp_path), "/home/jovyan")], JOVYAN, "/home/jovyan", "/home/jovyan",
                          [sys.executable], [], [str(repo)])
    assert plan.keep == [str(repo.resolve())]  # under /tmp, which the container gets empty
    blocked = [p for p in isolation._ancestors(sys.executable) if not isolation._searchable(p, JOVYAN)]
    assert plan.traverse == blocked and plan.scratch == ["/home", "/tmp"]


needs_namespaces = pytest.mark.skipif(not isolation.supported(), reason="no mount/PID namespaces on this machine")


def _run(plan: isolation.Plan, script: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], isolation.PLAN_VARIABLE: plan.to_json()}
    return subprocess.run(isolation.launch_argv(["sh", "-c", script], None), env=env, capture_output=True,
                          text=True, cwd="/", timeout=60)


@needs_namespaces
def test_a_container_sees_its_volumes_not_the_machines_state_and_changes_nothing(tmp_path):
    state, volume = tmp_path / "state", tmp_path / "state" / "volume"
    volume.mkdir(parents=True)
    (volume / "data.txt").write_text("in the volume\n")
    os.chown(volume, 1000, 100)
    (state / "kubeconfig").write_text("secret")
    plan = isolation.plan([Bind(str(volume), "/home/jovyan")], JOVYAN, "/srv", "/home/jovyan",
                          [sys.executable], [str(state)], KEEP)
    result = _run(plan, f"""id -u; pwd; cat /home/jovyan/data.txt; echo new > /home/jovyan/new.txt
        touch /srv/mine 2>&1
        cat {state}/kubeconfig 2>&1; ls /proc | grep -c '^[0-9]'
        touch /usr/x 2>&1; {sys.executable} -c 'print("python runs")'""")
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert lines[:3] == ["1000", "/srv", "in the volume"] and "Permission denied" in lines[3]
    assert "No such file or directory" in lines[4]  # the state folder is covered
    assert int(lines[5]) <= 4  # PID 1, the shell, ls, grep: nothing of the machine
    assert "Permission denied" in lines[6] and lines[7] == "python runs"
    assert (volume / "new.txt").read_text() == "new\n"


@needs_namespaces
def test_root_in_a_container_writes_only_its_own_folders_and_can_neither_mount_nor_make_devices(tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    top = f"/sandbox-test-{os.getpid()}"
    linked = f"/var/run/sandbox-test-{os.getpid()}"  # /var/run is a symlink to /run
    plan = isolation.plan([Bind(str(volume), f"{top}/data"), Bind(str(volume), linked)], ROOT, "/srv", "/root",
                          [sys.executable], [str(tmp_path)], KEEP)
    result = _run(plan, f"echo here > /srv/written.txt && echo here > /root/written.txt && echo v > {top}/data/v "
                        "&& cat /srv/written.txt; mount -t tmpfs x /tmp 2>&1; mknod /tmp/disk b 254 0 2>&1; ls /dev")
    assert result.stdout.startswith("here\n"), result.stdout + result.stderr
    # its root was its own (a mount point at a new top-level folder too): the machine's is unchanged
    assert not os.path.exists("/srv/written.txt") and not os.path.exists("/root/written.txt")
    assert not os.path.exists(top) and (volume / "v").read_text() == "v\n"
    assert not os.path.lexists(os.path.realpath("/var/run") + linked.removeprefix("/var/run"))
    assert "permission denied" in result.stdout.lower() and "Operation not permitted" in result.stdout
    assert set(result.stdout.split()[-12:]) >= {"null", "zero", "urandom", "pts", "shm"}
    assert "vda" not in result.stdout.split()


@needs_namespaces
def test_the_container_ends_with_its_command_and_forwards_sigterm():
    plan = isolation.plan([], ROOT, "/", None, [sys.executable], [], KEEP)
    env = {"PATH": os.environ["PATH"], isolation.PLAN_VARIABLE: plan.to_json()}
    assert subprocess.run(isolation.launch_argv(["sh", "-c", "exit 3"], None), env=env, timeout=30).returncode == 3
    process = subprocess.Popen(isolation.launch_argv(
        [sys.executable, "-c", "import signal, sys, time\n"
         "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\nprint('up', flush=True)\ntime.sleep(60)"], None),
        env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout.readline().strip() == "up"
    os.killpg(process.pid, 15)
    assert process.wait(timeout=30) == 7  # the command's own handler ran: PID 1 passed it on


def test_plan_is_json_launch_reads():
    plan = isolation.plan([Bind("/x", "/home/jovyan", read_only=True)], JOVYAN, "/home/jovyan", "/home/jovyan",
                          [], [], [])
    data = json.loads(plan.to_json())
    assert data["binds"] == [{"source": "/x", "target": "/home/jovyan", "read_only": True, "file": False}]
    assert (data["uid"], data["gid"], data["capabilities"]) == (1000, JOVYAN.gid, [])


def test_isolation_can_be_switched_off(monkeypatch):
    monkeypatch.setenv(isolation.SWITCH, "off")
    isolation.supported.cache_clear()
    try:
        assert isolation.supported() is False
        assert "plain processes" in isolation.describe()
    finally:
        monkeypatch.delenv(isolation.SWITCH)
        isolation.supported.cache_clear()

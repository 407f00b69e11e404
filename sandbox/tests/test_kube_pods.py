"""Pods as local processes: the kubelet runs commands on the pod's own loopback IP with
its environment and volume mounts (EFS access points, subPath), keeps logs, restarts
failing containers, runs placeholders for images it cannot run, and never leaves a
process behind: not on pod deletion, not on shutdown, not after being killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from eks_hub_runbook.kube import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

NS = "pods-test"
MARKER = "RUNBOOK_SANDBOX_CLUSTER"


def _wait(check, timeout=20.0, what="condition"):
    return wait_for(check, what, timeout=timeout, interval=0.2)


def _processes_of(state_dir: Path) -> list[int]:
    """Pids of live processes started by the emulator whose state folder is ``state_dir``."""
    needle = f"{MARKER}={state_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    stat = (entry / "stat").read_text()
                    if stat.rsplit(")", 1)[1].split()[0] != "Z":
                        pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def pool(karpenter_pool):
    return karpenter_pool("pods", [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["m5"]}])


@pytest.fixture(scope="module")
def core(kube_api, kubectl, pool):
    from kubernetes import client

    kubectl("create", "namespace", NS)
    yield client.CoreV1Api(kube_api)
    kubectl("delete", "namespace", NS, "--wait=false", check=False)


def _pod(name: str, pool: str, command: list[str] | None, **extra) -> dict:
    container = {"name": "main", "image": "python:3.11", **({"command": command} if command else {}), **extra}
    return {"metadata": {"name": name}, "spec": {"nodeSelector": {"sandbox-test/pool": pool},
                                                 "terminationGracePeriodSeconds": 2, "containers": [container]}}


def _running(core, name: str):
    pod = core.read_namespaced_pod(name, NS)
    statuses = pod.status.container_statuses or []
    return pod if pod.status.phase == "Running" and statuses and all(s.ready for s in statuses) else None


def test_server_binds_its_pod_ip_and_becomes_ready_when_the_port_answers(core, pool, kubectl):
    core.create_namespaced_pod(NS, _pod("web", pool, ["python", "-m", "http.server", "--bind", "0.0.0.0", "8080"],
                                        ports=[{"containerPort": 8080}]))
    pod = _wait(lambda: _running(core, "web"), what="web ready")
    assert pod.status.pod_ip.startswith("127.") and pod.status.host_ip.startswith("10.1.")
    with urllib.request.urlopen(f"http://{pod.status.pod_ip}:8080/", timeout=5) as response:
        assert response.status == 200
    log = kubectl("logs", "web", "-n", NS).stdout
    assert f"on {pod.status.pod_ip}" in log
    reasons = [e.reason for e in core.list_namespaced_event(NS, field_selector="involvedObject.name=web").items]
    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= set(reasons)


def test_efs_access_point_subpath_env_and_logs(core, pool, kubectl, full_sandbox, state_dir):
    from eks_hub_runbook.aws import session

    efs = session.client("efs", "sandbox", "us-west-2")
    fs = efs.create_file_system(CreationToken="pods-test")["FileSystemId"]
    point = efs.create_access_point(FileSystemId=fs, RootDirectory={"Path": "/home"})["AccessPointId"]
    kubectl("apply", "-f", "-", input=f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: efs-persist-test}}
spec:
  capacity: {{storage: 123Gi}}
  accessModes: [ReadWriteMany]
  storageClassName: efs-sc
  csi: {{driver: efs.csi.aws.com, volumeHandle: "{fs}::{point}"}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: efs-persist, namespace: {NS}}}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: efs-sc
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: greeting, namespace: {NS}}}
data: {{word: hello}}
""")
    _wait(lambda: core.read_namespaced_persistent_volume_claim("efs-persist", NS).status.phase == "Bound",
          what="claim bound to the static PV")
    pod = _pod("writer", pool, ["sh", "-c", "echo $GREETING from $(POD_NAME) > $HOME/note.txt; cat $HOME/note.txt; "
                                "exec sleep 300"],
               env=[{"name": "HOME", "value": "/home/jovyan"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "greeting", "key": "word"}}}],
               volumeMounts=[{"name": "home", "mountPath": "/home/jovyan", "subPath": "user-1"}])
    pod["spec"]["volumes"] = [{"name": "home", "persistentVolumeClaim": {"claimName": "efs-persist"}}]
    core.create_namespaced_pod(NS, pod)
    _wait(lambda: _running(core, "writer"), what="writer running")
    note = state_dir / "sandbox" / "cluster" / "efs" / fs / "home" / "user-1" / "note.txt"
    _wait(note.exists, what=f"{note}")
    assert note.read_text().strip() == "hello from writer"
    assert "hello from writer" in _wait(lambda: kubectl("logs", "writer", "-n", NS).stdout, what="log")
    rows = {r["pvc"]: r for r in __import__("eks_hub_runbook.kube", fromlist=["pvcs"]).pvcs(core.api_client, NS)}
    assert rows["efs-persist"]["status"] == "Bound" and rows["efs-persist"]["capacity"] == "123Gi"
    assert "efs-persist" in kubectl("get", "pvc", "-A").stdout


def test_failing_container_restarts_with_back_off(core, pool):
    core.create_namespaced_pod(NS, _pod("crasher", pool, ["sh", "-c", "echo boom; exit 3"]))

    def crashed():
        statuses = core.read_namespaced_pod("crasher", NS).status.container_statuses or []
        return statuses[0] if statuses and statuses[0].restart_count >= 1 and statuses[0].state.waiting else None
    status = _wait(crashed, what="restart")
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert status.last_state.terminated.exit_code == 3


def test_image_without_local_command_runs_a_placeholder(core, pool, kubectl):
    pod = _pod("system", pool, None)
    pod["spec"]["containers"][0]["image"] = "public.ecr.aws/eks/aws-load-balancer-controller:v2.13.0"
    pod["spec"]["containers"][0]["args"] = ["--cluster-name=hub"]
    core.create_namespaced_pod(NS, pod)
    _wait(lambda: _running(core, "system"), what="placeholder ready")
    assert "idle placeholder" in kubectl("logs", "system", "-n", NS).stdout


def test_deleting_a_pod_kills_its_process_tree(core, pool, state_dir):
    core.create_namespaced_pod(NS, _pod("tree", pool, ["sh", "-c", "sleep 300 & sleep 301 & wait"]))
    _wait(lambda: _running(core, "tree"), what="tree running")
    uid = core.read_namespaced_pod("tree", NS).metadata.uid

    def tree_pids():
        needle = f"RUNBOOK_SANDBOX_POD_UID={uid}".encode()
        return [p for p in _processes_of(state_dir / "sandbox" / "cluster")
                if needle in Path(f"/proc/{p}/environ").read_bytes().split(b"\0")]
    assert len(_wait(lambda: len(tree_pids()) >= 3 and tree_pids(), what="three processes")) >= 3
    core.delete_namespaced_pod("tree", NS)
    _wait(lambda: "tree" not in [p.metadata.name for p in core.list_namespaced_pod(NS).items], what="pod gone")
    assert tree_pids() == []


def _start_emulator(state: Path, port: int) -> subprocess.Popen:
    kubeconfig = state / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "eks_hub_sandbox.kube", "--port", str(port), "--state-dir", str(state),
         "--kubeconfig", str(kubeconfig), "--ca-file", str(state / "ca.pem")],
        stdout=open(state / "emulator.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    _wait(lambda: kubeconfig.exists() and _port_open(port), what="emulator listening")
    return process


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_pods(state: Path, count: int) -> None:
    from kubernetes import client

    from eks_hub_runbook import kube

    api = kube.load_client(state / "kubeconfig")
    core = client.CoreV1Api(api)
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "local", "labels": {"kubernetes.io/hostname": "local"}},
            "status": {"capacity": {"cpu": "8", "memory": "16Gi", "pods": "50"},
                       "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "50"},
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "10.1.0.5"}]}}
    core.create_node(node)
    for index in range(count):
        core.create_namespaced_pod("default", {"metadata": {"name": f"p{index}"}, "spec": {"containers": [{
            "name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 600 & wait"]}]}})
    _wait(lambda: len(_processes_of(state)) >= 2 * count, timeout=30, what="pod processes")


def test_no_orphan_processes_after_stop_or_kill(tmp_path):
    state, port = tmp_path / "cluster", _free_port()
    state.mkdir()
    emulator = _start_emulator(state, port)
    try:
        _run_pods(state, 3)
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=20)
        assert _processes_of(state) == [], "SIGTERM left pod processes behind"

        emulator = _start_emulator(state, port)
        _run_pods(state, 2)
        os.killpg(emulator.pid, signal.SIGKILL)  # as hard as it gets: no handler runs
        emulator.wait(timeout=10)
        time.sleep(0.5)
        survivors = _processes_of(state)  # grandchildren may survive their shell...
        emulator = _start_emulator(state, port)  # ...until the next start reaps them
        _wait(lambda: _processes_of(state) == [], timeout=10, what="leftovers reaped")
        assert survivors == [] or _processes_of(state) == []
    finally:
        if emulator.poll() is None:
            emulator.send_signal(signal.SIGTERM)
            emulator.wait(timeout=20)
    assert _processes_of(state) == []


def test_walkthrough_commands(core, pool, kubectl):
    """The seed walkthrough's verification commands, on a cluster with running pods."""
    _wait(lambda: _running(core, "web"), what="web ready")
    web = core.read_namespaced_pod("web", NS)
    wide = kubectl("get", "pods", "-n", NS, "-owide").stdout
    line = next(line for line in wide.splitlines() if line.startswith("web "))
    assert "Running" in line and web.status.pod_ip in line and web.spec.node_name in line
    everything = kubectl("get", "pods", "-A").stdout
    assert any(row.split()[:2] == [NS, "web"] for row in everything.splitlines())
    assert "pods" in kubectl("get", "nodepools").stdout
    classes = kubectl("get", "ec2nodeclasses").stdout.splitlines()
    assert any(row.split()[:2] == ["pods", "True"] for row in classes)
    assert kubectl("get", "pvc", "-A").stdout.splitlines()[0].split()[:3] == ["NAMESPACE", "NAME", "STATUS"]
    described = kubectl("describe", "node", web.spec.node_name).stdout
    for text in ("Allocatable:", "node.kubernetes.io/instance-type=m5", "karpenter.sh/nodepool=pods",
                 f"{NS}", "web", "Non-terminated Pods"):
        assert text in described, text


def test_pods_on_karpenter_nodes_run_below_the_core_nodes_cpu_priority(core, pool, core_node, kubectl):
    """Nodes share this machine's cores: user workloads (Karpenter's nodes) yield to the core node's pods."""
    command = ["python", "-c", "import os, time; print('niceness', os.nice(0), flush=True); time.sleep(300)"]
    core.create_namespaced_pod(NS, _pod("on-pool", pool, command))
    on_core = _pod("on-core", pool, command)
    on_core["spec"]["nodeSelector"] = {"kubernetes.io/hostname": core_node(core.api_client)}
    core.create_namespaced_pod(NS, on_core)
    for name in ("on-pool", "on-core"):
        _wait(lambda name=name: "niceness" in kubectl("logs", name, "-n", NS, check=False).stdout, what=f"{name} logs")
    assert "niceness 19" in kubectl("logs", "on-pool", "-n", NS).stdout
    assert "niceness 0" in kubectl("logs", "on-core", "-n", NS).stdout
    for name in ("on-pool", "on-core"):
        core.delete_namespaced_pod(name, NS)

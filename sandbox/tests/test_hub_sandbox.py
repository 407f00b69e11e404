"""End to end in the sandbox (dummy login, deployment type 1): the walkthrough's GPU-sharing
and storage checks against a real JupyterHub + KubeSpawner on the cluster emulator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from eks_hub_runbook import params as runbook_params, walkthrough
from eks_hub_runbook.hub import HOME_DIR, SHARED_DIR, HubClient
from eks_hub_runbook.platform import install
from eks_hub_sandbox import hub as sandbox_hub

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
PROFILE = "gpu-time-slicing"


@pytest.fixture(scope="module")
def installed(full_sandbox, platform_outputs):
    rows = install.install(runbook_params.resolve(), platform_outputs)
    yield rows
    sandbox_hub.stop()


@pytest.fixture(scope="module")
def core_api(full_sandbox):
    from kubernetes import client

    return client.CoreV1Api(install.api_client(full_sandbox.kubeconfig_path()))


@pytest.fixture(scope="module")
def users(installed):
    clients = {}
    for name in ("user-1", "user-2"):
        hub = HubClient(sandbox_hub.url())
        assert hub.login(name, "any password") == name
        if hub.server() is not None:  # left running by an earlier module sharing the hub
            hub.stop()
        clients[name] = hub
    yield clients
    for hub in clients.values():
        if hub.server() is not None:
            hub.stop()


def user_processes(username: str) -> list[int]:
    """Local processes serving ``username`` in this session's sandbox cluster (its kubelet marks
    every pod process with the cluster's state folder, so other sandboxes' users do not count)."""
    from eks_hub_sandbox.paths import sandbox_dir
    from eks_hub_sandbox.kube.controllers.kubelet.processes import CLUSTER_MARKER

    cluster = (sandbox_dir() / "cluster").resolve()
    wanted = {f"JUPYTERHUB_USER={username}".encode(), f"{CLUSTER_MARKER}={cluster}".encode()}
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if wanted <= set((proc / "environ").read_bytes().split(b"\0")):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_platform_installed_and_hub_answers(installed):
    assert not [row for row in installed if row["status"] == "failed"]
    assert installed[-1]["name"] == "jupyterhub" and installed[-1]["status"] == "started"
    assert HubClient(sandbox_hub.url()).health()["version"] == "5.5.0"


def test_second_install_changes_no_manifest(installed, platform_outputs):
    again = install.install(runbook_params.resolve(), platform_outputs)
    assert {row["status"] for row in again if row["kind"] == "manifests"} == {"unchanged"}


def _remove_idle_gpu_ts_nodes(core_api) -> None:
    """Delete the gpu-ts NodeClaims an earlier module's users left behind (empty nodes go only
    after the pool's 5-minute consolidateAfter). With two empty nodes the scheduler, like
    kube-scheduler's least-allocated scoring, puts the second user on the emptier one."""
    from kubernetes import client

    from eks_hub_runbook import kube

    claims = client.CustomObjectsApi(core_api.api_client)
    for claim in claims.list_cluster_custom_object("karpenter.sh", "v1", "nodeclaims",
                                                   label_selector="karpenter.sh/nodepool=gpu-ts")["items"]:
        claims.delete_cluster_custom_object("karpenter.sh", "v1", "nodeclaims", claim["metadata"]["name"])
    kube.wait_for(lambda: not core_api.list_node(label_selector="karpenter.sh/nodepool=gpu-ts").items,
                  "earlier gpu-ts nodes gone", timeout=120, interval=0.5)


def test_two_users_share_one_time_sliced_g5_node(users, core_api):
    # As in the walkthrough: user-1 starts (a g5 node comes up), then user-2 joins it.
    # (Pods pending at the same moment may each get a node: Karpenter counts physical GPUs.)
    _remove_idle_gpu_ts_nodes(core_api)
    for hub in users.values():
        hub.spawn(PROFILE)
        assert hub.wait_ready(timeout=300)["ready"]
    pods = core_api.list_namespaced_pod("jupyterhub", label_selector="component=singleuser-server").items
    nodes = {p.metadata.labels["hub.jupyter.org/username"]: p.spec.node_name for p in pods}
    assert set(nodes) == {"user-1", "user-2"} and len(set(nodes.values())) == 1, (
        nodes, [(e.involved_object.name, e.reason, e.message) for e in core_api.list_namespaced_event("jupyterhub").items
                if e.involved_object.name == "jupyter-user-2"])
    node = core_api.read_node(next(iter(nodes.values())))
    assert node.metadata.labels["node.kubernetes.io/instance-type"].startswith("g5.")
    assert node.metadata.labels["node-pool"] == "gpu-ts"
    assert node.status.allocatable["nvidia.com/gpu"] == "4"


def test_home_is_private_and_shared_is_common(users):
    one, two = users["user-1"], users["user-2"]
    one.write_file(f"{HOME_DIR}/private.txt", "user-1's notes")
    assert one.read_file(f"{HOME_DIR}/private.txt") == "user-1's notes"
    assert two.read_file(f"{HOME_DIR}/private.txt") is None
    one.write_file(f"{SHARED_DIR}/hello.txt", "shared by user-1")
    assert two.read_file(f"{SHARED_DIR}/hello.txt") == "shared by user-1"
    assert "user-1" not in two.list_dir(SHARED_DIR), "the shared folder must not expose homes (the blueprint mounted the EFS root there)"


def _in_server(kubectl, user: str, script: str, check: bool = True):
    return kubectl("exec", f"jupyter-{user}", "-n", "jupyterhub", "--", "sh", "-c", script, check=check)


def test_each_server_has_its_own_efs_mounts_and_cannot_reach_the_other_users_home(users, kubectl, full_sandbox):
    from eks_hub_sandbox.kube.controllers.kubelet import isolation
    from eks_hub_sandbox.paths import sandbox_dir

    assert isolation.supported(), "containers need mount and PID namespaces (unshare) on this machine"
    # the walkthrough's storage check, as typed in user-1's terminal
    mounts = {line.split()[-1]: line.split()[0] for line in _in_server(kubectl, "user-1", "df -h").stdout.splitlines()[1:]}
    for path in ("/home/jovyan", "/home/shared"):
        assert mounts.get(path, "").endswith(".efs.us-west-2.amazonaws.com:/"), mounts
    assert _in_server(kubectl, "user-1", "id -u; pwd").stdout.split() == ["1000", "/home/jovyan"]
    _in_server(kubectl, "user-1", "echo user-1-only > /home/jovyan/secret.txt")
    [host_file] = (sandbox_dir() / "cluster" / "efs").glob("*/home/user-1/secret.txt")  # where EFS keeps it here
    assert host_file.stat().st_uid == 1000
    # user-2 looks for it every way there is
    attempts = {
        "own home": "ls -a /home/jovyan",
        "the folder above": "ls -a /home/jovyan/.. /home/jovyan/../..",
        "by name": "cat /home/user-1/secret.txt /home/jovyan/../user-1/secret.txt",
        "the machine's path": f"cat {host_file}",
        "other processes": "cat /proc/*/root/home/jovyan/secret.txt; cat /proc/[0-9]*/environ | tr '\\0' '\\n' "
                           "| grep '^JUPYTERHUB_USER=' | sort -u",
        "the whole disk": "find / -xdev -name secret.txt 2>/dev/null",
    }
    seen = {what: _in_server(kubectl, "user-2", script, check=False) for what, script in attempts.items()}
    assert not any("user-1-only" in run.stdout for run in seen.values()), {k: v.stdout for k, v in seen.items()}
    assert "secret.txt" not in seen["own home"].stdout + seen["the whole disk"].stdout
    assert set(seen["the folder above"].stdout.split()) <= {"/home/jovyan/..:", "/home/jovyan/../..:", ".", "..",
                                                           "jovyan", "shared"} | set(os.listdir("/")), seen
    assert seen["other processes"].stdout.split() == ["JUPYTERHUB_USER=user-2"]  # its own processes only
    # and through the Kubernetes API: the pod holds no service-account token to try it with
    # (automountServiceAccountToken false; EKS Pod Identity brings its own, for AWS only)
    token = _in_server(kubectl, "user-2", "cat /var/run/secrets/kubernetes.io/serviceaccount/token", check=False)
    assert token.returncode != 0 and not token.stdout.strip()


def test_user_pods_hold_no_api_token_and_the_releases_network_policies_are_stored(users, core_api, full_sandbox):
    """What the emulator can show of the fences: each user pod's spec (no service-account token,
    the metadata-blocking init container) and the chart's NetworkPolicies, admitted by the API server."""
    from kubernetes import client

    for name, hub in users.items():
        if hub.server() is None:
            hub.spawn(PROFILE)
            hub.wait_ready()
        spec = core_api.read_namespaced_pod(f"jupyter-{name}", "jupyterhub").spec
        assert spec.automount_service_account_token is False, name
        assert not any(v.name.startswith("kube-api-access-") for v in spec.volumes or []), name
        assert [c.name for c in spec.init_containers or []] == ["block-cloud-metadata"], name
    policies = client.NetworkingV1Api(install.api_client(full_sandbox.kubeconfig_path())).list_namespaced_network_policy(
        "jupyterhub").items
    by_name = {p.metadata.name: p.spec for p in policies}
    assert set(by_name) >= {"hub", "proxy", "singleuser"}
    user = by_name["singleuser"]
    assert user.pod_selector.match_labels == {"component": "singleuser-server", "release": "jupyterhub"}
    [ingress] = user.ingress
    assert [f.pod_selector.match_labels for f in ingress._from] == [{"hub.jupyter.org/network-access-singleuser": "true"}]
    blocks = [t.ip_block for rule in user.egress for t in rule.to or [] if t.ip_block and t.ip_block.cidr == "0.0.0.0/0"]
    assert blocks and {"10.0.0.0/8", "169.254.169.254/32"} <= set(blocks[0]._except)


def test_user_1s_token_opens_neither_user_2s_files_nor_user_2s_server(users):
    one, two = users["user-1"], users["user-2"]
    for hub in (one, two):
        if hub.server() is None:
            hub.spawn(PROFILE)
            hub.wait_ready()
    two.write_file(f"{HOME_DIR}/mine.txt", "user-2-only")
    one.token(note="tenant-test")
    base = sandbox_hub.url()
    with requests.Session() as other:  # user-1's API token alone: no cookies of anyone
        other.headers["Authorization"] = f"token {one._token}"
        for path in (f"/user/user-2/api/contents/{HOME_DIR}/mine.txt", "/user/user-2/api/contents", "/user/user-2/lab"):
            answer = other.get(base + path, allow_redirects=False, timeout=30)
            assert answer.status_code in (302, 403), (path, answer.status_code)
            assert "user-2-only" not in answer.text
            if answer.status_code == 302:
                assert "/hub/" in answer.headers["Location"] and "/user/user-2/" not in answer.headers["Location"]
        # the hub API: user-2's server can be neither stopped nor (re)started with user-1's token
        stop = other.delete(f"{base}/hub/api/users/user-2/server", timeout=30)
        start = other.post(f"{base}/hub/api/users/user-2/server", json={"profile": PROFILE}, timeout=30)
        assert stop.status_code in (403, 404) and start.status_code in (403, 404), (stop.status_code, start.status_code)
        # user-1's own server still answers the same token (the refusals above are about whose)
        assert other.get(f"{base}/user/user-1/api/contents", timeout=30).status_code == 200
    assert two.server() is not None and two.read_file(f"{HOME_DIR}/mine.txt") == "user-2-only"


def test_the_walkthroughs_commands_show_the_hub_as_pods_and_port_forward_reaches_it(installed, full_sandbox):
    runs = {run.command.split(" 8")[0]: run for run in walkthrough.run_all(full_sandbox.kubeconfig_path())}
    hub_pods = runs["kubectl get pods -n jupyterhub"]
    assert hub_pods.status == "pass", hub_pods.output
    rows = walkthrough.table(hub_pods.output)
    assert {r["NAME"].rsplit("-", 2)[0] for r in rows} >= {"hub", "proxy"}
    system = [r for r in walkthrough.table(runs["kubectl get pods -A"].output) if r["NAMESPACE"] == "kube-system"]
    # the releases' controllers (no Terraform here: no EKS add-ons, see test_addons)
    assert {r["NAME"].rsplit("-", 2)[0] for r in system} >= {"karpenter", "aws-load-balancer-controller"}
    assert all(r["STATUS"] == "Running" for r in system)
    claims = {r["NAME"]: r["STATUS"] for r in walkthrough.table(runs["kubectl get pvc -A"].output) if r["NAMESPACE"] == "jupyterhub"}
    assert claims["hub-db-dir"] == "Bound" and claims["efs-persist"] == "Bound", claims
    assert runs["kubectl get nodepools"].status == "pass"
    forward = runs["kubectl port-forward svc/proxy-public"]
    assert forward.status == "pass" and "HTTP 200" in forward.detail, forward.output


def test_deleting_the_hub_pod_keeps_users_their_logins_and_running_servers(users, core_api, kubectl):
    one = users["user-1"]
    assert one.server() is not None
    before = {p.metadata.name for p in core_api.list_namespaced_pod("jupyterhub", label_selector="component=hub").items}
    kubectl("delete", "pod", "-l", "component=hub", "-n", "jupyterhub")
    kubectl("rollout", "status", "deployment/hub", "-n", "jupyterhub", "--timeout=120s")
    sandbox_hub.wait_ready(sandbox_hub.url(), timeout=60)
    after = {p.metadata.name for p in core_api.list_namespaced_pod("jupyterhub", label_selector="component=hub").items}
    assert after and not after & before
    assert one.server() is not None  # the cookie still works: the cookie secret is kept in Secret hub
    assert one.user_model()["servers"][""]["ready"]  # KubeSpawner's state came back from hub-db-dir
    assert one.read_file(f"{HOME_DIR}/private.txt") == "user-1's notes"  # the server itself never stopped


def test_stopping_servers_leaves_no_processes(users, core_api):
    for name, hub in users.items():
        hub.stop()
        assert hub.server() is None
    assert core_api.list_namespaced_pod("jupyterhub", label_selector="component=singleuser-server").items == []
    for name in users:
        assert user_processes(name) == [], f"processes of {name} are still running"



def test_a_stopped_hub_forgets_its_users_once_its_database_claim_is_deleted(users, core_api, platform_outputs):
    sandbox_hub.stop()
    assert sandbox_hub.delete_database() is True
    assert sandbox_hub.delete_database() is False  # nothing left to delete
    claims = {c.metadata.name for c in core_api.list_namespaced_persistent_volume_claim("jupyterhub").items}
    assert "hub-db-dir" not in claims
    install.install(runbook_params.resolve(), platform_outputs)  # a new claim, an empty database
    for name in list(users):
        fresh = HubClient(sandbox_hub.url())
        assert fresh.login(name, "any password") == name
        assert fresh.server() is None  # the old database's servers and tokens are gone
        users[name] = fresh

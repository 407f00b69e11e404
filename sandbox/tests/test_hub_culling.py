"""Idle servers culled, on a cluster of the test's own (no local AWS: one core node, the
Karpenter and device-plugin manifests of the platform, an in-memory hub database, no EFS):
the real jupyterhub-idle-culler, started by the hub from the values' ``cull`` block (the 02
parameter ``cull_timeout_minutes`` at its shortest, 6 s), stops an idle time-slicing GPU
server; KubeSpawner deletes its pod and Karpenter consolidates the emptied g5 node."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import eks_hub_sandbox as sandbox
from eks_hub_runbook import culling, kube, params as runbook_params, third_party
from eks_hub_runbook.hub import HubClient
from eks_hub_runbook.platform import install, manifests, values
from eks_hub_sandbox import hub as sandbox_hub
from eks_hub_sandbox.paths import sandbox_dir

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
PROFILE = "gpu-time-slicing"
POOL = "gpu-ts"
USER = "user-1"
# The base manifests but the EFS volumes (EFS needs the local AWS; the test's servers have no homes).
SKIPPED_KINDS = ("PersistentVolume", "PersistentVolumeClaim")


def _hub_values(p, outputs) -> dict:
    """The deployment's values with an in-memory database and no storage (no AWS here)."""
    rendered = values.jupyterhub_values(p, outputs, hub_url=sandbox_hub.url())
    rendered["hub"]["db"] = {"type": "sqlite-memory"}
    rendered["singleuser"]["storage"] = {"type": "none", "extraVolumes": [], "extraVolumeMounts": []}
    return rendered


@pytest.fixture(scope="module")
def culling_hub(tmp_path_factory, private_cluster, kubectl_for, terraform_outputs):
    """The hub (cull_timeout_minutes 0.1) and Karpenter's pools on a cluster of the module's own;
    the GPU pool consolidates an empty node after 1 s (the platform's: 5 minutes)."""
    p = runbook_params.resolve(cull_timeout_minutes=0.1)
    with private_cluster("hub-culling-state") as api:
        kubectl = kubectl_for(sandbox.kubeconfig_path(), tmp_path_factory.mktemp("kubectl-home"))
        kubectl("apply", "-f", str(third_party.folder(third_party.KARPENTER)))
        objects = [o for o in manifests.render_group("base", p, terraform_outputs) if o["kind"] not in SKIPPED_KINDS]
        for obj in manifests.render_group("karpenter", p, terraform_outputs):
            if obj["kind"] == "NodePool" and obj["metadata"]["name"] == POOL:
                obj["spec"]["disruption"]["consolidateAfter"] = "1s"
            objects.append(obj)
        install.apply_objects(api, objects)
        try:
            sandbox_hub.start(_hub_values(p, terraform_outputs))
            yield api, sandbox_dir(), p
        finally:
            sandbox_hub.stop()


def _culler_commands(cluster_dir: Path) -> list[list[str]]:
    """Command lines of the processes the hub pod's JupyterHub started as jupyterhub-idle-culler
    (children of this cluster's hub process; a service's environment does not keep the kubelet's marker)."""
    from eks_hub_sandbox.kube.controllers.kubelet.processes import CLUSTER_MARKER

    marker = f"{CLUSTER_MARKER}={(cluster_dir / 'cluster').resolve()}".encode()
    commands, parents, hubs = {}, {}, set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = [part.decode() for part in (proc / "cmdline").read_bytes().split(b"\0") if part]
                status = (proc / "status").read_text()
                if "jupyterhub_idle_culler" in cmdline:
                    commands[proc.name] = cmdline
                    parents[proc.name] = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
                elif "--upgrade-db" in cmdline and marker in (proc / "environ").read_bytes().split(b"\0"):
                    hubs.add(proc.name)
            except OSError:
                continue
    return [command for pid, command in commands.items() if parents[pid] in hubs]


def _karpenter_state(api) -> str:
    """What Karpenter saw, for a failure message: the claims' conditions, its last events, the pods."""
    from kubernetes import client

    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    claims = {c["metadata"]["name"]: [(x["type"], x["status"]) for x in c.get("status", {}).get("conditions", [])]
              for c in custom.list_cluster_custom_object("karpenter.sh", "v1", "nodeclaims")["items"]}
    events = [(e.involved_object.name, e.reason, e.message) for e in core.list_event_for_all_namespaces().items
              if e.source and e.source.component == "karpenter"][-10:]
    pods = [(p.metadata.name, p.spec.node_name, p.status.phase) for p in core.list_pod_for_all_namespaces().items]
    return f"claims {claims}\nkarpenter events {events}\npods {pods}"


def test_hub_runs_the_idle_culler_with_the_charts_arguments(culling_hub):
    from kubernetes import client

    api, cluster_dir, _ = culling_hub
    try:
        [command] = kube.wait_for(lambda: _culler_commands(cluster_dir), "the culler running", timeout=30, interval=0.3)
    except Exception:
        core = client.CoreV1Api(api)
        [hub_pod] = core.list_namespaced_pod("jupyterhub", label_selector="component=hub").items
        raise AssertionError(core.read_namespaced_pod_log(hub_pod.metadata.name, "jupyterhub")[-3000:]) from None
    args = command[command.index("jupyterhub_idle_culler") + 1:]
    assert re.fullmatch(r"--url=http://[0-9.]+:8081/hub/api", args[0]), args  # the hub pod's address
    assert args[1:] == ["--timeout=6", "--cull-every=3", "--concurrency=10"]


def test_idle_gpu_server_is_culled_and_its_node_consolidated(culling_hub):
    """04's option wait_for_cull (culling.watch_cull) on the real thing, then the cluster checked directly."""
    from kubernetes import client

    api, _, p = culling_hub
    core = client.CoreV1Api(api)
    hub = HubClient(sandbox_hub.url())
    assert hub.login(USER, "any password") == USER
    hub.spawn(PROFILE)
    assert hub.wait_ready(timeout=180)["ready"]
    [pod] = core.list_namespaced_pod("jupyterhub", label_selector="component=singleuser-server").items
    assert pod.metadata.annotations["karpenter.sh/do-not-disrupt"] == "true"  # never evicted while it runs
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["karpenter.sh/nodepool"] == POOL
    assert node.metadata.labels["node.kubernetes.io/instance-type"].startswith("g5.")

    # nobody touches the server: the culler stops it, KubeSpawner deletes its pod, Karpenter the node
    rows = culling.watch_cull(hub, api, USER, params=p, timeout=120, interval=0.3)
    assert [(r["event"], r["status"]) for r in rows] == [(event, "pass") for event in culling.EVENTS], (
        rows, _karpenter_state(api))
    seconds = [r["seconds since idle"] for r in rows]
    # nothing before the 6 s timeout (the culler did it, nothing else); the node only after its pod
    # (the hub marks the server stopped once KubeSpawner's pod deletion went through: either may be seen first)
    assert min(seconds) >= 6 and seconds[2] >= seconds[1], rows
    assert hub.server() is None and hub.user_model()["name"] == USER  # cull.users false: the user stays
    assert not core.list_namespaced_pod("jupyterhub", label_selector="component=singleuser-server").items
    assert not core.list_node(label_selector=f"karpenter.sh/nodepool={POOL}").items
    claims = client.CustomObjectsApi(api).list_cluster_custom_object("karpenter.sh", "v1", "nodeclaims")["items"]
    assert not [c for c in claims if c["metadata"]["labels"].get("karpenter.sh/nodepool") == POOL]

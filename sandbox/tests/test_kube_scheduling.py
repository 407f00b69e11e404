"""Scheduling in the sandbox cluster: the scheduler (taints, selectors, extended resources),
Karpenter (new nodes for pending pods, consolidation of empty ones) and the validation of
pod specs a real API server rejects."""

from __future__ import annotations

import time

import pytest

from eks_hub_runbook.kube import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

NS = "sched-test"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _wait(check, timeout=20.0, what="condition"):
    return wait_for(check, what, timeout=timeout, interval=0.2)


def _pod(name: str, pool: str, limits: dict | None = None, tolerations=(), requests=None) -> dict:
    resources = {"requests": requests or {"cpu": "250m", "memory": "256Mi"}}
    if limits:
        resources["limits"] = limits
    return {"metadata": {"name": name, "labels": {"test": "sched"}},
            "spec": {"nodeSelector": {"sandbox-test/pool": pool}, "tolerations": list(tolerations),
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10", "resources": resources}]}}


@pytest.fixture(scope="module")
def core(kube_api, kubectl, nvidia_time_slicing):
    from kubernetes import client

    kubectl("create", "namespace", NS)
    yield client.CoreV1Api(kube_api)
    kubectl("delete", "namespace", NS, "--wait=false", check=False)


def _node_of(core, name: str) -> str | None:
    return core.read_namespaced_pod(name, NS).spec.node_name


def _events(core, name: str) -> list:
    return core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}").items


def test_taint_without_toleration_stays_pending(core, karpenter_pool):
    pool = karpenter_pool("taints", [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5"]}],
                          taints=[{"key": "nvidia.com/gpu", "value": "Exists", "effect": "NoSchedule"}])
    core.create_namespaced_pod(NS, _pod("tolerant", pool, {"nvidia.com/gpu": 1}, [GPU_TOLERATION]))
    node = _wait(lambda: _node_of(core, "tolerant"), what="tolerant pod scheduled")
    core.create_namespaced_pod(NS, _pod("intolerant", pool, {"nvidia.com/gpu": 1}))
    event = _wait(lambda: [e for e in _events(core, "intolerant") if e.reason == "FailedScheduling"
                           and "untolerated taint {nvidia.com/gpu: Exists}" in e.message], what="FailedScheduling")
    assert event[0].type == "Warning"
    karpenter = _wait(lambda: [e for e in _events(core, "intolerant") if e.source.component == "karpenter"],
                      what="karpenter's verdict")
    assert "did not tolerate" in karpenter[0].message
    time.sleep(1.5)
    pod = core.read_namespaced_pod("intolerant", NS)
    assert pod.spec.node_name is None and pod.status.phase == "Pending"
    condition = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert condition.status == "False" and condition.reason == "Unschedulable"
    assert node and len(core.list_node(label_selector=f"sandbox-test/pool={pool}").items) == 1


def test_extended_resource_exhaustion_provisions_a_second_node(core, karpenter_pool):
    pool = karpenter_pool("exhaust", [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g5.2xlarge"]}],
        taints=[{"key": "nvidia.com/gpu", "value": "Exists", "effect": "NoSchedule"}])
    nodes = []
    for index in range(4):  # four time-sliced replicas of one A10G
        core.create_namespaced_pod(NS, _pod(f"slice-{index}", pool, {"nvidia.com/gpu": 1}, [GPU_TOLERATION]))
        nodes.append(_wait(lambda: _node_of(core, f"slice-{index}"), what=f"slice-{index} scheduled"))
    assert len(set(nodes)) == 1
    core.create_namespaced_pod(NS, _pod("slice-4", pool, {"nvidia.com/gpu": 1}, [GPU_TOLERATION]))
    fifth = _wait(lambda: _node_of(core, "slice-4"), what="fifth pod on a new node")
    assert fifth != nodes[0]
    assert any("Insufficient nvidia.com/gpu" in e.message for e in _events(core, "slice-4"))
    assert len(core.list_node(label_selector=f"sandbox-test/pool={pool}").items) == 2


def test_required_node_affinity_picks_the_instance_type(core, karpenter_pool):
    pool = karpenter_pool("affinity", [{"key": "karpenter.k8s.aws/instance-family", "operator": "In",
                                        "values": ["m5"]}])
    pod = _pod("affine", pool)
    pod["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                                                     "values": ["m5.4xlarge"]}]}]}}}
    core.create_namespaced_pod(NS, pod)
    node = _wait(lambda: _node_of(core, "affine"), what="affine pod scheduled")
    assert core.read_node(node).metadata.labels["node.kubernetes.io/instance-type"] == "m5.4xlarge"


def test_selector_nothing_provides_stays_pending_without_nodes(core):
    core.create_namespaced_pod(NS, _pod("orphan", "no-such-pool"))
    _wait(lambda: [e for e in _events(core, "orphan") if e.reason == "FailedScheduling"], what="FailedScheduling")
    time.sleep(1.0)
    assert _node_of(core, "orphan") is None
    assert core.list_node(label_selector="sandbox-test/pool=no-such-pool").items == []


def test_empty_node_is_consolidated(core, karpenter_pool):
    from kubernetes import client

    pool = karpenter_pool("consolidate", [{"key": "karpenter.k8s.aws/instance-family", "operator": "In",
                                           "values": ["m5"]}], consolidate_after="1s")
    core.create_namespaced_pod(NS, _pod("short-lived", pool))
    node = _wait(lambda: _node_of(core, "short-lived"), what="pod scheduled")
    _wait(lambda: core.read_namespaced_pod("short-lived", NS).status.phase == "Running", what="pod running")
    core.delete_namespaced_pod("short-lived", NS)
    _wait(lambda: node not in [n.metadata.name for n in core.list_node().items], timeout=20, what="node removed")
    claims = client.CustomObjectsApi(core.api_client).list_cluster_custom_object("karpenter.sh", "v1", "nodeclaims")
    assert not [c for c in claims["items"] if c["metadata"]["labels"].get("karpenter.sh/nodepool") == pool]


def test_empty_node_goes_with_its_daemon_pods(core, karpenter_pool):
    """A daemon that tolerates every taint (as aws-node and kube-proxy do) is not drained: its
    DaemonSet would put it straight back on the node. Karpenter leaves it, and it goes with the node."""
    from kubernetes import client

    pool = karpenter_pool("consolidate-daemons", [{"key": "karpenter.k8s.aws/instance-family", "operator": "In",
                                                   "values": ["m5"]}], consolidate_after="1s")
    daemon = {"metadata": {"name": "node-daemon"}, "spec": {
        "selector": {"matchLabels": {"app": "node-daemon"}},
        "template": {"metadata": {"labels": {"app": "node-daemon"}}, "spec": {
            "nodeSelector": {"sandbox-test/pool": pool}, "tolerations": [{"operator": "Exists"}],
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "python:3.11", "command": ["sleep", "600"]}]}}}}
    client.AppsV1Api(core.api_client).create_namespaced_daemon_set(NS, daemon)
    core.create_namespaced_pod(NS, _pod("short-lived-beside-a-daemon", pool))
    node = _wait(lambda: _node_of(core, "short-lived-beside-a-daemon"), what="pod scheduled")
    _wait(lambda: [p for p in core.list_namespaced_pod(NS, label_selector="app=node-daemon").items
                   if p.spec.node_name == node and p.status.phase == "Running"], what="daemon pod running on the node")
    core.delete_namespaced_pod("short-lived-beside-a-daemon", NS)
    _wait(lambda: node not in [n.metadata.name for n in core.list_node().items], timeout=30, what="node removed")
    _wait(lambda: not [p for p in core.list_namespaced_pod(NS, label_selector="app=node-daemon").items
                       if p.spec.node_name == node], timeout=30, what="the daemon pod gone with its node")
    client.AppsV1Api(core.api_client).delete_namespaced_daemon_set("node-daemon", NS)


@pytest.mark.parametrize("mutate,field", [
    (lambda c, s: c.pop("image"), "spec.containers[0].image"),
    (lambda c, s: c.update(resources={"requests": {"nvidia.com/gpu": 1}}), "spec.containers[0].resources.limits"),
    (lambda c, s: c.update(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
     "spec.containers[0].resources.requests[cpu]"),
    (lambda c, s: s["containers"].append(dict(c)), "spec.containers[1].name"),
    (lambda c, s: s.update(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]), "spec.tolerations[0].operator"),
    (lambda c, s: c.update(volumeMounts=[{"name": "missing", "mountPath": "/x"}]), "spec.containers[0].volumeMounts[0].name"),
    (lambda c, s: s.update(restartPolicy="Sometimes"), "spec.restartPolicy"),
    (lambda c, s: c.update(resources={"limits": {"memory": "lots"}}), "spec.containers[0].resources.limits[memory]"),
])
def test_invalid_pod_specs_are_rejected_with_422(core, mutate, field):
    import json

    from kubernetes.client import ApiException

    pod = _pod("invalid", "any")
    mutate(pod["spec"]["containers"][0], pod["spec"])
    with pytest.raises(ApiException) as error:
        core.create_namespaced_pod(NS, pod)
    assert error.value.status == 422, error.value.body
    status = json.loads(error.value.body)
    assert status["reason"] == "Invalid"
    assert field in [cause["field"] for cause in status["details"]["causes"]], status["details"]["causes"]

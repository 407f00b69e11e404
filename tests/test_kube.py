"""kube.py: the cluster's pods, nodes, claims, events and Karpenter pools as plain rows, and the waits.

Unit tests give the queries a fake ApiClient that answers ``Table`` responses as an API server
does; the sandbox tests read a real (emulated) cluster and check that ready, status, restarts
and age come out exactly as ``kubectl get`` prints them.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from eks_hub_runbook import kube
from eks_hub_runbook.kube import KubeError


# --------------------------------------------------------------------------- a fake API server


class FakeApi:
    """Answers ``call_api`` from canned JSON by path (an Exception to raise instead); records calls."""

    def __init__(self, responses: dict):
        self.responses = responses
        self.calls: list[dict] = []

    def call_api(self, path, method, query_params=None, header_params=None, **kwargs):
        self.calls.append({"path": path, "method": method, "query": dict(query_params or []),
                           "accept": (header_params or {}).get("Accept"), **kwargs})
        answer = self.responses[path]
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(data=json.dumps(answer).encode())


def _table(columns: list[str], rows: list[tuple[list, dict]]) -> dict:
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": [{"name": name, "type": "string"} for name in columns],
            "rows": [{"cells": cells, "object": obj} for cells, obj in rows]}


def _api_error(status: int):
    from kubernetes.client import ApiException

    return ApiException(status=status, reason="Forbidden" if status == 403 else "Not Found")


POD_COLUMNS = ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
NODE_COLUMNS = ["Name", "Status", "Roles", "Age", "Version"]


def _pod(name, namespace="jupyterhub", node="", ip="", containers=None):
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": node, "containers": containers or [{"name": "main"}]},
            "status": {"podIP": ip} if ip else {}}


# --------------------------------------------------------------------------- unit tests


def test_table_asks_the_server_for_a_table_with_each_object():
    obj = _pod("hub-1", ip="10.0.0.5")
    api = FakeApi({"/api/v1/namespaces/jupyterhub/pods": _table(POD_COLUMNS, [(["hub-1", "1/1", "Running"], obj)])})
    rows = kube._table(api, "/api/v1/pods", "jupyterhub", label_selector="component=hub")
    assert rows == [({"Name": "hub-1", "Ready": "1/1", "Status": "Running"}, obj)]
    call = api.calls[0]
    assert call["method"] == "GET" and call["accept"] == kube.TABLE_ACCEPT
    assert call["query"] == {"labelSelector": "component=hub", "includeObject": "Object"}  # no empty fieldSelector
    assert call["_preload_content"] is False


def test_a_missing_resource_lists_nothing_and_other_failures_raise_kube_error():
    api = FakeApi({"/api/v1/pods": _api_error(404), "/api/v1/nodes": _api_error(403),
                   "/apis/karpenter.sh/v1/nodepools": _api_error(404),
                   "/apis/karpenter.k8s.aws/v1/ec2nodeclasses": _api_error(403)})
    assert kube.pods(api) == []
    assert kube.nodepools(api) == []  # no Karpenter CRDs: no pools
    with pytest.raises(KubeError, match="listing /api/v1/nodes failed"):
        kube.nodes(api)
    with pytest.raises(KubeError, match="listing /apis/karpenter.k8s.aws/v1/ec2nodeclasses failed"):
        kube.ec2nodeclasses(api)


def test_pod_rows_take_ready_status_restarts_and_age_from_the_servers_columns():
    running = _pod("hub-1", node="ip-10-0-1-5.ec2.internal", ip="10.0.1.7", containers=[{"name": "hub"}, {"name": "side"}])
    pending = _pod("jupyter-user-1")
    api = FakeApi({"/api/v1/pods": _table(POD_COLUMNS, [
        (["hub-1", "2/2", "Running", "3 (2m ago)", "5d4h", "10.0.1.7", "ip-10-0-1-5.ec2.internal", "<none>", "<none>"], running),
        (["jupyter-user-1", "0/1", "ContainerCreating", "0", "12s", "<none>", "<none>", "<none>", "<none>"], pending),
    ])})
    rows = kube.pods(api)
    assert rows == [
        {"namespace": "jupyterhub", "pod": "hub-1", "ready": "2/2", "status": "Running", "restarts": 3,
         "node": "ip-10-0-1-5.ec2.internal", "ip": "10.0.1.7", "age": "5d4h", "is_ready": True},
        {"namespace": "jupyterhub", "pod": "jupyter-user-1", "ready": "0/1", "status": "ContainerCreating",
         "restarts": 0, "node": "", "ip": "", "age": "12s", "is_ready": False},
    ]


def test_a_pod_without_containers_ready_is_not_ready():
    api = FakeApi({"/api/v1/pods": _table(POD_COLUMNS, [(["p", "0/0", "Completed", "0", "1m"], _pod("p"))])})
    assert kube.pods(api)[0]["is_ready"] is False


def _node(name, labels, capacity, allocatable=None, ready="True"):
    return {"metadata": {"name": name, "labels": labels},
            "status": {"capacity": capacity, "allocatable": allocatable or capacity,
                       "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}]}}


def test_node_rows_name_pool_capacity_type_and_accelerators():
    karpenter = _node("ip-10-0-2-9.ec2.internal", {
        "node.kubernetes.io/instance-type": "g5.2xlarge", "topology.kubernetes.io/zone": "us-west-2b",
        "karpenter.sh/capacity-type": "spot", "karpenter.sh/nodepool": "gpu-ts"},
        {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "4", "pods": "58"},
        {"cpu": "7910m", "memory": "30Gi", "nvidia.com/gpu": "4", "pods": "58"})
    a100 = _node("ip-10-0-2-10.ec2.internal", {"karpenter.sh/nodepool": "gpu-mig"},
                 {"cpu": "96", "memory": "1152Gi", "nvidia.com/mig-3g.20gb": "16", "nvidia.com/mig-1g.5gb": "14",
                  "aws.amazon.com/neuron": "0", "pods": "250"})
    managed = _node("ip-10-0-3-4.ec2.internal", {"eks.amazonaws.com/nodegroup": "core",
                                                 "eks.amazonaws.com/capacityType": "ON_DEMAND"},
                    {"cpu": "4", "memory": "16Gi", "pods": "58"}, ready="Unknown")
    api = FakeApi({"/api/v1/nodes": _table(NODE_COLUMNS, [(["a", "Ready", "<none>", "3h"], karpenter),
                                                          (["b", "Ready", "<none>", "2m"], a100),
                                                          (["c", "NotReady", "<none>", "9d"], managed)])})
    first, second, third = kube.nodes(api)
    assert first == {"node": "ip-10-0-2-9.ec2.internal", "instance_type": "g5.2xlarge", "zone": "us-west-2b",
                     "capacity_type": "spot", "pool": "gpu-ts", "ready": True, "cpu": 7.91, "memory_gib": 30.0,
                     "gpu_capacity": 4, "gpu_allocatable": 4, "mig": "", "neuron": 0, "pods": 58, "age": "3h"}
    assert second["mig"] == "mig-1g.5gb=14, mig-3g.20gb=16" and second["gpu_capacity"] == 0
    assert (third["pool"], third["capacity_type"], third["ready"], third["age"]) == ("core", "on-demand", False, "9d")


def test_pvc_rows_show_the_claim_and_its_volume():
    bound = {"metadata": {"name": "efs-persist", "namespace": "jupyterhub"},
             "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc", "volumeName": "pv-efs"},
             "status": {"phase": "Bound", "accessModes": ["ReadWriteMany"], "capacity": {"storage": "123Gi"}}}
    pending = {"metadata": {"name": "hub-db-dir", "namespace": "jupyterhub"},
               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp3"}, "status": {"phase": "Pending"}}
    api = FakeApi({"/api/v1/persistentvolumeclaims": _table(["Name", "Status", "Age"], [
        (["efs-persist", "Bound", "4d"], bound), (["hub-db-dir", "Pending", "30s"], pending)])})
    assert kube.pvcs(api) == [
        {"namespace": "jupyterhub", "pvc": "efs-persist", "status": "Bound", "volume": "pv-efs", "capacity": "123Gi",
         "access_modes": "ReadWriteMany", "storage_class": "efs-sc", "age": "4d"},
        {"namespace": "jupyterhub", "pvc": "hub-db-dir", "status": "Pending", "volume": "", "capacity": "",
         "access_modes": "ReadWriteOnce", "storage_class": "gp3", "age": "30s"},
    ]


def test_events_come_oldest_first_with_the_servers_last_seen():
    def event(name, reason, last, created):
        return {"metadata": {"name": name, "creationTimestamp": created}, "type": "Normal", "reason": reason,
                "involvedObject": {"kind": "Pod", "name": "jupyter-user-1"}, "message": f"{reason} it",
                "lastTimestamp": last, "count": 2}
    newest = event("e1", "Started", "2026-01-01T10:05:00Z", "2026-01-01T10:00:00Z")
    oldest = event("e2", "Scheduled", "2026-01-01T10:01:00Z", "2026-01-01T10:01:00Z")
    undated = event("e3", "Pulling", None, "2026-01-01T10:03:00Z")  # no lastTimestamp: its creation time
    path = "/api/v1/namespaces/jupyterhub/events"
    api = FakeApi({path: _table(["Last Seen", "Type", "Reason"], [(["1m"], newest), (["5m"], oldest), (["3m"], undated)])})
    rows = kube.events(api, "jupyterhub", involved_name="jupyter-user-1")
    assert [r["reason"] for r in rows] == ["Scheduled", "Pulling", "Started"]
    assert rows[0] == {"last_seen": "5m", "type": "Normal", "reason": "Scheduled", "object": "pod/jupyter-user-1",
                       "message": "Scheduled it", "count": 2}
    assert api.calls[0]["query"]["fieldSelector"] == "involvedObject.name=jupyter-user-1"
    kube.events(api, "jupyterhub", involved_name="jupyter-user-1", involved_uid="u-2")
    assert api.calls[1]["query"]["fieldSelector"] == "involvedObject.name=jupyter-user-1,involvedObject.uid=u-2"


def test_placement_rows_sum_requests_and_name_the_nodes_pool():
    node = _node("n1", {"node.kubernetes.io/instance-type": "g5.2xlarge", "karpenter.sh/nodepool": "gpu-ts"},
                 {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "4"})
    pod = _pod("jupyter-user-1", node="n1", ip="10.0.2.20", containers=[
        {"name": "notebook", "resources": {"requests": {"cpu": "1500m", "memory": "4Gi"},
                                           "limits": {"nvidia.com/gpu": "1", "aws.amazon.com/neuron": "2"}}},
        {"name": "sidecar", "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}])
    unscheduled = _pod("jupyter-user-2")
    api = FakeApi({"/api/v1/nodes": _table(NODE_COLUMNS, [(["n1", "Ready", "<none>", "1h"], node)]),
                   "/api/v1/namespaces/jupyterhub/pods": _table(POD_COLUMNS, [
                       (["jupyter-user-1", "1/1", "Running"], pod), (["jupyter-user-2", "0/1", "Pending"], unscheduled)])})
    first, second = kube.placement(api, "jupyterhub", "component=singleuser-server")
    assert first == {"namespace": "jupyterhub", "pod": "jupyter-user-1", "uid": "", "status": "Running", "node": "n1",
                     "instance_type": "g5.2xlarge", "nodepool": "gpu-ts", "cpu_request": 2.0, "memory_request_gib": 4.5,
                     "gpu_request": 1, "extended": "aws.amazon.com/neuron=2", "ip": "10.0.2.20"}
    assert (second["status"], second["node"], second["instance_type"], second["gpu_request"]) == ("Pending", "", "", 0)


def test_nodepool_and_ec2nodeclass_rows():
    pool = {"metadata": {"name": "gpu-ts"}, "spec": {
        "template": {"metadata": {"labels": {"accelerator": "nvidia", "a": "1"}}, "spec": {
            "nodeClassRef": {"name": "accelerated"},
            "requirements": [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5", "g6"]},
                             {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
            "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]}},
        "limits": {"nvidia.com/gpu": 8, "cpu": 100},
        "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30s"}},
        "status": {"nodes": 1, "conditions": [{"type": "Ready", "status": "True"}]}}
    nodeclass = {"metadata": {"name": "accelerated"}, "spec": {"role": "hub-karpenter-node",
                                                              "amiSelectorTerms": [{"alias": "al2023@latest"}, {"id": "ami-1"}]},
                 "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    api = FakeApi({"/apis/karpenter.sh/v1/nodepools": {"items": [pool]},
                   "/apis/karpenter.k8s.aws/v1/ec2nodeclasses": {"items": [nodeclass]}})
    assert kube.nodepools(api) == [{
        "nodepool": "gpu-ts", "nodeclass": "accelerated", "instance_family": "In g5,g6", "instance_size": "",
        "instance_type": "", "capacity_type": "In on-demand", "labels": "a=1, accelerator=nvidia",
        "taints": "nvidia.com/gpu:NoSchedule", "limits": "cpu=100, nvidia.com/gpu=8",
        "consolidation": "WhenEmpty after 30s", "nodes": 1, "ready": True}]
    assert kube.ec2nodeclasses(api) == [{"ec2nodeclass": "accelerated", "role": "hub-karpenter-node",
                                         "ami": "al2023@latest, ami-1", "ready": False}]
    assert api.calls[0]["accept"] == "application/json"  # custom resources: plain JSON, no Table


def test_wait_for_returns_the_first_truthy_result_and_reports_progress():
    answers = iter([None, [], KubeError("not yet"), ["pod-1"]])
    reports = []

    def check():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert kube.wait_for(check, "the hub pod", timeout=5, interval=0, progress=lambda *r: reports.append(r)) == ["pod-1"]
    assert reports[0] == ("the hub pod", "running", "")
    assert reports[-1][:2] == ("the hub pod", "done")
    assert all(state == "running" for _, state, _ in reports[1:-1]) and len(reports) == 5


def test_wait_for_times_out_naming_what_it_waited_for_and_the_last_error():
    reports = []

    def check():
        raise KubeError("listing /api/v1/pods failed: 503")

    with pytest.raises(KubeError, match=r"timed out after 0s waiting for 2 ready nodes \(last error: listing"):
        kube.wait_for(check, "2 ready nodes", timeout=0.05, interval=0.01, progress=lambda *r: reports.append(r))
    assert reports[-1][1] == "failed" and reports[-1][2].startswith("timed out after")


def test_a_check_that_fails_otherwise_is_not_retried():
    calls = []

    def check():
        calls.append(1)
        raise ValueError("a bug, not a cluster that is still starting")

    with pytest.raises(ValueError):
        kube.wait_for(check, "anything", timeout=5, interval=0)
    assert len(calls) == 1


def test_wait_for_pods_and_nodes_count_only_ready_ones(monkeypatch):
    pod_answers = iter([[{"pod": "a", "is_ready": True}, {"pod": "b", "is_ready": False}],
                        [{"pod": "a", "is_ready": True}, {"pod": "b", "is_ready": True}]])
    seen = []
    monkeypatch.setattr(kube, "pods", lambda api, namespace, selector: seen.append((namespace, selector)) or next(pod_answers))
    monkeypatch.setattr(kube.time, "sleep", lambda seconds: None)
    rows = kube.wait_for_pods("api", "jupyterhub", "component=hub", count=2, timeout=5)
    assert [r["pod"] for r in rows] == ["a", "b"] and seen == [("jupyterhub", "component=hub")] * 2

    node_answers = iter([[{"node": "n1", "ready": False}], [{"node": "n1", "ready": True}, {"node": "n2", "ready": False}]])
    monkeypatch.setattr(kube, "nodes", lambda api, selector: next(node_answers))
    reports = []
    rows = kube.wait_for_nodes("api", "karpenter.sh/nodepool=cpu", timeout=5, progress=lambda *r: reports.append(r))
    assert rows == [{"node": "n1", "ready": True}]  # only the Ready ones come back
    assert reports[0][0] == "1 ready node(s) (karpenter.sh/nodepool=cpu)"


KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "hub",
    "clusters": [{"name": "hub", "cluster": {"server": "https://ABC.gr7.us-west-2.eks.amazonaws.com"}},
                 {"name": "other", "cluster": {"server": "https://other.example.com"}}],
    "users": [{"name": "hub", "user": {"token": "k8s-aws-v1.abc"}}],
    "contexts": [{"name": "hub", "context": {"cluster": "hub", "user": "hub"}},
                 {"name": "other", "context": {"cluster": "other", "user": "hub"}}],
}


def test_load_client_from_a_kubeconfig_dict_or_file(tmp_path):
    import yaml

    api = kube.load_client(KUBECONFIG)
    assert api.configuration.host == "https://ABC.gr7.us-west-2.eks.amazonaws.com"
    assert api.configuration.auth_settings()["BearerToken"]["value"] == "Bearer k8s-aws-v1.abc"
    assert kube.load_client(KUBECONFIG, context="other").configuration.host == "https://other.example.com"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(KUBECONFIG))
    assert kube.load_client(path).configuration.host == "https://ABC.gr7.us-west-2.eks.amazonaws.com"


def test_the_deployments_client_is_built_from_its_eks_cluster(monkeypatch):
    from eks_hub_runbook.aws import eks
    from eks_hub_runbook.params import resolve

    asked = []
    monkeypatch.setattr(eks, "build_kubeconfig", lambda *args: asked.append(args) or KUBECONFIG)
    api = kube.client_for(resolve(target="aws", deployment="team-hub", region="eu-west-1"))
    assert asked == [("team-hub", "aws", "eu-west-1")]
    assert api.configuration.host == "https://ABC.gr7.us-west-2.eks.amazonaws.com"


# --------------------------------------------------------------------------- against the sandbox cluster

NS = "kube-rows-test"
POOL = "kube-rows"
NODE = "ip-10-9-0-7.us-west-2.compute.internal"
NODE_LABEL = "kube-rows-test/node"
STATIC_PV = "kube-rows-static"


def _columns(text: str) -> list[dict[str, str]]:
    """``kubectl get`` output as dicts by header (cells may hold single spaces: ``2 (5s ago)``)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    starts = [(m.start(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", lines[0])]
    rows = []
    for line in lines[1:]:
        bounds = [s for s, _ in starts] + [None]
        rows.append({name: line[bounds[i]:bounds[i + 1]].strip() for i, (_, name) in enumerate(starts)})
    return rows


def _like_kubectl(kubectl, args, read, key, pairs, tries=5):
    """Compare rows from ``read()`` with ``kubectl get`` run just before and just after it.

    ``pairs``: (row field, kubectl column, how a kubectl cell reads as the row's value). A value
    may match either kubectl snapshot (an age can tick, a crash-looping pod can change state);
    the comparison is repeated a few times before it counts as a mismatch.
    """
    for _ in range(tries):
        before = {key[1](r): r for r in _columns(kubectl(*args).stdout)}
        rows = read()
        after = {key[1](r): r for r in _columns(kubectl(*args).stdout)}
        problems = []
        if {key[0](r) for r in rows} != set(before) or set(before) != set(after):
            problems.append(f"items differ: rows {sorted(key[0](r) for r in rows)}, kubectl {sorted(before)}")
        else:
            for row in rows:
                name = key[0](row)
                for field, column, convert in pairs:
                    allowed = {convert(before[name][column]), convert(after[name][column])}
                    if row[field] not in allowed:
                        problems.append(f"{name}: {field}={row[field]!r}, kubectl {column} {sorted(map(str, allowed))}")
        if not problems:
            return rows
    raise AssertionError("rows differ from kubectl " + " ".join(args) + ":\n" + "\n".join(problems))


def _same(cell: str) -> str:
    return cell


def _none_as_empty(cell: str) -> str:
    return "" if cell == "<none>" else cell


def _pod_spec(name: str, command: list[str], restart: str = "Always", node: str = "yes", **container) -> dict:
    return {"metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeSelector": {NODE_LABEL: node}, "restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                     "tolerations": [{"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
                     "containers": [{"name": "main", "image": "python:3.11", "command": command, **container}]}}


@pytest.fixture(scope="module")
def rows_cluster(kube_api, kubectl):
    """A node of its own (tainted: no other test's pods land on it) with pods in the states
    ``kubectl get pods`` shows most (Running ready and not ready, Completed, Error,
    CrashLoopBackOff, Init:0/1, Pending), a bound and a pending claim."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    resources = {"cpu": "2", "memory": "8Gi", "pods": "29"}
    core.create_node({"metadata": {"name": NODE, "labels": {
        NODE_LABEL: "yes", "kubernetes.io/hostname": NODE, "node.kubernetes.io/instance-type": "m5.large",
        "topology.kubernetes.io/zone": "us-west-2a", "karpenter.sh/capacity-type": "on-demand",
        "karpenter.sh/nodepool": POOL}},
        "spec": {"taints": [{"key": NODE_LABEL, "value": "only", "effect": "NoSchedule"}]},
        "status": {"capacity": resources, "allocatable": {**resources, "cpu": "1930m"},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                   "addresses": [{"type": "InternalIP", "address": "10.9.0.7"}]}})
    kubectl("create", "namespace", NS)
    pods = [
        _pod_spec("web", ["sleep", "600"], resources={"requests": {"cpu": "250m", "memory": "256Mi"}}),
        _pod_spec("done", ["sh", "-c", "exit 0"], "Never"),
        _pod_spec("failed", ["sh", "-c", "exit 3"], "Never"),
        _pod_spec("crasher", ["sh", "-c", "exit 1"]),
        _pod_spec("unready", ["sleep", "600"], ports=[{"containerPort": 9999}]),  # nothing listens: never ready
        _pod_spec("stuck", ["sleep", "600"], node="no-such-node"),  # nothing provides it: Pending
        _pod_spec("init", ["sleep", "600"]),
    ]
    pods[-1]["spec"]["initContainers"] = [{"name": "wait", "image": "python:3.11", "command": ["sleep", "600"]}]
    for pod in pods:
        core.create_namespaced_pod(NS, pod)
    core.create_persistent_volume({"metadata": {"name": STATIC_PV}, "spec": {
        "capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": STATIC_PV,
        "hostPath": {"path": "/tmp/kube-rows-static"}, "claimRef": {"namespace": NS, "name": "static"}}})
    for name, storage_class in (("static", STATIC_PV), ("waiting", "no-such-class")):
        core.create_namespaced_persistent_volume_claim(NS, {"metadata": {"name": name}, "spec": {
            "accessModes": ["ReadWriteMany"], "storageClassName": storage_class,
            "resources": {"requests": {"storage": "1Gi"}}}})

    def settled():
        rows = {r["pod"]: r for r in kube.pods(kube_api, NS)}
        claims = {r["pvc"]: r["status"] for r in kube.pvcs(kube_api, NS)}
        return (rows.get("web", {}).get("is_ready") and rows["done"]["status"] == "Completed"
                and rows["failed"]["status"] == "Error" and rows["crasher"]["restarts"] >= 1
                and rows["init"]["status"] == "Init:0/1" and claims.get("static") == "Bound")

    try:
        kube.wait_for(settled, "the test pods in their states", timeout=60, interval=0.5)
        yield core
    finally:
        kubectl("delete", "namespace", NS, "--wait=false", check=False)
        kubectl("delete", "pv", STATIC_PV, "--wait=false", check=False)
        kubectl("delete", "node", NODE, "--wait=false", check=False)


@pytest.mark.sandbox
@pytest.mark.slow
def test_pod_rows_read_as_kubectl_get_pods_all_namespaces(kube_api, kubectl, rows_cluster):
    def ours():
        return [r for r in kube.pods(kube_api) if r["namespace"] == NS]  # all namespaces, as -A

    key = (lambda r: r["pod"], lambda c: c["NAME"])
    only_ours = lambda text: "\n".join(l for l in text.splitlines() if l.startswith(("NAMESPACE ", f"{NS} ")))

    def get_all(*args):
        result = kubectl(*args)
        return SimpleNamespace(stdout=only_ours(result.stdout))

    rows = _like_kubectl(get_all, ("get", "pods", "-A"), ours, key, [
        ("namespace", "NAMESPACE", _same), ("ready", "READY", _same), ("status", "STATUS", _same),
        ("restarts", "RESTARTS", lambda cell: int(cell.split()[0])), ("age", "AGE", _same)])
    status = {r["pod"]: r["status"] for r in rows}
    assert {k: status[k] for k in ("web", "unready", "done", "failed", "init", "stuck")} == {
        "web": "Running", "unready": "Running", "done": "Completed", "failed": "Error", "init": "Init:0/1",
        "stuck": "Pending"}
    assert status["crasher"] in ("CrashLoopBackOff", "Error", "Running")
    assert {r["pod"] for r in rows if r["is_ready"]} == {"web"}
    assert all(re.fullmatch(r"\d+s|\d+m(\d+s)?", r["age"]) for r in rows)

    _like_kubectl(kubectl, ("get", "pods", "-n", NS, "-o", "wide"), lambda: kube.pods(kube_api, NS), key, [
        ("node", "NODE", _none_as_empty), ("ip", "IP", _none_as_empty), ("ready", "READY", _same)])


@pytest.mark.sandbox
@pytest.mark.slow
def test_node_rows_read_as_kubectl_get_nodes(kube_api, kubectl, rows_cluster):
    selector = f"karpenter.sh/nodepool={POOL}"
    rows = _like_kubectl(
        kubectl, ("get", "nodes", "-l", selector, "-L", "node.kubernetes.io/instance-type,karpenter.sh/nodepool"),
        lambda: kube.nodes(kube_api, selector), (lambda r: r["node"], lambda c: c["NAME"]), [
            ("ready", "STATUS", lambda cell: cell == "Ready"), ("age", "AGE", _same),
            ("instance_type", "INSTANCE-TYPE", _same), ("pool", "NODEPOOL", _same)])
    assert len(rows) == 1 and rows[0]["ready"] and rows[0]["instance_type"].startswith("m5.")
    assert rows[0]["capacity_type"] == "on-demand" and rows[0]["zone"].startswith("us-west-2")
    assert 0 < rows[0]["cpu"] and rows[0]["pods"] > 0 and rows[0]["gpu_capacity"] == 0


@pytest.mark.sandbox
@pytest.mark.slow
def test_pvc_rows_read_as_kubectl_get_pvc(kube_api, kubectl, rows_cluster):
    rows = _like_kubectl(kubectl, ("get", "pvc", "-n", NS), lambda: kube.pvcs(kube_api, NS),
                         (lambda r: r["pvc"], lambda c: c["NAME"]), [
                             ("status", "STATUS", _same), ("volume", "VOLUME", _same), ("capacity", "CAPACITY", _same),
                             ("storage_class", "STORAGECLASS", _same), ("age", "AGE", _same)])
    by_name = {r["pvc"]: r for r in rows}
    assert (by_name["static"]["status"], by_name["static"]["volume"], by_name["static"]["capacity"]) == \
        ("Bound", STATIC_PV, "2Gi")
    assert (by_name["waiting"]["status"], by_name["waiting"]["volume"]) == ("Pending", "")
    assert by_name["static"]["access_modes"] == "ReadWriteMany"
    assert {r["pvc"] for r in kube.pvcs(kube_api) if r["namespace"] == NS} == {"static", "waiting"}


@pytest.mark.sandbox
@pytest.mark.slow
def test_event_rows_read_as_kubectl_get_events_oldest_first(kube_api, kubectl, rows_cluster):
    now = datetime.now(timezone.utc)

    def stamp(delta: timedelta) -> str:
        return (now - delta).strftime("%Y-%m-%dT%H:%M:%SZ")

    for name, reason, ago in (("old", "Scheduled", timedelta(days=3)), ("older", "Nominated", timedelta(days=5)),
                              ("recent", "Pulled", timedelta(hours=2))):
        rows_cluster.create_namespaced_event(NS, {
            "metadata": {"name": f"marker.{name}"}, "type": "Normal", "reason": reason,
            "message": f"{reason} for the kube rows test",
            "involvedObject": {"kind": "ConfigMap", "name": "kube-rows-marker", "namespace": NS},
            "firstTimestamp": stamp(ago), "lastTimestamp": stamp(ago), "count": 3,
            "source": {"component": "kube-rows-test"}})
    rows = _like_kubectl(
        kubectl, ("get", "events", "-n", NS, "--field-selector", "involvedObject.name=kube-rows-marker"),
        lambda: kube.events(kube_api, NS, "kube-rows-marker"), (lambda r: r["reason"], lambda c: c["REASON"]), [
            ("last_seen", "LAST SEEN", _same), ("type", "TYPE", _same), ("object", "OBJECT", _same),
            ("message", "MESSAGE", _same)])
    assert [(r["reason"], r["last_seen"]) for r in rows] == [("Nominated", "5d"), ("Scheduled", "3d"), ("Pulled", "120m")]
    assert rows[0]["object"] == "configmap/kube-rows-marker" and rows[0]["count"] == 3
    scheduling = kube.events(kube_api, NS, "stuck")
    assert scheduling and {r["object"] for r in scheduling} == {"pod/stuck"}
    assert "FailedScheduling" in {r["reason"] for r in scheduling}
    rows_cluster.create_namespaced_event(NS, {
        "metadata": {"name": "marker.earlier-incarnation"}, "type": "Normal", "reason": "Killing",
        "message": "an earlier pod of the same name", "source": {"component": "kube-rows-test"},
        "involvedObject": {"kind": "Pod", "name": "stuck", "namespace": NS, "uid": "an-earlier-pod"}})
    assert "Killing" in {r["reason"] for r in kube.events(kube_api, NS, "stuck")}
    stuck_uid = rows_cluster.read_namespaced_pod("stuck", NS).metadata.uid
    current = kube.events(kube_api, NS, "stuck", involved_uid=stuck_uid)
    assert "FailedScheduling" in {r["reason"] for r in current} and "Killing" not in {r["reason"] for r in current}


@pytest.mark.sandbox
@pytest.mark.slow
def test_placement_and_waits_on_the_sandbox(kube_api, kubectl, rows_cluster):
    placed = {r["pod"]: r for r in kube.placement(kube_api, NS)}
    web = placed["web"]
    assert (web["node"], web["nodepool"], web["instance_type"], web["status"]) == (NODE, POOL, "m5.large", "Running")
    assert (web["cpu_request"], web["memory_request_gib"], web["gpu_request"]) == (0.25, 0.25, 0)
    assert web["ip"] and web["ip"] in kubectl("get", "pods", "web", "-n", NS, "-o", "wide").stdout
    assert (placed["stuck"]["node"], placed["stuck"]["nodepool"], placed["stuck"]["status"]) == ("", "", "Pending")

    assert [r["pod"] for r in kube.wait_for_pods(kube_api, NS, "app=web", timeout=10) if r["is_ready"]] == ["web"]
    assert [r["node"] for r in kube.wait_for_nodes(kube_api, f"{NODE_LABEL}=yes", timeout=10)] == [NODE]
    with pytest.raises(KubeError, match="timed out after 1s waiting for 1 ready pod"):
        kube.wait_for_pods(kube_api, NS, "app=unready", timeout=1)


@pytest.mark.sandbox
def test_nodepool_and_ec2nodeclass_rows_from_the_real_karpenter_crds(kube_api, karpenter_pool):
    """The CRDs default what the manifests leave out; the rows read the stored objects (no nodes needed)."""
    name = karpenter_pool("kube-rows-crd", [
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5", "g6"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
        taints=[{"key": "nvidia.com/gpu", "value": "Exists", "effect": "NoSchedule"}], consolidate_after="45s")
    pool = {r["nodepool"]: r for r in kube.nodepools(kube_api)}[name]
    assert {k: pool[k] for k in ("nodeclass", "instance_family", "capacity_type", "taints", "labels", "consolidation")} == {
        "nodeclass": name, "instance_family": "In g5,g6", "capacity_type": "In on-demand",
        "taints": "nvidia.com/gpu:NoSchedule", "labels": f"sandbox-test/pool={name}", "consolidation": "WhenEmpty after 45s"}
    assert pool["nodes"] == 0
    nodeclass = {r["ec2nodeclass"]: r for r in kube.ec2nodeclasses(kube_api)}[name]
    assert (nodeclass["role"], nodeclass["ami"]) == ("karpenter-node", "al2023@latest")


@pytest.mark.sandbox
@pytest.mark.slow
def test_a_terminating_claim_reads_as_kubectl_prints_it(kube_api, kubectl, rows_cluster):
    core = rows_cluster
    core.create_namespaced_persistent_volume_claim(NS, {"metadata": {"name": "going", "finalizers": ["kube-rows-test/hold"]},
                                                        "spec": {"accessModes": ["ReadWriteOnce"],
                                                                 "storageClassName": "no-such-class",
                                                                 "resources": {"requests": {"storage": "1Gi"}}}})
    try:
        core.delete_namespaced_persistent_volume_claim("going", NS)
        line = _columns(kubectl("get", "pvc", "going", "-n", NS).stdout)[0]
        assert line["STATUS"] == "Terminating"
        assert {r["pvc"]: r["status"] for r in kube.pvcs(kube_api, NS)}["going"] == "Terminating"
    finally:
        core.patch_namespaced_persistent_volume_claim("going", NS, {"metadata": {"finalizers": None}})

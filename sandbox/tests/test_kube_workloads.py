"""Workload controllers: Deployments -> ReplicaSets -> pods and DaemonSets -> a pod per
eligible node, as ``kubectl`` and the Python client observe them (rollout status, get
columns, scale, rollout restart, cascading deletes), plus the pure builders they use."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from eks_hub_runbook.kube import wait_for
from eks_hub_sandbox.kube.controllers.workloads import placement, rollout
from eks_hub_sandbox.kube.controllers.workloads.daemonsets import daemon_set_status
from eks_hub_sandbox.kube.controllers.workloads.deployments import find_new_replica_set, new_replica_set
from eks_hub_sandbox.kube.controllers.workloads.pods import (
    deletion_order, pod_from_template, template_hash, without_hash_label)
from eks_hub_sandbox.kube.controllers.workloads.replicasets import replica_set_status

CLUSTER = [pytest.mark.sandbox, pytest.mark.slow]

NS = "workloads-test"
LABEL = "workloads-test/node"
NODE_A, NODE_B, NODE_C = "workloads-node-a", "workloads-node-b", "workloads-node-c"
OTHER_TAINT = {"key": "workloads-test/other", "value": "x", "effect": "NoSchedule"}


def _wait(check, what, timeout=60.0):
    return wait_for(check, what, timeout=timeout, interval=0.3)


def _template(app: str, env: str = "1") -> dict:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"nodeSelector": {LABEL: "yes"}, "terminationGracePeriodSeconds": 1,
                     "tolerations": [{"key": LABEL, "operator": "Exists", "effect": "NoSchedule"}],
                     "containers": [{"name": "main", "image": "python:3.11", "command": ["sleep", "600"],
                                     "env": [{"name": "VERSION", "value": env}]}]}}


# -- pure builders (no cluster) ---------------------------------------------------------------------

def test_template_hash_is_short_stable_and_follows_the_template():
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": "python:3.11", "command": ["sleep", "600"]}]}}
    reordered = {"spec": {"containers": [{"command": ["sleep", "600"], "image": "python:3.11", "name": "main"}]},
                 "metadata": {"labels": {"app": "web"}}}
    value = template_hash(template)
    assert value == "69476f8bc5"  # the same in every process and release: names of ReplicaSets depend on it
    assert template_hash(reordered) == value
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{1,10}", value)
    changed = json.loads(json.dumps(template))
    changed["spec"]["containers"][0]["image"] = "python:3.12"
    assert template_hash(changed) != value
    assert template_hash(template, 1) != value and template_hash(template, 1) == template_hash(template, 1)


def test_pod_from_template_names_labels_and_owns_the_pod():
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
             "metadata": {"name": "web-abc", "namespace": "team", "uid": "u-1"}}
    template = _template("web")
    template["metadata"]["annotations"] = {"note": "kept"}
    pod = pod_from_template(template, owner, {"pod-template-hash": "abc"})
    assert pod["metadata"]["generateName"] == "web-abc-" and "name" not in pod["metadata"]
    assert pod["metadata"]["namespace"] == "team"
    assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": "abc"}
    assert pod["metadata"]["annotations"] == {"note": "kept"}
    assert pod["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                                                   "uid": "u-1", "controller": True, "blockOwnerDeletion": True}]
    pod["spec"]["containers"][0]["image"] = "changed"
    assert template["spec"]["containers"][0]["image"] == "python:3.11"  # a copy, not the template itself


def test_new_replica_set_carries_hash_selector_owner_and_annotations():
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": "team", "uid": "d-1", "generation": 1,
                               "annotations": {"team": "a", rollout.REVISION: "7",
                                               "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                  "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}}, "template": _template("web"),
                           "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%",
                                                                                 "maxUnavailable": "25%"}}}}
    rs = new_replica_set(deployment, replicas=1, revision=3)
    pod_hash = template_hash(deployment["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == pod_hash
    assert rs["metadata"]["annotations"] == {"team": "a", rollout.REVISION: "3", rollout.DESIRED_REPLICAS: "4",
                                             rollout.MAX_REPLICAS: "5"}
    assert rs["metadata"]["ownerReferences"][0]["controller"] is True
    assert find_new_replica_set(deployment, [rs]) is rs  # the hash label is ignored when comparing templates
    undone = json.loads(json.dumps(deployment))  # `kubectl rollout undo` sends creationTimestamp: null
    undone["spec"]["template"]["metadata"]["creationTimestamp"] = None
    assert find_new_replica_set(undone, [rs]) is rs and template_hash(undone["spec"]["template"]) == pod_hash
    assert without_hash_label(rs["spec"]["template"]) == deployment["spec"]["template"]
    rolled = json.loads(json.dumps(deployment))
    rolled["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "2"
    assert find_new_replica_set(rolled, [rs]) is None


def test_rolling_update_arithmetic():
    def deployment(replicas, surge="25%", unavailable="25%", kind="RollingUpdate"):
        return {"metadata": {"generation": 1}, "spec": {"replicas": replicas, "strategy": {
            "type": kind, "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}}

    assert rollout.surge_and_unavailable(deployment(4)) == (1, 1)
    assert rollout.surge_and_unavailable(deployment(2)) == (1, 0)  # surge rounds up, unavailable down
    assert rollout.surge_and_unavailable(deployment(3, 0, 0)) == (0, 1)
    assert rollout.surge_and_unavailable(deployment(3, kind="Recreate")) == (0, 0)
    assert rollout.new_replicas(deployment(2), new_current=0, total_current=2) == 1
    assert rollout.new_replicas(deployment(2), new_current=1, total_current=3) == 1  # at maxSurge
    assert rollout.new_replicas(deployment(2), new_current=3, total_current=3) == 2  # scaled down
    # the new pod is not available yet: nothing old may go (2 of 2 must stay available)
    assert rollout.scale_down_targets(deployment(2), 1, 0, [("old", 2, 2)]) == {}
    assert rollout.scale_down_targets(deployment(2), 1, 1, [("old", 2, 2)]) == {"old": 1}
    # unavailable old pods go first, within what keeps replicas - maxUnavailable available
    assert rollout.scale_down_targets(deployment(4), 1, 0, [("old", 4, 2)]) == {"old": 3}
    assert rollout.scale_down_targets(deployment(4), 1, 0, [("old", 4, 4)]) == {"old": 3}
    assert rollout.scale_down_targets(deployment(2), 2, 2, [("old", 1, 1)]) == {"old": 0}


def _pod(name, ready=True, node="n1", created="2026-01-01T00:00:00Z", ready_at="2026-01-01T00:00:05Z", labels=None):
    status = {"phase": "Running" if node else "Pending",
              "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ready_at}]}
    return {"metadata": {"name": name, "creationTimestamp": created, "labels": labels or {"app": "web"}},
            "spec": {"nodeName": node} if node else {}, "status": status}


def test_scale_down_deletes_unscheduled_then_unready_then_newest_first():
    pods = [_pod("old-ready"), _pod("new-ready", created="2026-01-01T00:10:00Z", ready_at="2026-01-01T00:10:05Z"),
            _pod("unready", ready=False), _pod("unscheduled", ready=False, node=None)]
    assert [p["metadata"]["name"] for p in deletion_order(pods)] == ["unscheduled", "unready", "new-ready", "old-ready"]


def test_replica_set_status_counts_active_ready_and_available_pods():
    rs = {"metadata": {"generation": 3}, "spec": {"replicas": 3, "minReadySeconds": 30,
                                                  "template": {"metadata": {"labels": {"app": "web"}}}}}
    at = datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc)
    just_ready = _pod("b", ready_at=(at - timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    terminating = _pod("c")
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:30Z"
    status, wait = replica_set_status(rs, [_pod("a"), just_ready, terminating, _pod("d", ready=False, labels={"other": "x"})], at)
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 1,
                      "observedGeneration": 3}
    assert wait == pytest.approx(20.0)


def _node(name, labels=None, taints=None):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints} if taints else {}}


def test_daemon_pods_run_on_nodes_that_match_and_whose_taints_they_tolerate():
    template = _template("agent")
    ours = {LABEL: "yes"}
    assert placement.should_run(template, _node("a", ours, [{"key": LABEL, "value": "only", "effect": "NoSchedule"}])) \
        == (True, True)
    assert placement.should_run(template, _node("b")) == (False, False)  # nodeSelector
    assert placement.should_run(template, _node("c", ours, [OTHER_TAINT])) == (False, True)  # keeps a running pod
    assert placement.should_run(template, _node("d", ours, [{**OTHER_TAINT, "effect": "NoExecute"}])) == (False, False)
    for key, effect in (("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unschedulable", "NoSchedule"),
                        ("node.kubernetes.io/memory-pressure", "NoSchedule")):
        assert placement.should_run(template, _node("e", ours, [{"key": key, "effect": effect}])) == (True, True)
    affinity = json.loads(json.dumps(template))
    del affinity["spec"]["nodeSelector"]
    affinity["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": LABEL, "operator": "In", "values": ["yes"]}]}]}}}
    assert placement.should_run(affinity, _node("f", ours))[0] and not placement.should_run(affinity, _node("g"))[0]


def test_daemon_pod_spec_is_pinned_to_its_node_with_the_daemon_tolerations():
    template = _template("agent")
    template["spec"]["tolerations"].append({"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                            "effect": "NoExecute", "tolerationSeconds": 300})
    spec = placement.daemon_pod_spec(template["spec"], "node-1")
    assert spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}]}
    keys = [(t.get("key"), t.get("effect")) for t in spec["tolerations"]]
    assert len(keys) == len(set(keys)) == 7  # the template's own plus six, none twice
    not_ready = next(t for t in spec["tolerations"] if t["key"] == "node.kubernetes.io/not-ready")
    assert "tolerationSeconds" not in not_ready
    assert placement.target_node({"spec": spec}) == "node-1"
    assert placement.target_node({"spec": {**spec, "nodeName": "node-2"}}) == "node-2"
    assert "affinity" not in template["spec"]


def test_daemon_set_status_counts_desired_current_ready_updated_and_misscheduled():
    template = _template("agent")
    ds = {"metadata": {"generation": 2}, "spec": {"template": template}}
    pod_hash = template_hash(template)
    ours = {LABEL: "yes"}
    nodes = [_node("a", ours), _node("b", ours), _node("c", ours), _node("d")]
    on = lambda node, hash_, ready=True: {**_pod(f"p-{node}", ready=ready, node=node,
                                                 labels={"controller-revision-hash": hash_})}
    status, _ = daemon_set_status(ds, nodes, [on("a", pod_hash), on("b", "old"), on("d", pod_hash)], pod_hash)
    assert status == {"desiredNumberScheduled": 3, "currentNumberScheduled": 2, "numberReady": 2,
                      "numberMisscheduled": 1, "updatedNumberScheduled": 1, "numberAvailable": 2,
                      "numberUnavailable": 1, "observedGeneration": 2}


def test_deployment_status_reports_completion_and_availability():
    deployment = {"metadata": {"generation": 2}, "spec": {"replicas": 2, "progressDeadlineSeconds": 600,
                                                          "strategy": {"type": "RollingUpdate"}}}
    rs = {"metadata": {"name": "web-abc"}, "spec": {"replicas": 2},
          "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}}
    status, wait = rollout.deployment_status(deployment, rs, [rs], "2026-01-01T00:00:00Z")
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {"Available": ("True", "MinimumReplicasAvailable"),
                          "Progressing": ("True", "NewReplicaSetAvailable")}
    assert wait is None and rollout.is_complete(deployment, status)
    halfway = {**rs, "status": {"replicas": 1, "readyReplicas": 0}}
    old = {"metadata": {"name": "web-old"}, "spec": {"replicas": 2}, "status": {"replicas": 2, "availableReplicas": 2}}
    status, wait = rollout.deployment_status({**deployment, "status": status}, halfway, [halfway, old],
                                             "2026-01-01T00:00:10Z")
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions["Progressing"] == ("True", "ReplicaSetUpdated") and status["unavailableReplicas"] == 2
    assert not rollout.is_complete(deployment, status) and wait == 600


# -- on the sandbox cluster --------------------------------------------------------------------------

def _node_body(name: str, taints: list[dict]) -> dict:
    resources = {"cpu": "4", "memory": "8Gi", "pods": "20"}
    return {"metadata": {"name": name, "labels": {LABEL: "yes", "kubernetes.io/hostname": name}},
            "spec": {"taints": taints},
            "status": {"capacity": resources, "allocatable": resources,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                       "addresses": [{"type": "InternalIP", "address": "10.9.1.7"}]}}


OWN_TAINT = {"key": LABEL, "value": "only", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def cluster(kube_api, kubectl):
    """A namespace and a node of their own (tainted: no other test's pods land on it)."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    core.create_node(_node_body(NODE_A, [OWN_TAINT]))
    kubectl("create", "namespace", NS)
    try:
        yield {"core": core, "apps": client.AppsV1Api(kube_api)}
    finally:
        kubectl("delete", "namespace", NS, "--wait=false", check=False)
        for node in (NODE_A, NODE_B, NODE_C):
            kubectl("delete", "node", node, "--wait=false", "--ignore-not-found", check=False)


def _apply(kubectl, obj: dict) -> None:
    kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(obj))


def _deployment(name: str, replicas: int, **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": _template(name),
                     **spec}}


def _active_pods(cluster, app: str) -> list:
    pods = cluster["core"].list_namespaced_pod(NS, label_selector=f"app={app}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def _replica_sets(cluster, app: str) -> list:
    return cluster["apps"].list_namespaced_replica_set(NS, label_selector=f"app={app}").items


def _get_columns(kubectl, *args) -> dict[str, str]:
    header, row = kubectl("get", *args, "-n", NS).stdout.strip().splitlines()[:2]
    return dict(zip(header.split(), row.split()))


@pytest.mark.sandbox
@pytest.mark.slow
def test_deployment_rolls_out_replica_set_and_pods(kubectl, cluster):
    _apply(kubectl, _deployment("web", 2))
    result = kubectl("rollout", "status", "deployment/web", "-n", NS, "--timeout=60s")
    assert 'deployment "web" successfully rolled out' in result.stdout
    columns = _get_columns(kubectl, "deployment", "web")
    assert (columns["READY"], columns["UP-TO-DATE"], columns["AVAILABLE"]) == ("2/2", "2", "2")

    deployment = cluster["apps"].read_namespaced_deployment("web", NS)
    (rs,) = _replica_sets(cluster, "web")
    pod_hash = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{pod_hash}" and re.fullmatch(r"[a-z0-9]{1,10}", pod_hash)
    assert rs.spec.selector.match_labels == {"app": "web", "pod-template-hash": pod_hash}
    owner = rs.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller, owner.block_owner_deletion) == \
        ("Deployment", "web", deployment.metadata.uid, True, True)
    assert {k: rs.metadata.annotations[k] for k in (rollout.REVISION, rollout.DESIRED_REPLICAS, rollout.MAX_REPLICAS)} \
        == {rollout.REVISION: "1", rollout.DESIRED_REPLICAS: "2", rollout.MAX_REPLICAS: "3"}
    assert (rs.status.replicas, rs.status.ready_replicas, rs.status.available_replicas) == (2, 2, 2)

    status = deployment.status
    assert status.observed_generation == deployment.metadata.generation
    assert (status.replicas, status.updated_replicas, status.ready_replicas, status.available_replicas) == (2, 2, 2, 2)
    conditions = {c.type: (c.status, c.reason) for c in status.conditions}
    assert conditions == {"Available": ("True", "MinimumReplicasAvailable"),
                          "Progressing": ("True", "NewReplicaSetAvailable")}

    pods = _active_pods(cluster, "web")
    assert len(pods) == 2
    for pod in pods:
        assert re.fullmatch(rf"{rs.metadata.name}-[a-z0-9]{{5}}", pod.metadata.name)
        assert pod.metadata.labels == {"app": "web", "pod-template-hash": pod_hash}
        ref = pod.metadata.owner_references[0]
        assert (ref.kind, ref.name, ref.uid, ref.controller) == ("ReplicaSet", rs.metadata.name, rs.metadata.uid, True)
        assert pod.spec.node_name == NODE_A and pod.status.phase == "Running"
    rs_columns = _get_columns(kubectl, "rs", rs.metadata.name)
    assert (rs_columns["DESIRED"], rs_columns["CURRENT"], rs_columns["READY"]) == ("2", "2", "2")
    kubectl("delete", "deployment", "web", "-n", NS)


@pytest.mark.sandbox
@pytest.mark.slow
def test_scaling_and_replacing_deleted_pods(kubectl, cluster):
    _apply(kubectl, _deployment("scaled", 1))
    kubectl("rollout", "status", "deployment/scaled", "-n", NS, "--timeout=60s")
    kubectl("scale", "deployment/scaled", "-n", NS, "--replicas=3")
    kubectl("rollout", "status", "deployment/scaled", "-n", NS, "--timeout=60s")
    _wait(lambda: len([p for p in _active_pods(cluster, "scaled") if p.status.phase == "Running"]) == 3,
          "3 running pods after scaling up")
    assert _get_columns(kubectl, "deployment", "scaled")["READY"] == "3/3"
    (rs,) = _replica_sets(cluster, "scaled")
    assert rs.spec.replicas == 3 and rs.metadata.annotations[rollout.DESIRED_REPLICAS] == "3"

    victim = _active_pods(cluster, "scaled")[0].metadata.name
    kubectl("delete", "pod", victim, "-n", NS, "--wait=false")

    def replaced():
        names = {p.metadata.name for p in _active_pods(cluster, "scaled")}
        return len(names) == 3 and victim not in names
    _wait(replaced, "a replacement for the deleted pod")
    kubectl("rollout", "status", "deployment/scaled", "-n", NS, "--timeout=60s")

    kubectl("scale", "deployment/scaled", "-n", NS, "--replicas=1")

    def scaled_down():
        deployment = cluster["apps"].read_namespaced_deployment("scaled", NS)
        return len(_active_pods(cluster, "scaled")) == 1 and deployment.status.replicas == 1 and \
            deployment.status.available_replicas == 1
    _wait(scaled_down, "one pod after scaling down")
    assert _get_columns(kubectl, "deployment", "scaled")["READY"] == "1/1"
    kubectl("delete", "deployment", "scaled", "-n", NS)


@pytest.mark.sandbox
@pytest.mark.slow
def test_template_change_rolls_to_a_new_replica_set(kubectl, cluster):
    _apply(kubectl, _deployment("rolled", 2))
    kubectl("rollout", "status", "deployment/rolled", "-n", NS, "--timeout=60s")
    (first,) = _replica_sets(cluster, "rolled")
    before = {p.metadata.name for p in _active_pods(cluster, "rolled")}

    changed = _deployment("rolled", 2)
    changed["spec"]["template"] = _template("rolled", env="2")
    _apply(kubectl, changed)
    result = kubectl("rollout", "status", "deployment/rolled", "-n", NS, "--timeout=60s")
    assert "successfully rolled out" in result.stdout

    def rolled():
        sets = {rs.metadata.name: rs for rs in _replica_sets(cluster, "rolled")}
        old = sets.get(first.metadata.name)
        pods = _active_pods(cluster, "rolled")
        return len(sets) == 2 and old is not None and old.spec.replicas == 0 and not old.status.replicas and \
            len(pods) == 2 and not before & {p.metadata.name for p in pods} and sets
    sets = _wait(rolled, "the old ReplicaSet scaled to 0 and two new pods")
    (new,) = [rs for name, rs in sets.items() if name != first.metadata.name]
    assert new.metadata.annotations[rollout.REVISION] == "2"
    assert new.metadata.labels["pod-template-hash"] != first.metadata.labels["pod-template-hash"]
    assert all(p.metadata.labels["pod-template-hash"] == new.metadata.labels["pod-template-hash"] and
               p.spec.containers[0].env[0].value == "2" for p in _active_pods(cluster, "rolled"))
    columns = _get_columns(kubectl, "deployment", "rolled")
    assert (columns["READY"], columns["UP-TO-DATE"], columns["AVAILABLE"]) == ("2/2", "2", "2")

    kubectl("rollout", "restart", "deployment/rolled", "-n", NS)
    kubectl("rollout", "status", "deployment/rolled", "-n", NS, "--timeout=60s")
    _wait(lambda: len(_replica_sets(cluster, "rolled")) == 3 and
          sum(rs.spec.replicas for rs in _replica_sets(cluster, "rolled")) == 2, "a third ReplicaSet after restart")
    history = kubectl("rollout", "history", "deployment/rolled", "-n", NS).stdout
    assert re.search(r"^3\s", history, re.M)
    kubectl("delete", "deployment", "rolled", "-n", NS)


@pytest.mark.sandbox
@pytest.mark.slow
def test_recreate_strategy_replaces_all_pods(kubectl, cluster):
    _apply(kubectl, _deployment("recreated", 2, strategy={"type": "Recreate"}))
    kubectl("rollout", "status", "deployment/recreated", "-n", NS, "--timeout=60s")
    before = {p.metadata.name for p in _active_pods(cluster, "recreated")}
    kubectl("set", "env", "deployment/recreated", "-n", NS, "VERSION=2")
    kubectl("rollout", "status", "deployment/recreated", "-n", NS, "--timeout=60s")
    _wait(lambda: {p.metadata.name for p in _active_pods(cluster, "recreated")}.isdisjoint(before) and
          len(_active_pods(cluster, "recreated")) == 2, "two new pods")
    kubectl("delete", "deployment", "recreated", "-n", NS)


def _daemon_set(name: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}}, "template": _template(name)}}


def _pods_by_node(cluster, app: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for pod in _active_pods(cluster, app):
        node = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution \
            .node_selector_terms[0].match_fields[0].values[0]
        result.setdefault(node, []).append(pod.metadata.name)
    return result


@pytest.mark.sandbox
@pytest.mark.slow
def test_daemon_set_follows_the_nodes(kubectl, cluster):
    _apply(kubectl, _daemon_set("agent"))
    result = kubectl("rollout", "status", "daemonset/agent", "-n", NS, "--timeout=60s")
    assert 'daemon set "agent" successfully rolled out' in result.stdout
    assert _pods_by_node(cluster, "agent").keys() == {NODE_A}
    (pod,) = _active_pods(cluster, "agent")
    assert pod.spec.node_name == NODE_A and pod.metadata.labels["controller-revision-hash"]
    assert pod.metadata.owner_references[0].kind == "DaemonSet"
    assert {"node.kubernetes.io/not-ready", "node.kubernetes.io/unschedulable"} <= {t.key for t in pod.spec.tolerations}
    columns = _get_columns(kubectl, "daemonset", "agent")
    assert [columns[c] for c in ("DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE")] == ["1"] * 5

    cluster["core"].create_node(_node_body(NODE_B, [OWN_TAINT]))
    cluster["core"].create_node(_node_body(NODE_C, [OWN_TAINT, OTHER_TAINT]))  # not tolerated
    kubectl("rollout", "status", "daemonset/agent", "-n", NS, "--timeout=60s")
    _wait(lambda: _pods_by_node(cluster, "agent").keys() == {NODE_A, NODE_B}, "a pod on the new node")
    ds = cluster["apps"].read_namespaced_daemon_set("agent", NS)
    assert (ds.status.desired_number_scheduled, ds.status.current_number_scheduled, ds.status.number_misscheduled) \
        == (2, 2, 0)
    _wait(lambda: cluster["apps"].read_namespaced_daemon_set("agent", NS).status.number_ready == 2, "2 ready")

    kubectl("delete", "node", NODE_B)
    _wait(lambda: _pods_by_node(cluster, "agent").keys() == {NODE_A} and
          cluster["apps"].read_namespaced_daemon_set("agent", NS).status.desired_number_scheduled == 1,
          "the removed node's pod gone")

    before = {p.metadata.name for p in _active_pods(cluster, "agent")}
    kubectl("set", "env", "daemonset/agent", "-n", NS, "VERSION=2")
    kubectl("rollout", "status", "daemonset/agent", "-n", NS, "--timeout=60s")
    _wait(lambda: len(_active_pods(cluster, "agent")) == 1 and
          not before & {p.metadata.name for p in _active_pods(cluster, "agent")}, "the pod replaced")
    assert _active_pods(cluster, "agent")[0].spec.containers[0].env[0].value == "2"
    assert _pods_by_node(cluster, "agent").keys() == {NODE_A}
    kubectl("delete", "node", NODE_C)
    kubectl("delete", "daemonset", "agent", "-n", NS)


@pytest.mark.sandbox
@pytest.mark.slow
@pytest.mark.parametrize("cascade", ["background", "foreground"])
def test_deleting_a_workload_removes_its_replica_sets_and_pods(kubectl, cluster, cascade):
    name = f"gone-{cascade}"
    _apply(kubectl, _deployment(name, 2))
    _apply(kubectl, _daemon_set(f"{name}-ds"))
    kubectl("rollout", "status", f"deployment/{name}", "-n", NS, "--timeout=60s")
    kubectl("rollout", "status", f"daemonset/{name}-ds", "-n", NS, "--timeout=60s")
    assert len(_active_pods(cluster, name)) == 2 and len(_replica_sets(cluster, name)) == 1

    kubectl("delete", f"deployment/{name}", f"daemonset/{name}-ds", "-n", NS, f"--cascade={cascade}")

    def gone():
        pods = cluster["core"].list_namespaced_pod(NS, label_selector=f"app in ({name},{name}-ds)").items
        return not pods and not _replica_sets(cluster, name)
    _wait(gone, "no ReplicaSet and no pod left")

"""The sandbox API server through real clients: kubectl 1.32 (the walkthrough's commands,
apply client- and server-side, selectors, output formats) and the kubernetes client
(status bodies, watch resume under churn, pagination)."""

from __future__ import annotations

import json
import threading
import time

import pytest
import yaml

pytestmark = pytest.mark.sandbox

NS = "api-test"


@pytest.fixture(scope="module")
def core(kube_api, kubectl):
    from kubernetes import client

    kubectl("create", "namespace", NS)
    yield client.CoreV1Api(kube_api)
    kubectl("delete", "namespace", NS, "--wait=false", check=False)


POD = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: api-test
  labels: {{app: demo, tier: {tier}}}
spec:
  schedulerName: none-so-it-stays-pending
  containers:
  - name: main
    image: python:3.11
    resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
"""


def test_discovery_and_version(kubectl):
    import json

    from eks_hub_sandbox.kube.validation import KUBERNETES_VERSION

    server = json.loads(kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert f"{server['major']}.{server['minor']}" == KUBERNETES_VERSION == "1.33"
    resources = kubectl("api-resources", "-o", "name").stdout.split()
    for name in ("pods", "nodes", "persistentvolumeclaims", "deployments.apps", "storageclasses.storage.k8s.io",
                 "customresourcedefinitions.apiextensions.k8s.io", "poddisruptionbudgets.policy"):
        assert name in resources


def test_apply_client_side_then_server_side(core, kubectl):
    manifest = POD.format(name="web", tier="front")
    assert "pod/web created" in kubectl("apply", "-f", "-", input=manifest).stdout
    assert "pod/web unchanged" in kubectl("apply", "-f", "-", input=manifest).stdout
    changed = manifest.replace("tier: front", "tier: back")
    assert "pod/web configured" in kubectl("apply", "-f", "-", input=changed).stdout
    assert core.read_namespaced_pod("web", NS).metadata.labels["tier"] == "back"
    out = kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=changed.replace("tier: back", "tier: mid"))
    assert "serverside-applied" in out.stdout
    pod = core.read_namespaced_pod("web", NS)
    assert pod.metadata.labels["tier"] == "mid"
    assert "kubectl" in [m.manager for m in pod.metadata.managed_fields]


def test_get_with_selectors_and_output_formats(core, kubectl):
    for name, tier in (("sel-a", "front"), ("sel-b", "back")):
        kubectl("apply", "-f", "-", input=POD.format(name=name, tier=tier))
    names = kubectl("get", "pods", "-n", NS, "-l", "tier=front,app in (demo)", "-o", "name").stdout.split()
    assert "pod/sel-a" in names and "pod/sel-b" not in names
    assert kubectl("get", "pods", "-n", NS, "-l", "tier!=front", "-o", "jsonpath={.items[*].metadata.name}").stdout \
        .split() == sorted(n for n in kubectl("get", "pods", "-n", NS, "-l", "tier!=front", "-o", "name").stdout
                           .replace("pod/", "").split())
    field = kubectl("get", "pods", "-n", NS, "--field-selector", "metadata.name=sel-b,status.phase=Pending",
                    "-o", "name").stdout.split()
    assert field == ["pod/sel-b"]
    document = json.loads(kubectl("get", "pod", "sel-a", "-n", NS, "-o", "json").stdout)
    assert document["metadata"]["uid"] and document["metadata"]["resourceVersion"].isdigit()
    assert yaml.safe_load(kubectl("get", "pod", "sel-a", "-n", NS, "-o", "yaml").stdout)["kind"] == "Pod"
    table = kubectl("get", "pods", "-n", NS, "-o", "wide").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
                                "READINESS", "GATES"]
    assert any(line.startswith("sel-a ") and "0/1" in line and "Pending" in line for line in table)
    all_namespaces = kubectl("get", "pods", "-A").stdout.splitlines()
    assert all_namespaces[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == [NS, "sel-a"] for line in all_namespaces)


def test_delete_and_not_found(core, kubectl):
    kubectl("apply", "-f", "-", input=POD.format(name="gone", tier="x"))
    assert 'pod "gone" deleted' in kubectl("delete", "pod", "gone", "-n", NS).stdout
    result = kubectl("get", "pod", "gone", "-n", NS, check=False)
    assert result.returncode != 0 and 'pods "gone" not found' in result.stderr


def test_status_bodies_for_conflict_not_found_and_invalid(core):
    from kubernetes.client import ApiException

    body = {"metadata": {"name": "dup"}, "data": {"a": "1"}}
    core.create_namespaced_config_map(NS, body)
    with pytest.raises(ApiException) as error:
        core.create_namespaced_config_map(NS, body)
    status = json.loads(error.value.body)
    assert error.value.status == 409 and status["reason"] == "AlreadyExists" and status["kind"] == "Status"
    with pytest.raises(ApiException) as error:
        core.read_namespaced_config_map("nope", NS)
    assert error.value.status == 404 and json.loads(error.value.body)["details"]["name"] == "nope"
    with pytest.raises(ApiException) as error:
        core.create_namespaced_pod(NS, {"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "c"}]}})
    status = json.loads(error.value.body)
    assert error.value.status == 422 and status["reason"] == "Invalid"
    assert {c["field"] for c in status["details"]["causes"]} >= {"metadata.name", "spec.containers[0].image"}
    stale = core.read_namespaced_config_map("dup", NS)
    core.patch_namespaced_config_map("dup", NS, {"data": {"a": "2"}})
    stale.data = {"a": "3"}
    with pytest.raises(ApiException) as error:
        core.replace_namespaced_config_map("dup", NS, stale)
    assert error.value.status == 409 and json.loads(error.value.body)["reason"] == "Conflict"


def test_pagination_returns_every_item_once(core):
    for index in range(25):
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"page-{index:02d}", "labels": {"page": "yes"}}})
    seen, token = [], None
    while True:
        page = core.list_namespaced_config_map(NS, label_selector="page=yes", limit=10, _continue=token)
        seen += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert seen == [f"page-{i:02d}" for i in range(25)]


def test_watch_resumes_from_last_resource_version_under_churn(core):
    """200 create/patch/delete operations; a watcher that reconnects every few events from its
    last resourceVersion sees every event exactly once, in order."""
    from kubernetes import watch

    start = core.list_namespaced_config_map(NS).metadata.resource_version
    names = [f"churn-{i}" for i in range(60)]
    operations = [("ADDED", n) for n in names] + [("MODIFIED", n) for n in names[:40]] * 2 + \
        [("DELETED", n) for n in names]
    assert len(operations) == 200

    def churn():
        for step, (type_, name) in enumerate(operations):
            if type_ == "ADDED":
                core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": {"churn": "1"}}})
            elif type_ == "MODIFIED":  # every patch changes something: no-op patches produce no event
                core.patch_namespaced_config_map(name, NS, {"data": {"step": str(step)}})
            else:
                core.delete_namespaced_config_map(name, NS)

    worker = threading.Thread(target=churn)
    worker.start()
    received: list[tuple[str, str, int]] = []
    rv = start
    deadline = time.monotonic() + 60
    while (worker.is_alive() or len(received) < len(operations)) and time.monotonic() < deadline:
        stream = watch.Watch()
        for count, event in enumerate(stream.stream(core.list_namespaced_config_map, NS, label_selector="churn=1",
                                                    resource_version=rv, timeout_seconds=2), start=1):
            obj = event["object"]
            received.append((event["type"], obj.metadata.name, int(obj.metadata.resource_version)))
            rv = obj.metadata.resource_version
            if count == 7:  # reconnect often, from the last resourceVersion seen
                stream.stop()
                break
    worker.join()
    assert [(t, n) for t, n, _ in received] == operations
    versions = [v for _, _, v in received]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_watch_honours_timeout_and_python_bool_spelling(kube_api):
    from kubernetes import client

    started = time.monotonic()
    response = kube_api.call_api(f"/api/v1/namespaces/{NS}/pods", "GET",
                                 query_params=[("watch", "True"), ("timeoutSeconds", "1")],
                                 auth_settings=["BearerToken"], _preload_content=False)
    response.data  # read to the end: the server must close the stream
    assert 0.9 < time.monotonic() - started < 5
    assert client.CoreV1Api(kube_api).list_namespaced_pod(NS, watch=False).kind == "PodList"


def test_custom_resources_from_the_real_karpenter_crds(kubectl, karpenter_crds):
    assert set(karpenter_crds) <= set(kubectl("get", "crd", "-o", "name").stdout.replace(
        "customresourcedefinition.apiextensions.k8s.io/", "").split())
    manifest = """
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: api-test}
spec:
  role: karpenter-node
  amiSelectorTerms: [{alias: al2023@latest}]
  subnetSelectorTerms: [{tags: {karpenter.sh/discovery: x}}]
  securityGroupSelectorTerms: [{tags: {karpenter.sh/discovery: x}}]
---
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: api-test}
spec:
  template:
    spec:
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: api-test}
      requirements: [{key: karpenter.k8s.aws/instance-family, operator: In, values: [m5]}]
"""
    kubectl("apply", "-f", "-", input=manifest)
    kubectl("apply", "--server-side", "-f", "-", input=manifest)
    table = kubectl("get", "nodepools").stdout.splitlines()
    assert table[0].split() == ["NAME", "NODECLASS", "NODES", "READY", "AGE"]
    assert any(line.split()[:2] == ["api-test", "api-test"] for line in table[1:])
    pool = json.loads(kubectl("get", "nodepool", "api-test", "-o", "json").stdout)
    assert pool["spec"]["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"  # CRD default
    bad = kubectl("apply", "-f", "-", check=False, input=manifest.split("---")[1].replace("values: [m5]", "values: m5"))
    assert bad.returncode != 0 and "Invalid" in bad.stderr + bad.stdout or "must be of type array" in bad.stderr
    kubectl("delete", "nodepool", "api-test")
    kubectl("delete", "ec2nodeclass", "api-test")


def test_unauthenticated_requests_are_rejected(kube_sandbox):
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(kube_sandbox.kube_ca_path()))
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{kube_sandbox.kube_url()}/api/v1/pods", context=context)
    assert error.value.code == 401
    with urllib.request.urlopen(f"{kube_sandbox.kube_url()}/version", context=context) as response:
        assert json.load(response)["major"] == "1"

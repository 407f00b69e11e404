"""verify.py: 03_verify's checks, each a table with a status per row (the walkthrough's step 4).

Unit tests feed the checks kube rows and kubernetes client models (the platform's own manifests
where there is one: storage classes, the device plugin's configs) and a small local hub; the
sandbox tests read a real (emulated) cluster.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from eks_hub_runbook import kube, verify
from eks_hub_runbook.params import resolve


def _model(obj: dict, kind: str):
    """A kubernetes client model from a manifest dict, as the client would deserialize it."""
    import json

    from kubernetes.client import ApiClient

    return ApiClient().deserialize(SimpleNamespace(data=json.dumps(obj)), kind)


def _platform_objects(kind: str, deployment_params, terraform_outputs) -> list[dict]:
    from eks_hub_runbook.platform import manifests

    return [o for o in manifests.render_group("base", deployment_params["dummy"], terraform_outputs) if o["kind"] == kind]


class FakeStorage:
    classes: list = []

    def __init__(self, api):
        pass

    def list_storage_class(self):
        return SimpleNamespace(items=FakeStorage.classes)


class FakeCore:
    pods: list = []
    config_maps: dict = {}

    def __init__(self, api):
        pass

    def list_namespaced_pod(self, namespace):
        return SimpleNamespace(items=[p for p in FakeCore.pods if p.metadata.namespace == namespace])

    def read_namespaced_config_map(self, name, namespace):
        from kubernetes.client import ApiException

        if (namespace, name) not in FakeCore.config_maps:
            raise ApiException(status=404)
        return FakeCore.config_maps[(namespace, name)]


@pytest.fixture
def fake_client(monkeypatch):
    from kubernetes import client

    FakeStorage.classes, FakeCore.pods, FakeCore.config_maps = [], [], {}
    monkeypatch.setattr(client, "StorageV1Api", FakeStorage)
    monkeypatch.setattr(client, "CoreV1Api", FakeCore)
    return SimpleNamespace(storage=FakeStorage, core=FakeCore)


# --------------------------------------------------------------------------- unit tests


def test_verify_summary_counts():
    rows = verify.summary(pvcs=[{"status": "pass"}, {"status": "info"}], hub=[{"status": "fail"}])
    assert rows == [
        {"table": "pvcs", "checks": 2, "passed": 1, "failed": 0, "status": "pass"},
        {"table": "hub", "checks": 1, "passed": 0, "failed": 1, "status": "fail"},
    ]
    kubectl = {r["check"]: r["kubectl"] for r in verify.kubectl_rows(resolve(target="aws", region="eu-west-1"))}
    assert kubectl["kubeconfig"] == "aws eks --region eu-west-1 update-kubeconfig --name jupyterhub-on-eks"
    assert kubectl["nodepools"] == "kubectl get nodepools,ec2nodeclasses"


def test_summary_names_tables_for_people():
    assert verify.summary(storage_classes=[{"status": "pass"}], device_plugin=[])[0]["table"] == "storage classes"
    assert verify.summary(device_plugin=[]) == [{"table": "device plugin", "checks": 0, "passed": 0, "failed": 0,
                                                 "status": "pass"}]


def test_cluster_rows_compare_the_servers_version(monkeypatch):
    from kubernetes import client

    class Version:
        answer: object = SimpleNamespace(major="1", minor="32+")

        def __init__(self, api):
            pass

        def get_code(self):
            if isinstance(Version.answer, Exception):
                raise Version.answer
            return Version.answer

    monkeypatch.setattr(client, "VersionApi", Version)
    rows = verify.cluster_rows(resolve(target="aws", deployment="team-hub", kubernetes_version="1.32"), "api")
    assert rows == [{"check": "cluster API reachable", "status": "pass", "detail": "EKS cluster team-hub"},
                    {"check": "Kubernetes version", "status": "pass", "detail": "1.32 (asked for 1.32)"}]
    assert verify.cluster_rows(resolve(target="aws", kubernetes_version="1.33"), "api")[1]["status"] == "warn"
    Version.answer = ConnectionRefusedError("connection refused")
    assert verify.cluster_rows(resolve(target="aws"), "api") == [
        {"check": "cluster API reachable", "status": "fail", "detail": "ConnectionRefusedError: connection refused"}]


def _pod_row(namespace, pod, status, is_ready, ready="1/1", node="n1"):
    return {"namespace": namespace, "pod": pod, "ready": ready, "status": status, "restarts": 0, "node": node,
            "ip": "10.0.0.1", "age": "1m", "is_ready": is_ready}


def test_namespace_rows_count_ready_and_finished_pods(monkeypatch):
    monkeypatch.setattr(kube, "pods", lambda api, namespace=None: [
        _pod_row("kube-system", "coredns-1", "Running", True), _pod_row("kube-system", "coredns-2", "Running", True),
        _pod_row("jupyterhub", "hub-1", "Running", True), _pod_row("jupyterhub", "hook-image-puller", "Completed", False, "0/1"),
        _pod_row("karpenter", "karpenter-1", "CrashLoopBackOff", False, "0/1"),
        _pod_row("karpenter", "karpenter-2", "Pending", False, "0/1", node="")])
    assert verify.namespace_rows("api") == [
        {"namespace": "jupyterhub", "pods": 2, "ready": 1, "status": "pass", "detail": "all ready"},
        {"namespace": "karpenter", "pods": 2, "ready": 0, "status": "fail", "detail": "2 not ready"},
        {"namespace": "kube-system", "pods": 2, "ready": 2, "status": "pass", "detail": "all ready"},
    ]


def test_hub_pod_rows_and_an_empty_hub_namespace(monkeypatch):
    asked = []
    answer = [_pod_row("jupyterhub", "hub-1", "Running", True), _pod_row("jupyterhub", "proxy-1", "Running", False, "0/1"),
              _pod_row("jupyterhub", "image-puller", "Succeeded", False, "0/1")]
    monkeypatch.setattr(kube, "pods", lambda api, namespace=None: asked.append(namespace) or answer)
    rows = verify.hub_pod_rows(resolve(target="aws"), "api")
    assert asked == ["jupyterhub"]
    assert rows[0] == {"pod": "hub-1", "ready": "1/1", "pod status": "Running", "node": "n1", "status": "pass"}
    assert [r["status"] for r in rows] == ["pass", "fail", "pass"]
    assert all("age" not in r and "ip" not in r for r in rows)  # nothing that changes between runs
    answer = []
    assert verify.hub_pod_rows(resolve(target="aws"), "api") == [
        {"pod": "(none)", "ready": "", "pod status": "", "node": "", "status": "fail"}]  # the hub runs as pods


def test_node_rows_sorted_by_pool_with_gpu_capacity(monkeypatch):
    def node(name, pool, ready=True, gpus=(0, 0)):
        return {"node": name, "instance_type": "g5.2xlarge" if gpus[0] else "m5.xlarge", "pool": pool,
                "zone": "us-west-2a", "cpu": 3.92, "memory_gib": 14.5, "gpu_capacity": gpus[0],
                "gpu_allocatable": gpus[1], "ready": ready}
    monkeypatch.setattr(kube, "nodes", lambda api: [node("n3", "gpu-ts", gpus=(4, 4)), node("n2", "core"),
                                                    node("n1", "core", ready=False)])
    rows = verify.node_rows("api")
    assert [(r["node"], r["pool"], r["status"]) for r in rows] == [("n1", "core", "fail"), ("n2", "core", "pass"),
                                                                   ("n3", "gpu-ts", "pass")]
    assert rows[2]["nvidia.com/gpu"] == "4/4" and rows[2]["memory (GiB)"] == 14.5


def test_nodepool_and_nodeclass_rows_need_every_expected_one_ready(monkeypatch):
    def pool(name, ready=True, **extra):
        return {"nodepool": name, "nodeclass": "accelerated", "instance_family": "", "instance_size": "",
                "instance_type": "", "taints": "", "nodes": 0, "ready": ready, "consolidation": "WhenEmpty after 30s", **extra}
    found = [pool(name) for name in verify.EXPECTED_POOLS if name not in ("trn1", "inf2")]
    found += [pool("inf2", ready=False), pool("extra", instance_type="In m7i.large"),
              pool("cpu-big", instance_family="In m5", instance_size="In 4xlarge")]
    monkeypatch.setattr(kube, "nodepools", lambda api: found)
    rows = {r["nodepool"]: r for r in verify.nodepool_rows("api")}
    assert set(rows) == set(verify.EXPECTED_POOLS) | {"extra", "cpu-big"}
    assert (rows["trn1"]["status"], rows["trn1"]["detail"]) == ("fail", "missing: a profile selects it")
    assert (rows["inf2"]["status"], rows["inf2"]["detail"]) == ("fail", "not Ready")
    assert (rows["cpu"]["status"], rows["cpu"]["detail"]) == ("pass", "WhenEmpty after 30s")
    assert rows["extra"]["instances"] == "In m7i.large" and rows["cpu-big"]["instances"] == "In m5 In 4xlarge"

    monkeypatch.setattr(kube, "ec2nodeclasses", lambda api: [
        {"ec2nodeclass": "cpu", "role": "hub-karpenter-node", "ami": "al2023@latest", "ready": True}])
    assert verify.nodeclass_rows("api") == [
        {"ec2nodeclass": "accelerated", "role": "", "ami": "", "status": "fail"},
        {"ec2nodeclass": "cpu", "role": "hub-karpenter-node", "ami": "al2023@latest", "status": "pass"}]


def test_storage_class_rows_pass_for_the_platforms_own_classes(fake_client, deployment_params, terraform_outputs):
    classes = _platform_objects("StorageClass", deployment_params, terraform_outputs)
    assert {c["metadata"]["name"] for c in classes} >= {"gp3", "efs-sc"}
    fake_client.storage.classes = [_model(c, "V1StorageClass") for c in classes]
    rows = {r["storage class"]: r for r in verify.storage_class_rows("api")}
    assert rows["gp3"]["status"] == rows["efs-sc"]["status"] == "pass"
    assert (rows["gp3"]["provisioner"], rows["gp3"]["default"]) == ("ebs.csi.aws.com", "yes")
    assert rows["efs-sc"]["provisioner"] == "efs.csi.aws.com"


def test_storage_class_rows_fail_a_missing_wrong_or_non_default_class(fake_client):
    def storage_class(name, provisioner, default=False, binding=None):
        annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else None
        return _model({"metadata": {"name": name, "annotations": annotations}, "provisioner": provisioner,
                       **({"volumeBindingMode": binding} if binding else {})}, "V1StorageClass")
    fake_client.storage.classes = [storage_class("gp3", "ebs.csi.aws.com"), storage_class("gp2", "kubernetes.io/aws-ebs", True)]
    rows = {r["storage class"]: r for r in verify.storage_class_rows("api")}
    assert rows["gp3"]["status"] == "fail"  # not the default class
    assert rows["efs-sc"] == {"storage class": "efs-sc", "provisioner": "", "default": "", "binding": "", "status": "fail"}
    assert (rows["gp2"]["status"], rows["gp2"]["binding"]) == ("pass", "Immediate")  # others are shown, not judged
    fake_client.storage.classes = [storage_class("gp3", "ebs.csi.aws.com", True, "WaitForFirstConsumer"),
                                   storage_class("efs-sc", "ebs.csi.aws.com")]
    rows = {r["storage class"]: r for r in verify.storage_class_rows("api")}
    assert (rows["gp3"]["status"], rows["gp3"]["binding"], rows["efs-sc"]["status"]) == ("pass", "WaitForFirstConsumer", "fail")


def _pvc_row(name, status, storage_class, capacity="", modes="ReadWriteMany"):
    return {"namespace": "jupyterhub", "pvc": name, "status": status, "volume": "", "capacity": capacity,
            "access_modes": modes, "storage_class": storage_class, "age": "1m"}


def test_pvc_rows_know_a_claim_that_waits_for_its_first_pod(fake_client, monkeypatch):
    fake_client.storage.classes = [
        _model({"metadata": {"name": "gp3"}, "provisioner": "ebs.csi.aws.com", "volumeBindingMode": "WaitForFirstConsumer"},
               "V1StorageClass"),
        _model({"metadata": {"name": "efs-sc"}, "provisioner": "efs.csi.aws.com"}, "V1StorageClass")]
    claims = [_pvc_row("efs-persist", "Bound", "efs-sc", "123Gi"), _pvc_row("hub-db-dir", "Pending", "gp3", modes="ReadWriteOnce"),
              _pvc_row("claim-user-1", "Pending", "efs-sc")]
    asked = []
    monkeypatch.setattr(kube, "pvcs", lambda api, namespace=None: asked.append(namespace) or claims)
    rows = {r["pvc"]: r for r in verify.pvc_rows("api")}
    assert asked == ["jupyterhub"]
    assert rows["efs-persist"] == {"pvc": "efs-persist", "pvc status": "Bound", "capacity": "123Gi",
                                   "access modes": "ReadWriteMany", "storage class": "efs-sc",
                                   "used for": verify.EXPECTED_PVCS["efs-persist"], "status": "pass"}
    assert rows["efs-persist-shared"]["status"] == "fail" and rows["efs-persist-shared"]["pvc status"] == "missing"
    assert rows["hub-db-dir"]["status"] == "info"  # WaitForFirstConsumer and no pod mounts it yet
    assert (rows["claim-user-1"]["status"], rows["claim-user-1"]["used for"]) == ("fail", "user volume")

    hub = _model({"metadata": {"name": "hub-1", "namespace": "jupyterhub"}, "spec": {"containers": [{"name": "hub"}], "volumes": [
        {"name": "pvc", "persistentVolumeClaim": {"claimName": "hub-db-dir"}}, {"name": "config", "secret": {"secretName": "hub"}}]}},
        "V1Pod")
    fake_client.core.pods = [hub]
    assert {r["pvc"]: r["status"] for r in verify.pvc_rows("api")}["hub-db-dir"] == "fail"  # a pod waits for it


def test_device_plugin_rows_pass_for_the_platforms_own_configs(fake_client, deployment_params, terraform_outputs):
    (config_map,) = [c for c in _platform_objects("ConfigMap", deployment_params, terraform_outputs)
                     if c["metadata"]["name"] == "nvidia-device-plugin-config"]
    fake_client.core.config_maps[verify.DEVICE_PLUGIN_CONFIG] = _model(config_map, "V1ConfigMap")
    rows = {r["config"]: r for r in verify.device_plugin_rows("api")}
    assert rows["time-slicing"] == {"config": "time-slicing", "strategy": "none", "sharing": "nvidia.com/gpu x4",
                                    "status": "pass", "detail": "default for g5 nodes: one GPU advertised as 4"}
    assert (rows["mig-mixed"]["strategy"], rows["mig-mixed"]["sharing"], rows["mig-mixed"]["status"]) == ("mixed", "none", "pass")
    assert rows["no-sharing"]["status"] == "pass"


def test_device_plugin_rows_fail_without_time_slicing_or_the_config_map(fake_client):
    assert verify.device_plugin_rows("api") == [{"config": "nvidia-device-plugin-config", "strategy": "", "sharing": "",
                                                 "status": "fail", "detail": "ConfigMap missing (HTTP 404)"}]
    two = "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 2\n"
    fake_client.core.config_maps[verify.DEVICE_PLUGIN_CONFIG] = SimpleNamespace(data={"time-slicing": two})
    assert verify.device_plugin_rows("api")[0]["status"] == "fail"
    assert verify.device_plugin_rows("api")[0]["detail"] == "expected 4 replicas"
    fake_client.core.config_maps[verify.DEVICE_PLUGIN_CONFIG] = SimpleNamespace(data={"no-sharing": "version: v1\n"})
    rows = verify.device_plugin_rows("api")
    assert rows[-1] == {"config": "time-slicing", "strategy": "", "sharing": "", "status": "fail", "detail": "missing"}


class _Hub(BaseHTTPRequestHandler):
    login_page = ""

    def do_GET(self):
        if self.path == "/hub/api/":
            body, kind = b'{"version": "5.3.0"}', "application/json"
        elif self.path == "/hub/login":
            body, kind = type(self).login_page.encode(), "text/html"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Hub
    server.shutdown()
    server.server_close()


DUMMY_FORM = '<form method="post" action="/hub/login"><input name="username"><input name="password" type="password"></form>'
OAUTH_LINK = '<a href="/hub/oauth_login?next=">Sign in with Cognito</a>'


def test_hub_rows_check_the_api_and_the_login_page_for_the_login_method(local_hub):
    url, hub = local_hub
    hub.login_page = DUMMY_FORM
    assert verify.hub_rows(resolve(target="aws"), url) == [
        {"check": "hub API answers", "status": "pass", "detail": "JupyterHub 5.3.0"},
        {"check": "login page offers the dummy form", "status": "pass", "detail": "user name + any password"}]
    cognito = resolve(target="aws", auth="cognito", domain="hub.example.com")
    assert verify.hub_rows(cognito, url + "/")[1] == {"check": "login page offers OAuth sign-in", "status": "fail",
                                                      "detail": "HTTP 200"}
    hub.login_page = OAUTH_LINK
    assert verify.hub_rows(cognito, url)[1] == {"check": "login page offers OAuth sign-in", "status": "pass",
                                                "detail": "cognito provider"}


def test_hub_rows_report_a_hub_that_does_not_answer():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    rows = verify.hub_rows(resolve(target="aws"), f"http://127.0.0.1:{port}")
    assert len(rows) == 1 and rows[0]["status"] == "fail" and "cannot reach the hub" in rows[0]["detail"]


# --------------------------------------------------------------------------- against the sandbox cluster

VERIFY_NS = "verify-test"


@pytest.mark.sandbox
def test_cluster_rows_on_the_sandbox_cluster(kube_api):
    from eks_hub_sandbox.kube.validation import KUBERNETES_VERSION

    version = ".".join(str(KUBERNETES_VERSION).lstrip("v").split(".")[:2])
    rows = verify.cluster_rows(resolve(target="aws", kubernetes_version=version), kube_api)
    assert [r["status"] for r in rows] == ["pass", "pass"] and rows[1]["detail"] == f"{version} (asked for {version})"
    other = next(v for v in ("1.31", "1.32", "1.33") if v != version)
    assert verify.cluster_rows(resolve(target="aws", kubernetes_version=other), kube_api)[1]["status"] == "warn"


@pytest.fixture
def verify_namespace(kube_api, kubectl, monkeypatch):
    """The hub namespace the checks read, pointed at a namespace of this test's own."""
    kubectl("create", "namespace", VERIFY_NS)
    kubectl("apply", "-f", "-", input="""
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: verify-test-wffc}
provisioner: ebs.csi.aws.com
volumeBindingMode: WaitForFirstConsumer
""")
    monkeypatch.setattr(verify, "NAMESPACE", VERIFY_NS)
    yield VERIFY_NS
    kubectl("delete", "namespace", VERIFY_NS, "--wait=false", check=False)
    kubectl("delete", "storageclass", "verify-test-wffc", "--wait=false", check=False)


@pytest.mark.sandbox
def test_pvc_hub_pod_and_storage_class_rows_on_the_sandbox_cluster(kube_api, verify_namespace):
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    assert verify.hub_pod_rows(resolve(target="aws"), kube_api)[0] == {"pod": "(none)", "ready": "", "pod status": "",
                                                                       "node": "", "status": "fail"}
    core.create_namespaced_persistent_volume_claim(VERIFY_NS, {"metadata": {"name": "hub-db-dir"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "verify-test-wffc",
        "resources": {"requests": {"storage": "1Gi"}}}})
    rows = {r["pvc"]: r for r in verify.pvc_rows(kube_api)}
    assert (rows["hub-db-dir"]["pvc status"], rows["hub-db-dir"]["status"]) == ("Pending", "info")
    assert rows["efs-persist"]["status"] == "fail" and rows["efs-persist"]["pvc status"] == "missing"

    core.create_namespaced_pod(VERIFY_NS, {"metadata": {"name": "hub"}, "spec": {
        "nodeSelector": {"verify-test/node": "none"},  # never scheduled: the claim keeps waiting
        "containers": [{"name": "hub", "image": "python:3.11", "command": ["sleep", "60"],
                        "volumeMounts": [{"name": "db", "mountPath": "/srv/jupyterhub"}]}],
        "volumes": [{"name": "db", "persistentVolumeClaim": {"claimName": "hub-db-dir"}}]}})
    assert {r["pvc"]: r["status"] for r in verify.pvc_rows(kube_api)}["hub-db-dir"] == "fail"
    assert verify.hub_pod_rows(resolve(target="aws"), kube_api) == [
        {"pod": "hub", "ready": "0/1", "pod status": "Pending", "node": "", "status": "fail"}]

    classes = {r["storage class"]: r for r in verify.storage_class_rows(kube_api)}
    assert classes["verify-test-wffc"] == {"storage class": "verify-test-wffc", "provisioner": "ebs.csi.aws.com",
                                           "default": "", "binding": "WaitForFirstConsumer", "status": "pass"}

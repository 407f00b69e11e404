"""Emulated nodes report what real EKS workers (AL2023 EKS-optimized AMI) of their instance type
report: memory capacity from :mod:`eks_hub_sandbox.kube.node_figures` (each figure with its
source), ephemeral storage from the root volume, allocatable by nodeadm's reservations."""

from __future__ import annotations

import asyncio
import copy
from fractions import Fraction
from types import SimpleNamespace

import pytest
import yaml

from eks_hub_runbook import third_party
from eks_hub_runbook.instance_types import CATALOG
from eks_hub_runbook.kube import wait_for
from eks_hub_sandbox.kube import bootstrap, node_figures, nodes, quantity
from eks_hub_sandbox.kube.cluster import Cluster
from eks_hub_sandbox.kube.controllers.karpenter import Karpenter
from eks_hub_sandbox.kube.controllers.node_groups import NodeGroups
from eks_hub_sandbox.kube.controllers.scheduler import Scheduler
from eks_hub_sandbox.kube.runtime import Runtime
from eks_hub_sandbox.kube.settings import Settings

EXACT_BASES = {"measured", "observed"}
NS = "node-figures-test"


def formatted(values: dict[str, Fraction], *names: str) -> dict[str, str]:
    return {name: quantity.format_for(name, values[name]) for name in names}


# --- the figures -------------------------------------------------------------------------------

def test_every_catalog_type_has_a_figure_with_a_source():
    assert set(node_figures.MEMORY) == set(CATALOG)
    for name, figure in node_figures.MEMORY.items():
        assert figure.basis in {"measured", "observed", "measured-mib", "derived"}, name
        assert figure.kib > 0 and figure.kib % 4 == 0, f"{name}: MemTotal is whole 4 KiB pages"
        assert figure.kib < CATALOG[name].memory_mib * 1024, f"{name}: less than the instance's memory"
        if figure.basis in ("measured", "measured-mib"):
            assert figure.source.startswith("https://github.com/"), name
        else:
            assert figure.source.startswith(f"{figure.basis}: "), name


def test_real_figures_are_used_exactly():
    for name, figure in node_figures.MEMORY.items():
        capacity = nodes.capacity(CATALOG[name])["memory"]
        assert capacity == figure.kib * 1024, name
        if figure.basis in EXACT_BASES:
            assert f"{figure.kib}Ki" in figure.source, f"{name}: the source states the figure used"


def test_derived_figures_name_a_measured_reference():
    derived = {name: figure for name, figure in node_figures.MEMORY.items() if figure.basis == "derived"}
    assert {"p4d.24xlarge", "trn1.32xlarge", "inf2.xlarge", "g6.2xlarge"} <= set(derived)
    for name, figure in derived.items():
        reference = figure.source.split("derived: ", 1)[1].split("'s", 1)[0]
        assert reference != name and ("measured" in figure.source or "observed" in figure.source), name


# --- capacity and allocatable of two types, against real nodes ----------------------------------

def test_g5_2xlarge_reports_what_a_real_node_does():
    # https://github.com/awslabs/ai-on-eks/blob/41a979ee7614a59e5337768b1bddec76ad6653e0/website/docs/blueprints/ai-ml/jupyterhub.md
    # (the JupyterHub blueprint's Karpenter g5.2xlarge node): capacity cpu 8, memory 32499160Ki, pods 58;
    # allocatable cpu 7910m, memory 31482328Ki, pods 58.
    g5 = CATALOG["g5.2xlarge"]
    assert formatted(nodes.capacity(g5), "cpu", "memory", "pods") == {"cpu": "8", "memory": "32499160Ki", "pods": "58"}
    assert formatted(nodes.allocatable(g5), "cpu", "memory", "pods") == {
        "cpu": "7910m", "memory": "31482328Ki", "pods": "58"}


def test_m5_large_reports_what_a_real_node_does():
    # https://github.com/aws/amazon-vpc-cni-k8s/issues/148 (an m5.large EKS worker): capacity cpu 2,
    # memory 7867456Ki. Allocatable by nodeadm (awslabs/amazon-eks-ami nodeadm/internal/kubelet/config.go):
    # cpu 2000m - 60m - 10m = 1930m; memory - (255 + 11 x 29 pods) Mi - 100Mi eviction = 7177280Ki.
    m5 = CATALOG["m5.large"]
    assert formatted(nodes.capacity(m5), "cpu", "memory", "pods") == {"cpu": "2", "memory": "7867456Ki", "pods": "29"}
    assert formatted(nodes.allocatable(m5), "cpu", "memory", "pods") == {
        "cpu": "1930m", "memory": "7177280Ki", "pods": "29"}


@pytest.mark.parametrize("name, cpu", [("m5.large", "1930m"), ("m5.xlarge", "3920m"), ("m5.2xlarge", "7910m"),
                                       ("m5.8xlarge", "31850m"), ("p4d.24xlarge", "95690m"),
                                       ("trn1.32xlarge", "127610m"), ("g5.48xlarge", "191450m")])
def test_cpu_reserve_is_nodeadms(name, cpu):
    # nodeadm getCPUMillicoresToReserve: 6 % / 1 % / 0.5 % / 0.25 % ranges; the 192-vCPU figure
    # (191450m) is the allocatable of a real AL2023 192-vCPU node (kernel 6.1.109).
    assert quantity.format_for("cpu", nodes.allocatable(CATALOG[name])["cpu"]) == cpu


def test_trn1_2xlarge_reports_the_observed_al2023_node():
    # observed AL2023 trn1.2xlarge i-02c2f3c72473202ee: memory 32332244Ki / allocatable 31315412Ki,
    # ephemeral-storage 104779756Ki / 95491281146 on its 100 GiB root volume.
    trn1 = CATALOG["trn1.2xlarge"]
    assert formatted(nodes.capacity(trn1, 100), "memory", "ephemeral-storage") == {
        "memory": "32332244Ki", "ephemeral-storage": "104779756Ki"}
    assert formatted(nodes.allocatable(trn1, 100), "cpu", "memory", "ephemeral-storage") == {
        "cpu": "7910m", "memory": "31315412Ki", "ephemeral-storage": "95491281146"}


# --- ephemeral storage --------------------------------------------------------------------------

@pytest.mark.parametrize("gib, capacity_kib, why", node_figures.ROOT_FS_OBSERVATIONS)
def test_ephemeral_storage_is_the_root_filesystem_of_the_volume(gib, capacity_kib, why):
    assert nodes.capacity(CATALOG["m5.xlarge"], gib)["ephemeral-storage"] == capacity_kib * 1024


def test_ephemeral_allocatable_is_less_kube_reserved_and_the_float32_tenth():
    # the observed nodes' allocatable (ROOT_FS_OBSERVATIONS): 20 GiB 18181869946, 50 GiB 47172899146,
    # 100 GiB 95491281146 -- 1Gi kube-reserved and int(capacity x float32(0.1)) less.
    got = [nodes.allocatable(CATALOG["m5.xlarge"], gib)["ephemeral-storage"] for gib in (20, 50, 100)]
    assert got == [18181869946, 47172899146, 95491281146]
    assert nodes.capacity(CATALOG["m5.xlarge"])["ephemeral-storage"] == 20893676 * 1024  # AL2023's 20 GiB default


def test_root_volume_comes_from_the_xvda_mapping():
    mappings = [{"deviceName": "/dev/xvdb", "ebs": {"volumeSize": "300Gi"}},
                {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "100Gi", "volumeType": "gp3"}}]
    assert node_figures.root_volume_gib(mappings) == 100
    assert node_figures.root_volume_gib([{**mappings[0], "rootVolume": True}, mappings[1]]) == 300
    assert node_figures.root_volume_gib(None) == node_figures.root_volume_gib([]) == 20
    assert node_figures.root_volume_gib([{"deviceName": "/dev/xvda", "ebs": {"volumeType": "gp3"}}]) == 20


def test_node_group_root_volume_comes_from_its_launch_template():
    calls = []

    class FakeAws:
        async def call(self, service, operation, **params):
            calls.append((service, operation, params))
            return {"LaunchTemplateVersions": [{"LaunchTemplateData": {"BlockDeviceMappings": [
                {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 100, "VolumeType": "gp3"}}]}}]}

    groups = NodeGroups.__new__(NodeGroups)
    groups.runtime = SimpleNamespace(aws=FakeAws())
    assert asyncio.run(groups._launch_template_disk({"id": "lt-0abc", "version": "3"})) == 100
    assert calls == [("ec2", "describe_launch_template_versions", {"LaunchTemplateId": "lt-0abc", "Versions": ["3"]})]


def test_karpenter_node_has_its_nodeclass_root_volume(tmp_path):
    """In process: Karpenter launches a node for a pending pod; the EC2NodeClass gives /dev/xvda 100Gi."""
    node = asyncio.run(_karpenter_node(tmp_path, {"blockDeviceMappings": [
        {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "100Gi", "volumeType": "gp3", "encrypted": True}}]}))
    assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "m5.large"
    assert node["status"]["capacity"]["ephemeral-storage"] == "104779756Ki"
    assert node["status"]["allocatable"]["ephemeral-storage"] == "95491281146"
    assert (node["status"]["capacity"]["memory"], node["status"]["allocatable"]["memory"]) == ("7867456Ki", "7177280Ki")


async def _karpenter_node(state_dir, nodeclass_spec: dict) -> dict:
    cluster = Cluster()
    bootstrap.install(cluster)
    crd_type = cluster.resource("apiextensions.k8s.io", "customresourcedefinitions")
    for path in sorted(third_party.folder(third_party.KARPENTER).glob("*.yaml")):
        cluster.create(crd_type, None, yaml.safe_load(path.read_text()))
    nodeclass = {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "figures"},
                 "spec": {"role": "karpenter-node", "amiSelectorTerms": [{"alias": "al2023@latest"}],
                          "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "sandbox"}}],
                          "securityGroupSelectorTerms": [{"tags": {"karpenter.sh/discovery": "sandbox"}}],
                          **nodeclass_spec}}
    pool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "figures"},
            "spec": {"template": {"spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                                            "name": "figures"},
                                           "requirements": [{"key": "node.kubernetes.io/instance-type",
                                                             "operator": "In", "values": ["m5.large"]}]}}}}
    for obj in (nodeclass, pool):
        rtype = cluster.registry.by_kind(obj["apiVersion"], obj["kind"])
        cluster.create(rtype, None, copy.deepcopy(obj))
    settings = Settings(port=0, aws_endpoint=None, state_dir=state_dir, kubeconfig=None, ca_file=None, node_delay=0.0)
    runtime = Runtime(cluster, settings)
    controllers = [Scheduler(runtime), Karpenter(runtime)]
    for controller in controllers:
        runtime.controllers[controller.name] = controller
        controller.start()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "figures"},
           "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}
    cluster.create(cluster.resource("", "pods"), "default", pod)
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            node_name = (cluster.store.get(("", "pods"), "default", "figures").get("spec") or {}).get("nodeName")
            if node_name:
                return cluster.store.get(("", "nodes"), "", node_name)
            await asyncio.sleep(0.05)
        raise AssertionError("Karpenter launched no node for the pod in 30s")
    finally:
        for controller in reversed(controllers):
            await controller.stop()


# --- the running sandbox, through the real kubectl ----------------------------------------------

@pytest.mark.sandbox
@pytest.mark.slow
def test_kubectl_shows_the_real_figures(kube_api, kubectl, karpenter_pool):
    """A Karpenter m5.large with a 100 GiB root volume and a g5.2xlarge with the default 20 GiB,
    as ``kubectl get node -o yaml`` shows them."""
    from kubernetes import client

    cpu = karpenter_pool("figures-cpu", [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                                          "values": ["m5.large"]}])
    gpu = karpenter_pool("figures-gpu", [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                                          "values": ["g5.2xlarge"]}])
    kubectl("patch", "ec2nodeclass", cpu, "--type", "merge", "-p", yaml.safe_dump({"spec": {"blockDeviceMappings": [
        {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "100Gi", "volumeType": "gp3", "encrypted": True}}]}}))
    kubectl("create", "namespace", NS)
    core = client.CoreV1Api(kube_api)
    try:
        for pool in (cpu, gpu):
            core.create_namespaced_pod(NS, {"metadata": {"name": pool}, "spec": {
                "nodeSelector": {"sandbox-test/pool": pool}, "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}})
        node_names = {pool: wait_for(lambda pool=pool: core.read_namespaced_pod(pool, NS).spec.node_name,
                                     f"{pool} bound", timeout=60, interval=0.2) for pool in (cpu, gpu)}
        status = {pool: yaml.safe_load(kubectl("get", "node", name, "-o", "yaml").stdout)["status"]
                  for pool, name in node_names.items()}
        keys = ("cpu", "memory", "pods", "ephemeral-storage")
        assert {k: status[cpu]["capacity"][k] for k in keys} == {
            "cpu": "2", "memory": "7867456Ki", "pods": "29", "ephemeral-storage": "104779756Ki"}
        assert {k: status[cpu]["allocatable"][k] for k in keys} == {
            "cpu": "1930m", "memory": "7177280Ki", "pods": "29", "ephemeral-storage": "95491281146"}
        assert {k: status[gpu]["capacity"][k] for k in keys} == {
            "cpu": "8", "memory": "32499160Ki", "pods": "58", "ephemeral-storage": "20893676Ki"}
        assert {k: status[gpu]["allocatable"][k] for k in keys} == {
            "cpu": "7910m", "memory": "31482328Ki", "pods": "58", "ephemeral-storage": "18181869946"}
    finally:
        kubectl("delete", "namespace", NS, "--wait=false", check=False)

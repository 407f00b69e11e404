"""The sandbox's Karpenter with NodeOverlays and do-not-disrupt, in process (no Terraform, no hub).

- Packing: with the platform's NodePools, EC2NodeClasses, NodeOverlay and device plugin
  config, and Karpenter's Deployment as the chart renders it from the platform's values
  (FEATURE_GATES ...NodeOverlay=true), 20 pods shaped like the time-slicing profile's pods end on
  exactly 5 GPU nodes; with the gate off Karpenter counts physical GPUs and launches more.
- Overlay semantics (pure functions of ``nodeoverlays``): requirements, capacity, price and
  priceAdjustment, weight, conflicts; an invalid NodeOverlay is refused by the API (422).
- Consolidation (WhenEmptyOrUnderutilized): a node whose pods fit elsewhere is removed, unless a
  pod on it carries ``karpenter.sh/do-not-disrupt: "true"``.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from eks_hub_runbook import params as runbook_params
from eks_hub_runbook import third_party
from eks_hub_runbook.platform import hubconfig, manifests, values
from eks_hub_sandbox.addons import workloads
from eks_hub_sandbox.kube import bootstrap
from eks_hub_sandbox.kube.cluster import Cluster
from eks_hub_sandbox.kube.controllers import nodeoverlays
from eks_hub_sandbox.kube.controllers.device_plugins import DevicePlugins
from eks_hub_sandbox.kube.controllers.karpenter import Karpenter
from eks_hub_sandbox.kube.controllers.scheduler import Scheduler
from eks_hub_sandbox.kube.errors import ApiError
from eks_hub_sandbox.kube.runtime import Runtime
from eks_hub_sandbox.kube.settings import Settings
from tests.test_platform_profiles import build_pod

PODS, NODES = ("", "pods"), ("", "nodes")
NODECLAIMS, NODEOVERLAYS = ("karpenter.sh", "nodeclaims"), ("karpenter.sh", "nodeoverlays")
USERS = 20
TIMEOUT = 30.0

# Rendering registers secrets and writes values files: keep both in the session's state folder.
pytestmark = pytest.mark.usefixtures("state_dir")


@pytest.fixture(scope="module")
def platform(terraform_outputs, state_dir):
    """The rendered manifests (base + karpenter), Karpenter's values and the time-slicing pod."""
    import kubespawner.spawner

    p = runbook_params.resolve(target="aws")
    rendered = manifests.render(p, terraform_outputs)
    hub_values = hubconfig.effective_values(values.jupyterhub_values(p, terraform_outputs))
    profile = next(s for s in hub_values["singleuser"]["profileList"]
                   if s.get("kubespawner_override", {}).get("node_selector", {}).get("node-pool")
                   == manifests.time_slicing_overlay()["time_slicing_pool"])
    with pytest.MonkeyPatch.context() as patch:  # KubeSpawner offline
        patch.setattr(kubespawner.spawner, "load_config", lambda **kwargs: None)
        pod = build_pod(kubespawner.spawner.KubeSpawner, hub_values, {"profile": profile["slug"]})
    return dict(objects=rendered["base"] + rendered["karpenter"], pod=pod,
                karpenter_values=values.release_values("helm-values/karpenter.yaml", p, terraform_outputs))


@pytest.fixture(scope="module")
def crds() -> list[dict]:
    return [yaml.safe_load(path.read_text()) for path in sorted(third_party.folder(third_party.KARPENTER).glob("*.yaml"))]


def _karpenter_deployment(karpenter_values: dict) -> dict:
    (deployment,) = [o for o in workloads.release_objects("karpenter", "1.14.1", "kube-system", karpenter_values)
                     if o["kind"] == "Deployment"]
    return deployment


class Emulator:
    """A cluster with the CRDs and objects given, its scheduler, device plugins and Karpenter."""

    def __init__(self, crds: list[dict], objects: list[dict], state_dir: Path):
        self.cluster = Cluster()
        bootstrap.install(self.cluster)
        crd_type = self.cluster.resource("apiextensions.k8s.io", "customresourcedefinitions")
        for crd in crds:
            self.cluster.create(crd_type, None, copy.deepcopy(crd))
        for obj in objects:
            self.create(obj)
        settings = Settings(port=0, aws_endpoint=None, state_dir=state_dir, kubeconfig=None, ca_file=None, node_delay=0.0)
        self.runtime = Runtime(self.cluster, settings)
        self.controllers = [DevicePlugins(self.runtime), Scheduler(self.runtime), Karpenter(self.runtime)]

    def create(self, obj: dict) -> dict:
        rtype = self.cluster.registry.by_kind(obj["apiVersion"], obj["kind"])
        namespace = (obj["metadata"].get("namespace") or "default") if rtype.namespaced else None
        return self.cluster.create(rtype, namespace, copy.deepcopy(obj))

    async def __aenter__(self):
        for controller in self.controllers:
            self.runtime.controllers[controller.name] = controller
            controller.start()
        return self

    async def __aexit__(self, *exc):
        for controller in reversed(self.controllers):
            await controller.stop()

    def list(self, key) -> list[dict]:
        return self.cluster.store.list(key)

    async def until(self, check, what: str):
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while asyncio.get_running_loop().time() < deadline:
            result = check()
            if result:
                return result
            await asyncio.sleep(0.05)
        events = [e["message"] for e in self.list(("", "events"))]
        raise AssertionError(f"not within {TIMEOUT:.0f}s: {what}; last events: {events[-4:]}")


async def _start_users(crds, platform, state_dir: Path, gate: bool) -> tuple[int, int]:
    """(GPU nodes launched, GPU nodes holding pods) for :data:`USERS` time-slicing pods pending at once."""
    karpenter_values = copy.deepcopy(platform["karpenter_values"])
    karpenter_values["settings"]["featureGates"]["nodeOverlay"] = gate
    emulator = Emulator(crds, [*platform["objects"], _karpenter_deployment(karpenter_values)], state_dir)
    async with emulator:
        for index in range(USERS):
            pod = copy.deepcopy(platform["pod"])
            pod["metadata"].update(name=f"jupyter-user-{index}", namespace="jupyterhub")
            emulator.create(pod)
        await emulator.until(lambda: all((p.get("spec") or {}).get("nodeName") for p in emulator.list(PODS))
                             and len(emulator.list(PODS)) == USERS, "every user's pod bound")
        claims = emulator.list(NODECLAIMS)
        used = {p["spec"]["nodeName"] for p in emulator.list(PODS)}
        return len(claims), len(used)


def test_twenty_time_slicing_users_fill_exactly_five_gpu_nodes_with_the_overlay(crds, platform, tmp_path):
    launched, used = asyncio.run(_start_users(crds, platform, tmp_path, gate=True))
    assert (launched, used) == (5, 5)


def test_without_the_feature_gate_karpenter_counts_physical_gpus_and_launches_more(crds, platform, tmp_path):
    launched, used = asyncio.run(_start_users(crds, platform, tmp_path, gate=False))
    print(f"feature gate off: {launched} GPU nodes launched for {USERS} time-slicing users, {used} hold pods")
    assert launched == USERS  # one in-flight claim per physical GPU: issue 729
    assert used >= 5


def test_the_overlay_gets_its_status_conditions(crds, platform, tmp_path):
    async def run():
        emulator = Emulator(crds, [*platform["objects"], _karpenter_deployment(platform["karpenter_values"])], tmp_path)
        async with emulator:
            def ready():
                (overlay,) = emulator.list(NODEOVERLAYS)
                return {c["type"]: c["status"] for c in (overlay.get("status") or {}).get("conditions") or []}
            return await emulator.until(lambda: ready().get("Ready") and ready(), "overlay conditions")
    assert asyncio.run(run()) == {"ValidationSucceeded": "True", "Ready": "True"}


def test_an_invalid_node_overlay_is_refused_by_the_api(crds, platform, tmp_path):
    """The CRD's schema (patterns, minimum, enums) answers 422; its CEL rules the emulator does not
    evaluate are Karpenter's runtime validation here (ValidationSucceeded=False, not applied)."""
    emulator = Emulator(crds, [], tmp_path)
    overlay = copy.deepcopy(next(o for o in platform["objects"] if o["kind"] == "NodeOverlay"))
    broken = [
        {**overlay["spec"], "priceAdjustment": "ten percent"},
        {**overlay["spec"], "price": "-1"},
        {**overlay["spec"], "weight": 0},
        {**overlay["spec"], "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "Above",
                                              "values": ["1"]}]},
    ]
    for index, spec in enumerate(broken):
        with pytest.raises(ApiError) as refused:
            emulator.create({**overlay, "metadata": {"name": f"broken-{index}"}, "spec": spec})
        assert refused.value.code == 422, spec
        assert "spec." in str(refused.value)
    assert emulator.create(overlay)["metadata"]["name"] == overlay["metadata"]["name"]


def test_what_the_crd_says_in_cel_is_refused_at_runtime():
    resolved = nodeoverlays.resolve([
        _overlay("cpu", capacity={"cpu": "4"}),
        _overlay("both", price="1", priceAdjustment="-10%"),
        _overlay("empty-in", [{"key": "node.kubernetes.io/instance-type", "operator": "In"}], capacity={"x.io/y": "1"}),
    ], OFFERINGS)
    assert {name: reason for name, (reason, _) in resolved.problems.items()} == {
        "cpu": "RuntimeValidation", "both": "RuntimeValidation", "empty-in": "RuntimeValidation"}
    assert "restricted" in resolved.problems["cpu"][1] and resolved.capacity("gpu", "g5.2xlarge") == {}


# -- overlay semantics ---------------------------------------------------------------------------------

def _overlay(name: str, requirements=(), weight=None, **spec) -> dict:
    body = {"requirements": list(requirements), **spec, **({"weight": weight} if weight is not None else {})}
    return {"apiVersion": "karpenter.sh/v1alpha1", "kind": "NodeOverlay", "metadata": {"name": name}, "spec": body}


OFFERINGS = {
    ("gpu", "g5.2xlarge"): [{"node.kubernetes.io/instance-type": "g5.2xlarge", "karpenter.k8s.aws/instance-gpu-count": "1",
                             "karpenter.sh/nodepool": "gpu", "topology.kubernetes.io/zone": zone,
                             "karpenter.sh/capacity-type": ct} for zone in ("a", "b") for ct in ("on-demand", "spot")],
    ("gpu", "g5.12xlarge"): [{"node.kubernetes.io/instance-type": "g5.12xlarge", "karpenter.k8s.aws/instance-gpu-count": "4",
                              "karpenter.sh/nodepool": "gpu", "topology.kubernetes.io/zone": "a",
                              "karpenter.sh/capacity-type": "on-demand"}],
}


def test_requirements_select_instance_types_by_their_labels():
    resolved = nodeoverlays.resolve([_overlay("one-gpu", [{"key": "karpenter.k8s.aws/instance-gpu-count",
                                                           "operator": "Lte", "values": ["1"]}],
                                              capacity={"nvidia.com/gpu": "4"})], OFFERINGS)
    assert resolved.capacity("gpu", "g5.2xlarge") == {"nvidia.com/gpu": Fraction(4)}
    assert resolved.capacity("gpu", "g5.12xlarge") == {}
    assert resolved.capacity("other-pool", "g5.2xlarge") == {}


def test_price_and_price_adjustment_per_offering():
    spot = {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}
    resolved = nodeoverlays.resolve([_overlay("spot-cheaper", [spot], priceAdjustment="-50%"),
                                     _overlay("big-fixed", [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                                                             "values": ["g5.12xlarge"]}], price="1.25")], OFFERINGS)
    assert resolved.price("gpu", "g5.2xlarge", "a", "spot", 0.4) == pytest.approx(0.2)
    assert resolved.price("gpu", "g5.2xlarge", "a", "on-demand", 1.0) == 1.0
    assert resolved.price("gpu", "g5.12xlarge", "a", "on-demand", 5.0) == 1.25
    assert nodeoverlays.adjust_price(1.0, {"priceAdjustment": "+0.5"}) == 1.5
    assert nodeoverlays.adjust_price(1.0, {"priceAdjustment": "-100%"}) == 0.0


def test_the_highest_weight_wins_per_field_and_equal_weights_conflict():
    resolved = nodeoverlays.resolve([
        _overlay("low", capacity={"nvidia.com/gpu": "2", "example.com/slot": "1"}, priceAdjustment="+50%", weight=1),
        _overlay("high", capacity={"nvidia.com/gpu": "8"}, weight=50),
        _overlay("rival", capacity={"example.com/slot": "3"}, weight=1),
        _overlay("discount", priceAdjustment="+10%", weight=1),
    ], OFFERINGS)
    # high's gpu beats low's; equal weights: "rival" goes before "low" (names descending), so low
    # conflicts on example.com/slot and none of it applies (not its price either); discount merges
    assert resolved.capacity("gpu", "g5.2xlarge") == {"nvidia.com/gpu": Fraction(8), "example.com/slot": Fraction(3)}
    assert resolved.price("gpu", "g5.2xlarge", "a", "on-demand", 1.0) == pytest.approx(1.1)
    assert resolved.problems == {"low": ("Conflict", "conflict with another overlay")}


def test_the_cheapest_type_follows_a_price_overlay(crds, tmp_path):
    """An overlay that prices g5.4xlarge below g5.2xlarge makes Karpenter launch a g5.4xlarge."""
    pool, nodeclass = _pool("priced", ["g5.2xlarge", "g5.4xlarge"])
    overlay = _overlay("prefer-4xl", [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                                       "values": ["g5.4xlarge"]}], price="0.01")

    async def run():
        emulator = Emulator(crds, [nodeclass, pool, overlay, _gate_on()], tmp_path)
        async with emulator:
            emulator.create(_bare_pod("p", "priced", {"cpu": "1", "memory": "1Gi"}))
            claim = await emulator.until(lambda: emulator.list(NODECLAIMS), "a claim")
            return claim[0]["metadata"]["labels"]["node.kubernetes.io/instance-type"]
    assert asyncio.run(run()) == "g5.4xlarge"


# -- do-not-disrupt -------------------------------------------------------------------------------------

def _gate_on() -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "karpenter", "namespace": "kube-system", "labels": {"app.kubernetes.io/name": "karpenter"}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "k"}},
                     "template": {"metadata": {"labels": {"app": "k"}}, "spec": {"containers": [
                         {"name": "controller", "image": "public.ecr.aws/karpenter/controller:1.14.1",
                          "env": [{"name": "FEATURE_GATES", "value": "NodeOverlay=true"}]}]}}}}


def _pool(name: str, types: list[str], policy: str = "WhenEmpty") -> tuple[dict, dict]:
    nodeclass = {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": name},
                 "spec": {"role": "karpenter-node", "amiSelectorTerms": [{"alias": "al2023@latest"}],
                          "subnetSelectorTerms": [{"tags": {"k": "v"}}], "securityGroupSelectorTerms": [{"tags": {"k": "v"}}]}}
    pool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name},
            "spec": {"template": {"metadata": {"labels": {"sandbox-test/pool": name}},
                                  "spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": name},
                                           "requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                                                             "values": types}]}},
                     "disruption": {"consolidationPolicy": policy, "consolidateAfter": "0s"}}}
    return pool, nodeclass


def _bare_pod(name: str, pool: str, requests: dict, annotations: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
            "spec": {"nodeSelector": {"sandbox-test/pool": pool}, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": requests}}]}}


async def _two_half_empty_nodes(emulator: Emulator, do_not_disrupt: bool) -> None:
    """Pods a (2 cpu) and x (1.5) on one m5.xlarge, b (1.5) on a second (it did not fit); then x
    goes: a and b would now fit on one node."""
    annotations = {"karpenter.sh/do-not-disrupt": "true"} if do_not_disrupt else {}

    def bound(name):
        pod = emulator.cluster.store.get(PODS, "default", name)
        return pod and (pod.get("spec") or {}).get("nodeName")
    for name, cpu in (("a", "2"), ("x", "1.5"), ("b", "1.5")):
        emulator.create(_bare_pod(name, "squeeze", {"cpu": cpu, "memory": "1Gi"}, annotations if name != "x" else {}))
        await emulator.until(lambda: bound(name), f"pod {name} bound")
    assert bound("a") == bound("x") != bound("b")
    emulator.cluster.remove(PODS, "default", "x")  # gone at once: no kubelet runs here to confirm a deletion


def test_consolidation_removes_an_underutilized_node(crds, tmp_path):
    """b's node goes (the least loaded: b fits beside a); its pod is evicted (no kubelet here
    finishes the drain, so the claim and the pod are left terminating)."""
    async def run():
        emulator = Emulator(crds, list(_pool("squeeze", ["m5.xlarge"], "WhenEmptyOrUnderutilized")), tmp_path)
        async with emulator:
            await _two_half_empty_nodes(emulator, do_not_disrupt=False)
            store = emulator.cluster.store
            node_of_b = store.get(PODS, "default", "b")["spec"]["nodeName"]
            disrupted = await emulator.until(lambda: [c for c in emulator.list(NODECLAIMS)
                                                      if c["metadata"].get("deletionTimestamp")], "a claim disrupted")
            evicted = await emulator.until(lambda: store.get(PODS, "default", "b")["metadata"].get("deletionTimestamp"),
                                           "b evicted")
            events = [e["message"] for e in emulator.list(("", "events")) if e["reason"] == "DisruptionTerminating"]
            return node_of_b, disrupted, evicted, events, store.get(PODS, "default", "a")
    node_of_b, disrupted, evicted, events, a = asyncio.run(run())
    assert [c["status"]["nodeName"] for c in disrupted] == [node_of_b] and evicted
    assert "Disrupting NodeClaim: Underutilized" in events
    assert not a["metadata"].get("deletionTimestamp")


def test_consolidation_skips_nodes_with_a_do_not_disrupt_pod(crds, tmp_path):
    async def run():
        emulator = Emulator(crds, list(_pool("squeeze", ["m5.xlarge"], "WhenEmptyOrUnderutilized")), tmp_path)
        async with emulator:
            await _two_half_empty_nodes(emulator, do_not_disrupt=True)
            blocked = await emulator.until(
                lambda: {e["involvedObject"]["name"] for e in emulator.list(("", "events"))
                         if e["reason"] == "DisruptionBlocked" and e["involvedObject"]["kind"] == "Node"} or None
                if len([e for e in emulator.list(("", "events")) if e["reason"] == "DisruptionBlocked"
                        and e["involvedObject"]["kind"] == "Node"]) >= 2 else None, "both nodes blocked")
            messages = [e["message"] for e in emulator.list(("", "events")) if e["reason"] == "DisruptionBlocked"]
            return blocked, {n["metadata"]["name"] for n in emulator.list(NODES)}, messages, \
                [e for e in emulator.list(("", "events")) if e["reason"] == "DisruptionTerminating"]
    blocked, nodes, messages, terminating = asyncio.run(run())
    assert blocked == nodes and len(nodes) == 2  # both nodes were candidates, both kept
    assert 'Cannot disrupt Node: pod "default/a" has "karpenter.sh/do-not-disrupt" annotation' in messages
    assert not terminating

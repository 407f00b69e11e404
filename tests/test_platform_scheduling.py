"""The platform's scheduling model (platform/scheduling.py) on small hand-made pods and NodePools:
pod requests by the Kubernetes rule, candidate nodes, and the predicates (selectors, affinity,
taints, resources). The hub's real profiles and pools are checked in test_platform_profiles.py."""

from __future__ import annotations

from fractions import Fraction

import pytest

from eks_hub_runbook.platform import instances, scheduling

TIME_SLICING = "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - {name: nvidia.com/gpu, replicas: 4}\n"
CONFIGS = {"time-slicing": TIME_SLICING}


def _container(name="c", requests=None, limits=None, **extra) -> dict:
    return {"name": name, "image": "i", "resources": {"requests": requests or {}, "limits": limits or {}}, **extra}


def _pod(*containers, init=(), **spec) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"containers": list(containers), "initContainers": list(init), **spec}}


def _pool(name, types, labels=None, taints=()) -> dict:
    return {"metadata": {"name": name}, "spec": {"template": {
        "metadata": {"labels": {"node-pool": name, **(labels or {})}},
        "spec": {"requirements": [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": types},
                                  {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}],
                 "taints": list(taints)}}}}


# -- pod requests ---------------------------------------------------------------------------------
def test_requests_sum_the_containers_exactly_and_count_one_pod():
    pod = _pod(_container("a", {"cpu": "100m", "memory": "1Gi"}), _container("b", {"cpu": "200m", "memory": 512 * 2**20}))
    assert scheduling.pod_requests(pod) == {"cpu": Fraction(3, 10), "memory": Fraction(3 * 2**29), "pods": 1}
    assert scheduling.pod_requests(_pod(_container(requests={"cpu": 2.0})))["cpu"] == 2  # KubeSpawner writes floats


def test_a_limit_stands_in_for_a_missing_request():
    pod = _pod(_container(requests={"cpu": "1"}, limits={"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}))
    assert scheduling.pod_requests(pod) == {"cpu": 1, "memory": 4 * 2**30, "nvidia.com/gpu": 1, "pods": 1}


def test_the_largest_init_container_wins_when_it_exceeds_the_containers():
    pod = _pod(_container(requests={"cpu": "1", "memory": "1Gi"}),
               init=[_container("init-a", {"cpu": "3"}), _container("init-b", {"memory": "2Gi"})])
    assert scheduling.pod_requests(pod) == {"cpu": 3, "memory": 2 * 2**30, "pods": 1}


def test_sidecars_run_next_to_the_containers_and_to_later_init_containers():
    sidecar = _container("proxy", {"cpu": "500m"}, restartPolicy="Always")
    pod = _pod(_container(requests={"cpu": "1"}), init=[_container("before", {"cpu": "2"}), sidecar,
                                                         _container("after", {"cpu": "2"})])
    # containers + sidecar = 1.5; "before" alone = 2; "after" with the sidecar running = 2.5
    assert scheduling.pod_requests(pod)["cpu"] == Fraction(5, 2)
    assert scheduling.pod_requests(_pod(_container(requests={"cpu": "1"}), init=[sidecar]))["cpu"] == Fraction(3, 2)


def test_pod_overhead_is_added():
    pod = _pod(_container(requests={"cpu": "1"}), init=[_container("i", {"cpu": "2"})], overhead={"cpu": "250m"})
    assert scheduling.pod_requests(pod)["cpu"] == Fraction(9, 4)


# -- candidates ----------------------------------------------------------------------------------
def test_candidates_are_smallest_first_with_the_instances_labels_and_allocatable():
    pool = _pool("gpu", ["g5.4xlarge", "g5.2xlarge"], {"nvidia.com/device-plugin.config": "time-slicing"})
    first, second = scheduling.candidates(pool, CONFIGS, "time-slicing")
    assert [first.instance_type, second.instance_type] == ["g5.2xlarge", "g5.4xlarge"]
    assert first.labels["karpenter.k8s.aws/instance-gpu-name"] == {"a10g"}
    assert first.labels["karpenter.sh/nodepool"] == {"gpu"} and first.labels["node-pool"] == {"gpu"}
    assert first.labels["karpenter.sh/capacity-type"] == {"on-demand"}
    assert first.allocatable == instances.allocatable(instances.get("g5.2xlarge"), TIME_SLICING)
    assert first.available == instances.available(first.allocatable)


def test_a_pool_without_instance_types_is_refused():
    pool = _pool("cpu", [])
    pool["spec"]["template"]["spec"]["requirements"] = []
    with pytest.raises(ValueError, match="does not list its instance types"):
        scheduling.candidates(pool, {}, "")


# -- predicates ----------------------------------------------------------------------------------
@pytest.fixture
def gpu_node():
    pool = _pool("gpu", ["g5.2xlarge"], {"nvidia.com/device-plugin.config": "time-slicing"},
                 taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}])
    return scheduling.candidates(pool, CONFIGS, "time-slicing")[0]


GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def test_a_tolerating_pod_that_fits_has_no_unmet_condition(gpu_node):
    pod = _pod(_container(limits={"nvidia.com/gpu": "4", "cpu": "7", "memory": "24Gi"}),
               nodeSelector={"node-pool": "gpu"}, tolerations=[GPU_TOLERATION])
    assert scheduling.unmet(pod, gpu_node) == []


@pytest.mark.parametrize("spec, reason", [
    ({"nodeSelector": {"node-pool": "cpu"}}, "nodeSelector node-pool=cpu"),
    ({"tolerations": []}, "taint nvidia.com/gpu:NoSchedule not tolerated"),
    ({"tolerations": [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "x"}]}, "not tolerated"),
])
def test_selectors_and_taints(gpu_node, spec, reason):
    pod = _pod(_container(requests={"cpu": "1"}), **{"tolerations": [GPU_TOLERATION], **spec})
    assert any(reason in r for r in scheduling.unmet(pod, gpu_node)), scheduling.unmet(pod, gpu_node)


@pytest.mark.parametrize("expression, matches", [
    ({"key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": ["a10g", "l4"]}, True),
    ({"key": "karpenter.k8s.aws/instance-gpu-name", "operator": "NotIn", "values": ["a10g"]}, False),
    ({"key": "nvidia.com/mig.config", "operator": "DoesNotExist"}, True),
    ({"key": "nvidia.com/mig.config", "operator": "Exists"}, False),
    ({"key": "karpenter.k8s.aws/instance-cpu", "operator": "Gt", "values": ["4"]}, True),
    ({"key": "karpenter.k8s.aws/instance-cpu", "operator": "Lt", "values": ["8"]}, False),
])
def test_required_node_affinity(gpu_node, expression, matches):
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [expression]}]}}}
    pod = _pod(_container(requests={"cpu": "1"}), tolerations=[GPU_TOLERATION], affinity=affinity)
    assert (scheduling.unmet(pod, gpu_node) == []) is matches


def test_requests_must_fit_what_the_daemonsets_leave(gpu_node):
    allocatable_cpu = gpu_node.allocatable["cpu"]  # 7.91: fits the node, not next to the daemonsets
    pod = _pod(_container(requests={"cpu": f"{int(allocatable_cpu * 1000)}m"}), tolerations=[GPU_TOLERATION])
    assert scheduling.unmet(pod, gpu_node) == ["cpu: requests 7.91 > available 7.61 on g5.2xlarge"]
    five_gpus = _pod(_container(limits={"nvidia.com/gpu": "5"}), tolerations=[GPU_TOLERATION])
    assert scheduling.unmet(five_gpus, gpu_node) == ["nvidia.com/gpu: requests 5 > available 4 on g5.2xlarge"]


def test_placement_lists_the_fitting_types_and_why_other_pools_refuse():
    pools = [_pool("cpu", ["m5.xlarge", "m5.2xlarge", "m5.4xlarge"]),
             _pool("gpu", ["g5.2xlarge"], taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}])]
    pod = _pod(_container(requests={"cpu": "6", "memory": "8Gi"}))
    result = scheduling.placement(pod, pools, CONFIGS, "time-slicing")
    assert result.pools == ["cpu"] and result.fits["cpu"] == ["m5.2xlarge", "m5.4xlarge"]
    assert "taint nvidia.com/gpu:NoSchedule not tolerated" in result.refusals["gpu"]

"""The platform's overhead model (platform/instances.py): kube-reserved by the EKS AMI's formulas,
Karpenter's VM memory overhead, the daemonsets' reserve, and the device plugins' extended
resources (time-slicing, MIG from the catalog's one layout table, Neuron)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from eks_hub_runbook import instance_types
from eks_hub_runbook.errors import PlatformError
from eks_hub_runbook.platform import instances

MiB = 2**20
TIME_SLICING = """version: v1
flags: {migStrategy: none}
sharing:
  timeSlicing:
    resources:
    - {name: nvidia.com/gpu, replicas: 4}
"""
MIXED, SINGLE = "version: v1\nflags: {migStrategy: mixed}\n", "version: v1\nflags: {migStrategy: single}\n"


@pytest.mark.parametrize("vcpu, millicores", [(1, 60), (2, 70), (4, 80), (5, 82), (8, 90), (96, 310), (192, 550)])
def test_kube_reserved_cpu_is_the_eks_ami_formula(vcpu, millicores):
    assert instances.kube_reserved_cpu_milli(vcpu) == millicores


def test_allocatable_is_capacity_less_vm_overhead_kube_reserved_and_eviction():
    m5 = instances.allocatable(instances.get("m5.xlarge"))
    # 16384 MiB - ceil(7.5 %) = 15155; kube-reserved for 58 pods 893; eviction 100
    assert m5 == {"cpu": Fraction(392, 100), "memory": Fraction(14162 * MiB), "pods": 58}
    p4d = instances.allocatable(instances.get("p4d.24xlarge"), "version: v1\n")
    assert p4d["cpu"] == Fraction(9569, 100) and p4d["pods"] == 737 and p4d["nvidia.com/gpu"] == 8
    assert p4d["memory"] == (1179648 - 88474 - (255 + 11 * 737) - 100) * MiB


def test_available_leaves_the_daemonsets_reserve():
    allocatable = instances.allocatable(instances.get("g5.2xlarge"), TIME_SLICING)
    available = instances.available(allocatable)
    for name, reserve in instances.DAEMONSET_REQUESTS.items():
        assert available[name] == allocatable[name] - reserve
    assert available["nvidia.com/gpu"] == allocatable["nvidia.com/gpu"] == 4
    assert instances.available({"cpu": Fraction(1, 10)}) == {"cpu": 0}


def test_the_vm_overhead_is_one_knob(monkeypatch):
    before = instances.allocatable(instances.get("m5.xlarge"))["memory"]
    monkeypatch.setattr(instances, "VM_MEMORY_OVERHEAD", 0.175)
    assert before - instances.allocatable(instances.get("m5.xlarge"))["memory"] == 1639 * MiB  # ceil(16384 * 10 %)


def test_time_slicing_multiplies_gpus_and_may_rename_them():
    g5 = instances.get("g5.2xlarge")
    assert instances.device_plugin_resources(g5, TIME_SLICING) == {"nvidia.com/gpu": 4}
    assert instances.device_plugin_resources(g5, None) == {"nvidia.com/gpu": 1}
    renamed = TIME_SLICING.replace("  timeSlicing:\n", "  timeSlicing:\n    renameByDefault: true\n")
    assert instances.device_plugin_resources(g5, renamed) == {"nvidia.com/gpu.shared": 4}
    explicit = TIME_SLICING.replace("replicas: 4}", "replicas: 2, rename: nvidia.com/shared-a10g}")
    assert instances.device_plugin_resources(g5, explicit) == {"nvidia.com/shared-a10g": 2}


def test_mig_slices_come_from_the_catalogs_layouts():
    p4d = instances.get("p4d.24xlarge")
    assert instances.device_plugin_resources(p4d, MIXED, "all-1g.5gb") == {"nvidia.com/mig-1g.5gb": 56}
    assert instances.device_plugin_resources(p4d, MIXED, "all-balanced") == {
        "nvidia.com/mig-1g.5gb": 16, "nvidia.com/mig-2g.10gb": 8, "nvidia.com/mig-3g.20gb": 8}
    assert instances.device_plugin_resources(p4d, MIXED, "all-disabled") == {"nvidia.com/gpu": 8}
    assert instances.device_plugin_resources(p4d, SINGLE, "all-3g.20gb") == {"nvidia.com/gpu": 16}
    for name, layout in instance_types.MIG_LAYOUTS["a100"].items():
        resources = instances.device_plugin_resources(p4d, MIXED, name)
        assert resources == ({f"nvidia.com/mig-{profile}": count * 8 for profile, count in layout.items()}
                             or {"nvidia.com/gpu": 8}), name


def test_mig_follows_an_edit_of_the_catalog(monkeypatch):
    monkeypatch.setitem(instance_types.MIG_LAYOUTS["a100"], "all-1g.5gb", {"1g.5gb": 6})
    assert instances.device_plugin_resources(instances.get("p4d.24xlarge"), MIXED, "all-1g.5gb") == {
        "nvidia.com/mig-1g.5gb": 48}


def test_gpus_that_cannot_be_partitioned_stay_whole_under_a_mig_strategy():
    assert instances.device_plugin_resources(instances.get("g5.12xlarge"), MIXED, "all-1g.5gb") == {"nvidia.com/gpu": 4}


@pytest.mark.parametrize("config, layout, message", [
    (MIXED, None, "no MIG layout None for a100"),
    (MIXED, "all-9g.80gb", "one of .*all-1g.5gb"),
    (SINGLE, "all-balanced", "migStrategy single needs one MIG profile"),
])
def test_a_mig_node_without_a_usable_layout_is_an_error(config, layout, message):
    with pytest.raises(PlatformError, match=message):
        instances.device_plugin_resources(instances.get("p4d.24xlarge"), config, layout)


def test_neuron_nodes_advertise_devices_and_cores():
    assert instances.device_plugin_resources(instances.get("trn1.32xlarge"), TIME_SLICING) == {
        "aws.amazon.com/neuron": 16, "aws.amazon.com/neurondevice": 16, "aws.amazon.com/neuroncore": 32}
    assert instances.device_plugin_resources(instances.get("m5.xlarge"), TIME_SLICING) == {}


def test_an_instance_type_missing_from_the_catalog_says_where_to_add_it():
    with pytest.raises(PlatformError, match="instance_types.py"):
        instances.get("x9.huge")

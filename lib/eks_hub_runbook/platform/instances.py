"""What a Karpenter node of each instance type offers pods: the platform's one overhead model.

The catalog (:mod:`eks_hub_runbook.instance_types`) says what EC2 sells; this module applies
the overheads as Karpenter estimates them before it launches a node, so a profile that fits
here is one Karpenter launches a node for:

- memory capacity: the instance's memory less Karpenter's VM overhead estimate,
  ``ceil(7.5 %)`` of it (:data:`VM_MEMORY_OVERHEAD`, Karpenter's ``VM_MEMORY_OVERHEAD_PERCENT``);
- allocatable (what the node's kubelet reports, :func:`allocatable`): capacity less
  kube-reserved by the EKS AMI's formulas (CPU: 6 % of the first core, 1 % of the second,
  0.5 % of the third and fourth, 0.25 % of each further core; memory: 255 MiB + 11 MiB per
  pod of the instance's ENI-based max pods) and the kubelet's hard eviction threshold
  (100 MiB); pods: the instance's max pods; extended resources: what the NVIDIA and Neuron
  device plugins advertise (:func:`device_plugin_resources`);
- available to user pods (:func:`available`): allocatable less a fixed reserve for the node
  daemonsets (:data:`DAEMONSET_REQUESTS`).

Ephemeral storage is not modelled (no profile requests it). A real node reports a little more
memory than this estimate, its hypervisor keeping less than 7.5 % (2.6 to 6.2 % on the
measured types): the sandbox's nodes report those real figures, and
``sandbox/tests/test_scheduling_agreement.py`` holds the two within its tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction

import yaml

from ..errors import PlatformError
from ..instance_types import CATALOG, InstanceType, expected_extended_resources

MiB = 2**20
VM_MEMORY_OVERHEAD = 0.075
EVICTION_THRESHOLD_MIB = 100
# The node daemonsets' requests: VPC CNI, kube-proxy, EKS pod identity agent, EBS and EFS CSI
# node drivers, and the NVIDIA or Neuron device plugin (one pod slot each).
DAEMONSET_REQUESTS: dict[str, Fraction] = {"cpu": Fraction(3, 10), "memory": Fraction(600 * MiB), "pods": Fraction(6)}
GPU_RESOURCE = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"


def get(name: str) -> InstanceType:
    """The catalog's instance type ``name``; PlatformError when the catalog lacks it."""
    try:
        return CATALOG[name]
    except KeyError:
        raise PlatformError(f"instance type {name} is not in the catalog (eks_hub_runbook/instance_types.py); add it") from None


def kube_reserved_cpu_milli(vcpu: int) -> int:
    """The EKS AMI's kube-reserved CPU in millicores: 6 % of the first core, 1 % of the second,
    0.5 % of the third and fourth, 0.25 % of each further core (rounded down)."""
    millicores = Fraction(0)
    for core in range(vcpu):
        millicores += 60 if core == 0 else 10 if core == 1 else 5 if core < 4 else Fraction(5, 2)
    return int(millicores)


def kube_reserved_memory_mib(max_pods: int) -> int:
    """The EKS AMI's kube-reserved memory in MiB for a node that runs up to ``max_pods`` pods."""
    return 255 + 11 * max_pods


def _time_slicing(config: Mapping, resource: str) -> tuple[str, int]:
    """(advertised name, replicas) of ``resource`` under the config's ``sharing.timeSlicing``."""
    slicing = (config.get("sharing") or {}).get("timeSlicing") or {}
    for entry in slicing.get("resources") or []:
        if entry.get("name") == resource:
            renamed = entry.get("rename") or (f"{resource}.shared" if slicing.get("renameByDefault") else resource)
            return renamed, int(entry.get("replicas") or 1)
    return resource, 1


def _gpu_slices(instance: InstanceType, strategy: str, mig_layout: str | None) -> dict[str, int]:
    """The GPU resources before time-slicing: whole GPUs, or the MIG slices of the node's layout."""
    if strategy not in ("single", "mixed") or not instance.mig_layouts:
        return {GPU_RESOURCE: instance.gpus}  # the plugin exposes GPUs that cannot be partitioned whole
    layout = instance.mig_layouts.get(mig_layout or "")
    if layout is None:
        raise PlatformError(f"no MIG layout {mig_layout!r} for {instance.gpu_name} ({instance.name}): label the "
                            f"NodePool nvidia.com/mig.config with one of {sorted(instance.mig_layouts)}")
    if not layout:
        return {GPU_RESOURCE: instance.gpus}
    if strategy == "single":
        if len(layout) > 1:
            raise PlatformError(f"migStrategy single needs one MIG profile per GPU; {mig_layout} has {sorted(layout)}")
        return {GPU_RESOURCE: sum(layout.values()) * instance.gpus}
    return {f"{MIG_RESOURCE_PREFIX}{profile}": count * instance.gpus for profile, count in layout.items()}


def device_plugin_resources(instance: InstanceType, device_config: str | None, mig_layout: str | None = None) -> dict[str, int]:
    """Extended resources the NVIDIA and Neuron device plugins advertise on a node of this type.

    Neuron: the physical devices (``aws.amazon.com/neuron``, ``neurondevice``, ``neuroncore``).
    NVIDIA: ``device_config`` is the device plugin's config text (version v1) the node uses:
    ``flags.migStrategy`` ``mixed`` advertises ``nvidia.com/mig-<profile>`` per slice of the
    ``mig_layout`` (the node's ``nvidia.com/mig.config`` label, a layout of the catalog's
    ``MIG_LAYOUTS``), ``single`` advertises those slices as ``nvidia.com/gpu``;
    ``sharing.timeSlicing`` multiplies a resource by its replicas (``rename`` /
    ``renameByDefault`` advertise it under another name).
    """
    resources = {name: int(count) for name, count in expected_extended_resources(instance).items()}
    if not instance.gpus:
        return resources
    config = yaml.safe_load(device_config or "") or {}
    strategy = (config.get("flags") or {}).get("migStrategy") or "none"
    del resources[GPU_RESOURCE]
    for name, count in _gpu_slices(instance, strategy, mig_layout).items():
        advertised, replicas = _time_slicing(config, name)
        resources[advertised] = count * replicas
    return resources


def allocatable(instance: InstanceType, device_config: str | None = None, mig_layout: str | None = None) -> dict[str, Fraction]:
    """What the kubelet of a node of this type reports as allocatable, as Karpenter estimates it:
    cpu in cores, memory in bytes, pods, and the device plugins' extended resources."""
    memory_mib = instance.memory_mib - math.ceil(instance.memory_mib * VM_MEMORY_OVERHEAD)
    memory_mib -= kube_reserved_memory_mib(instance.max_pods) + EVICTION_THRESHOLD_MIB
    return {
        "cpu": Fraction(instance.vcpu * 1000 - kube_reserved_cpu_milli(instance.vcpu), 1000),
        "memory": Fraction(memory_mib * MiB),
        "pods": Fraction(instance.max_pods),
        **{name: Fraction(count) for name, count in device_plugin_resources(instance, device_config, mig_layout).items()},
    }


def available(node_allocatable: Mapping[str, Fraction]) -> dict[str, Fraction]:
    """What user pods can request on a node: its allocatable less :data:`DAEMONSET_REQUESTS`."""
    return {name: max(value - DAEMONSET_REQUESTS.get(name, 0), Fraction(0)) for name, value in node_allocatable.items()}

"""What a Karpenter node of each instance type can offer pods (the catalog itself is
:mod:`eks_hub_runbook.instance_types`, shared with the sandbox cluster).

``allocatable`` subtracts what EKS reserves (kube-reserved CPU by the EKS AMI formula,
kube-reserved memory for 110 pods, the eviction threshold), Karpenter's VM memory
overhead (7.5 %) and the system daemonsets (CNI, kube-proxy, CSI node drivers, device
plugin), so a profile that "fits" here fits on a real node.
"""

from __future__ import annotations

import yaml

from ..errors import PlatformError
from ..instance_types import CATALOG, InstanceType, kube_reserved_cpu_milli, kube_reserved_memory_mib

# MIG layouts (label nvidia.com/mig.config) -> slices per GPU, by GPU model.
MIG_LAYOUTS = {("a100", "all-1g.5gb"): {"nvidia.com/mig-1g.5gb": 7}}
DAEMONSET_CPU_MILLI = 300
DAEMONSET_MEMORY_MIB = 600
MAX_PODS = 110
VM_MEMORY_OVERHEAD = 0.075


def get(name: str) -> InstanceType:
    try:
        return CATALOG[name]
    except KeyError:
        raise PlatformError(f"instance type {name} is not in the catalog (eks_hub_runbook/instance_types.py); add it") from None


def device_plugin_resources(instance: InstanceType, device_config: str | None, mig_layout: str | None = None) -> dict[str, int]:
    """Extended resources the NVIDIA / Neuron device plugins advertise on a node.

    ``device_config`` is the NVIDIA device plugin config text (version v1) the node uses.
    """
    resources: dict[str, int] = {}
    if instance.neuron_devices:
        resources["aws.amazon.com/neuron"] = instance.neuron_devices
    if not instance.gpus:
        return resources
    config = yaml.safe_load(device_config or "") or {}
    strategy = (config.get("flags") or {}).get("migStrategy", "none")
    if strategy == "mixed":
        layout = MIG_LAYOUTS.get((instance.gpu_name, mig_layout or ""))
        if not layout:
            raise PlatformError(f"no MIG layout {mig_layout!r} for {instance.gpu_name} ({instance.name})")
        resources.update({name: count * instance.gpus for name, count in layout.items()})
        return resources
    replicas = 1
    for item in ((config.get("sharing") or {}).get("timeSlicing") or {}).get("resources") or []:
        if item.get("name") == "nvidia.com/gpu":
            replicas = int(item.get("replicas", 1))
    resources["nvidia.com/gpu"] = instance.gpus * replicas
    return resources


def allocatable(instance: InstanceType, device_config: str | None = None, mig_layout: str | None = None) -> dict[str, float]:
    """What pods can request on a node of this type: cpu in cores, memory in bytes, pods,
    and the device plugins' extended resources."""
    mib = 1024 * 1024
    cpu_milli = instance.vcpu * 1000 - kube_reserved_cpu_milli(instance.vcpu) - DAEMONSET_CPU_MILLI
    memory_mib = (instance.memory_gib * 1024 * (1 - VM_MEMORY_OVERHEAD) - kube_reserved_memory_mib(MAX_PODS)
                  - 100 - DAEMONSET_MEMORY_MIB)
    return {
        "cpu": cpu_milli / 1000,
        "memory": memory_mib * mib,
        "pods": MAX_PODS,
        **device_plugin_resources(instance, device_config, mig_layout),
    }

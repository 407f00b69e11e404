"""A small EC2 instance catalog and what a Karpenter node of each type can offer pods.

Capacity figures are the published EC2 specifications of the families the NodePools use.
``allocatable`` subtracts what EKS reserves (kube-reserved CPU by the EKS AMI formula,
kube-reserved memory for 110 pods, the eviction threshold), Karpenter's VM memory
overhead (7.5 %) and the system daemonsets (CNI, kube-proxy, CSI node drivers, device
plugin), so a profile that "fits" here fits on a real node.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from ..errors import PlatformError


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpu: int
    memory_gib: float
    nvidia_gpus: int = 0
    gpu_model: str = ""
    neuron_devices: int = 0

    @property
    def family(self) -> str:
        return self.name.split(".")[0]

    @property
    def size(self) -> str:
        return self.name.split(".")[1]


_TABLE = [
    # name, vCPU, GiB, NVIDIA GPUs, GPU model, Neuron devices
    ("m5.xlarge", 4, 16, 0, "", 0), ("m5.2xlarge", 8, 32, 0, "", 0), ("m5.4xlarge", 16, 64, 0, "", 0),
    ("m5.8xlarge", 32, 128, 0, "", 0), ("m5.12xlarge", 48, 192, 0, "", 0), ("m5.16xlarge", 64, 256, 0, "", 0),
    ("m5.24xlarge", 96, 384, 0, "", 0),
    ("g5.xlarge", 4, 16, 1, "A10G", 0), ("g5.2xlarge", 8, 32, 1, "A10G", 0), ("g5.4xlarge", 16, 64, 1, "A10G", 0),
    ("g5.8xlarge", 32, 128, 1, "A10G", 0), ("g5.12xlarge", 48, 192, 4, "A10G", 0), ("g5.16xlarge", 64, 256, 1, "A10G", 0),
    ("g5.24xlarge", 96, 384, 4, "A10G", 0), ("g5.48xlarge", 192, 768, 8, "A10G", 0),
    ("g6.xlarge", 4, 16, 1, "L4", 0), ("g6.2xlarge", 8, 32, 1, "L4", 0), ("g6.4xlarge", 16, 64, 1, "L4", 0),
    ("p4d.24xlarge", 96, 1152, 8, "A100-40GB", 0),
    ("trn1.2xlarge", 8, 32, 0, "", 1), ("trn1.32xlarge", 128, 512, 0, "", 16),
    ("inf2.xlarge", 4, 16, 0, "", 1), ("inf2.8xlarge", 32, 128, 0, "", 1), ("inf2.24xlarge", 96, 384, 0, "", 6),
    ("inf2.48xlarge", 192, 768, 0, "", 12),
]
CATALOG: dict[str, InstanceType] = {row[0]: InstanceType(*row) for row in _TABLE}

# MIG layouts (label nvidia.com/mig.config) -> slices per GPU, by GPU model.
MIG_LAYOUTS = {("A100-40GB", "all-1g.5gb"): {"nvidia.com/mig-1g.5gb": 7}}
DAEMONSET_CPU_MILLI = 300
DAEMONSET_MEMORY_MIB = 600
MAX_PODS = 110
VM_MEMORY_OVERHEAD = 0.075


def get(name: str) -> InstanceType:
    try:
        return CATALOG[name]
    except KeyError:
        raise PlatformError(f"instance type {name} is not in the catalog (platform/instances.py); add it") from None


def _kube_reserved_cpu_milli(vcpu: int) -> int:
    """The EKS AMI's kube-reserved CPU: 6 % of the first core, 1 % of the second,
    0.5 % of the third and fourth, 0.25 % of the rest."""
    steps = [(1, 60), (1, 10), (2, 5)]
    reserved, left = 0, vcpu
    for cores, milli in steps:
        used = min(left, cores)
        reserved += used * milli
        left -= used
    return reserved + int(left * 2.5)


def device_plugin_resources(instance: InstanceType, device_config: str | None, mig_layout: str | None = None) -> dict[str, int]:
    """Extended resources the NVIDIA / Neuron device plugins advertise on a node.

    ``device_config`` is the NVIDIA device plugin config text (version v1) the node uses.
    """
    resources: dict[str, int] = {}
    if instance.neuron_devices:
        resources["aws.amazon.com/neuron"] = instance.neuron_devices
    if not instance.nvidia_gpus:
        return resources
    config = yaml.safe_load(device_config or "") or {}
    strategy = (config.get("flags") or {}).get("migStrategy", "none")
    if strategy == "mixed":
        layout = MIG_LAYOUTS.get((instance.gpu_model, mig_layout or ""))
        if not layout:
            raise PlatformError(f"no MIG layout {mig_layout!r} for {instance.gpu_model} ({instance.name})")
        resources.update({name: count * instance.nvidia_gpus for name, count in layout.items()})
        return resources
    replicas = 1
    for item in ((config.get("sharing") or {}).get("timeSlicing") or {}).get("resources") or []:
        if item.get("name") == "nvidia.com/gpu":
            replicas = int(item.get("replicas", 1))
    resources["nvidia.com/gpu"] = instance.nvidia_gpus * replicas
    return resources


def allocatable(instance: InstanceType, device_config: str | None = None, mig_layout: str | None = None) -> dict[str, float]:
    """What pods can request on a node of this type: cpu in cores, memory in bytes, pods,
    and the device plugins' extended resources."""
    mib = 1024 * 1024
    cpu_milli = instance.vcpu * 1000 - _kube_reserved_cpu_milli(instance.vcpu) - DAEMONSET_CPU_MILLI
    memory_mib = instance.memory_gib * 1024 * (1 - VM_MEMORY_OVERHEAD) - (11 * MAX_PODS + 255) - 100 - DAEMONSET_MEMORY_MIB
    return {
        "cpu": cpu_milli / 1000,
        "memory": memory_mib * mib,
        "pods": MAX_PODS,
        **device_plugin_resources(instance, device_config, mig_layout),
    }

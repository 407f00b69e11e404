"""Node objects as an EKS worker registers them: name, addresses, labels, capacity,
node info, conditions. Used by Karpenter and the managed-node-group controller;
device plugins add their extended resources afterwards.

Capacity and allocatable are the node's own (the emulator's kubelet, not the platform's
estimate), those a real worker of the type reports on the AL2023 EKS-optimized AMI:

- capacity: cpu the instance's vCPUs; memory the kernel's MemTotal as real nodes of the type
  report it, and ephemeral-storage the root filesystem's size for the node's root volume, both
  from :mod:`.node_figures` (which records where each figure came from); pods the ENI-based
  max pods (nodeadm's ``default ENIs x (IPv4 per ENI - 1) + 2``, the catalog's ``max_pods``);
  hugepages none.
- allocatable: capacity less what nodeadm's kubelet config reserves
  (awslabs/amazon-eks-ami ``nodeadm/internal/kubelet/config.go``): kube-reserved CPU 6 % of
  the first core, 1 % of the second, 0.5 % of the third and fourth, 0.25 % of the rest;
  kube-reserved memory ``11 x maxPods + 255`` MiB and ephemeral-storage 1Gi; and the hard
  eviction thresholds ``memory.available<100Mi`` and ``nodefs.available<10%`` (the kubelet
  takes 10 % of capacity with a float32 percentage, so a few bytes more than a tenth).
"""

from __future__ import annotations

import ipaddress
import itertools
import random
import struct
from fractions import Fraction

from . import node_figures, quantity
from .discovery import GIT_VERSION
from eks_hub_runbook.instance_types import InstanceType
from .objects import now, random_hex

KUBELET_VERSION = GIT_VERSION  # nodes run the control plane's version
OS_IMAGE = "Amazon Linux 2023.8.20250818"
KERNEL = "6.1.147-172.266.amzn2023.x86_64"
RUNTIME = "containerd://1.7.27"
# The blueprint's private subnets, one per zone.
ZONE_SUBNETS = {"a": ipaddress.ip_network("10.1.0.0/24"), "b": ipaddress.ip_network("10.1.1.0/24")}
MiB = 2**20
GiB = 2**30
EVICTION_HARD_MIB = 100  # nodeadm evictionHard memory.available
KUBE_RESERVED_EPHEMERAL = GiB  # nodeadm kubeReserved ephemeral-storage
# nodeadm evictionHard nodefs.available "10%": the kubelet parses it into a float32.
NODEFS_EVICTION_SHARE = struct.unpack("f", struct.pack("f", 0.1))[0]


class NodeAddressPool:
    """Hands out VPC-looking private IPs (and so node names) per zone, never twice."""

    def __init__(self) -> None:
        self._used: set[str] = set()
        self._zone_cycle = itertools.cycle(sorted(ZONE_SUBNETS))

    def zones(self, region: str) -> list[str]:
        return [f"{region}{suffix}" for suffix in sorted(ZONE_SUBNETS)]

    def next_zone(self, region: str) -> str:
        return f"{region}{next(self._zone_cycle)}"

    def allocate(self, zone: str) -> str:
        subnet = ZONE_SUBNETS.get(zone[-1], ZONE_SUBNETS["a"])
        hosts = list(subnet.hosts())[10:]
        for _ in range(len(hosts)):
            candidate = str(random.choice(hosts))
            if candidate not in self._used:
                self._used.add(candidate)
                return candidate
        raise RuntimeError(f"no free addresses left in {subnet}")

    def reserve(self, address: str) -> None:
        self._used.add(address)

    def release(self, address: str) -> None:
        self._used.discard(address)


def node_name(ip: str, region: str) -> str:
    return f"ip-{ip.replace('.', '-')}.{region}.compute.internal"


def kube_reserved(instance: InstanceType) -> tuple[Fraction, Fraction]:
    """(cpu cores, memory bytes) the EKS AMI's nodeadm reserves for the kubelet
    (``getCPUMillicoresToReserve``, ``getMemoryMebibytesToReserve``): CPU 6 % of the first
    core, 1 % of the second, 0.5 % of the next two, 0.25 % of the rest, each range in whole
    millicores; memory 255 MiB + 11 MiB per pod of the instance's max pods."""
    total = instance.vcpu * 1000
    millicores = 0
    for start, end, basis_points in ((0, 1000, 600), (1000, 2000, 100), (2000, 4000, 50), (4000, total, 25)):
        if total > start:
            millicores += (min(total, end) - start) * basis_points // 10000
    return Fraction(millicores, 1000), Fraction((255 + 11 * instance.max_pods) * MiB)


def capacity(instance: InstanceType, disk_gib: float = node_figures.DEFAULT_ROOT_VOLUME_GIB) -> dict[str, Fraction]:
    """What the node's kubelet reports as capacity, for a root volume of ``disk_gib`` GiB."""
    return {
        "cpu": Fraction(instance.vcpu),
        "memory": Fraction(node_figures.memory_capacity_kib(instance) * 1024),
        "pods": Fraction(instance.max_pods),
        "ephemeral-storage": Fraction(node_figures.ephemeral_capacity_kib(disk_gib) * 1024),
        "hugepages-1Gi": Fraction(0),
        "hugepages-2Mi": Fraction(0),
    }


def allocatable(instance: InstanceType, disk_gib: float = node_figures.DEFAULT_ROOT_VOLUME_GIB) -> dict[str, Fraction]:
    """What the node's kubelet reports as allocatable: capacity less kube-reserved and eviction."""
    total = capacity(instance, disk_gib)
    cpu_reserved, memory_reserved = kube_reserved(instance)
    storage = int(total["ephemeral-storage"])
    return {
        **total,
        "cpu": total["cpu"] - cpu_reserved,
        "memory": total["memory"] - memory_reserved - EVICTION_HARD_MIB * MiB,
        "ephemeral-storage": Fraction(storage - KUBE_RESERVED_EPHEMERAL - int(storage * NODEFS_EVICTION_SHARE)),
    }


def build_node(instance: InstanceType, ip: str, zone: str, region: str, labels: dict[str, str],
               taints: list[dict] | None = None,
               disk_gib: float = node_figures.DEFAULT_ROOT_VOLUME_GIB, instance_id: str | None = None,
               annotations: dict[str, str] | None = None) -> dict:
    """A Ready Node of ``instance`` type (without device-plugin resources yet) whose root volume is
    ``disk_gib`` GiB."""
    name = node_name(ip, region)
    instance_id = instance_id or f"i-0{random_hex(16)}"
    all_labels = {
        **instance.labels(),
        "kubernetes.io/hostname": name,
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": zone,
        "failure-domain.beta.kubernetes.io/region": region,
        "failure-domain.beta.kubernetes.io/zone": zone,
        "topology.k8s.aws/zone-id": f"usw2-az{ord(zone[-1]) - ord('a') + 1}",
        "k8s.io/cloud-provider-aws": random_hex(32),
        **labels,
    }
    timestamp = now()
    conditions = [
        {"type": kind, "status": "False", "reason": reason, "message": message,
         "lastHeartbeatTime": timestamp, "lastTransitionTime": timestamp}
        for kind, reason, message in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"))
    ] + [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
          "lastHeartbeatTime": timestamp, "lastTransitionTime": timestamp}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": all_labels,
            "annotations": {"alpha.kubernetes.io/provided-node-ip": ip, "node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                            **(annotations or {})},
        },
        "spec": {"providerID": f"aws:///{zone}/{instance_id}", **({"taints": taints} if taints else {})},
        "status": {
            "capacity": {k: quantity.format_for(k, v) for k, v in capacity(instance, disk_gib).items()},
            "allocatable": {k: quantity.format_for(k, v) for k, v in allocatable(instance, disk_gib).items()},
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "InternalDNS", "address": name},
                          {"type": "Hostname", "address": name}],
            "conditions": conditions,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64", "bootID": random_hex(32), "containerRuntimeVersion": RUNTIME,
                         "kernelVersion": KERNEL, "kubeProxyVersion": KUBELET_VERSION,
                         "kubeletVersion": KUBELET_VERSION, "machineID": random_hex(32), "operatingSystem": "linux",
                         "osImage": OS_IMAGE, "systemUUID": random_hex(32)},
            "images": [],
        },
    }


def internal_ip(node: dict) -> str | None:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return address.get("address")
    return None


def is_ready(node: dict) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False

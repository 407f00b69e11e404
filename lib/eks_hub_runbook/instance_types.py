"""EC2 instance types: vCPUs, memory, max pods, GPUs, Neuron devices, price, the well-known labels
Karpenter puts on nodes (``karpenter.k8s.aws/instance-*``), and the MIG layouts of the GPUs that
can be partitioned. Data only: one catalog for the platform's scheduling model
(:mod:`eks_hub_runbook.platform.instances`), the quota table and the sandbox cluster, each of
which applies its own overheads to these numbers.

Covers the families the blueprint's NodePools and node groups use: m5, g5, g6, p4d,
trn1, inf2. ``max_pods`` is the EKS AMI's ENI-based limit (``eni-max-pods.txt``). Prices are
on-demand list prices in USD/hour of the region and date :data:`PRICES_SOURCE` names: they pick
the cheapest fitting type, as Karpenter does, and are the price table of the cost estimate
(:mod:`eks_hub_runbook.cost`), with :data:`FIXED_PRICES` for what is not an instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

# MIG layouts by GPU model: the ``nvidia.com/mig.config`` node label's value (the layout names
# of NVIDIA mig-parted's default config) -> MIG profile -> slices per GPU. A GPU model that is
# not a key here cannot be partitioned. The device plugin advertises each profile as the
# extended resource ``nvidia.com/mig-<profile>`` (migStrategy ``mixed``).
MIG_LAYOUTS: dict[str, dict[str, dict[str, int]]] = {
    "a100": {  # A100-SXM4-40GB (p4d.24xlarge)
        "all-disabled": {},
        "all-1g.5gb": {"1g.5gb": 7},
        "all-2g.10gb": {"2g.10gb": 3},
        "all-3g.20gb": {"3g.20gb": 2},
        "all-4g.20gb": {"4g.20gb": 1},
        "all-7g.40gb": {"7g.40gb": 1},
        "all-balanced": {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1},
    },
}


@dataclass(frozen=True)
class PriceSource:
    """Where a price table's numbers come from: the region they are for, when they were taken, and what they are."""

    region: str
    date: str
    what: str

    def __str__(self) -> str:
        return f"price table ({self.region}, {self.date})"


# The price table: every ``price`` of :data:`CATALOG` and :data:`FIXED_PRICES`.
PRICES_SOURCE = PriceSource("us-west-2", "2026-11-28", "AWS price list, on-demand, Linux, shared tenancy")

HOURS_PER_MONTH = 730  # AWS prices per-month items (GB-month) over 730 hours


@dataclass(frozen=True)
class FixedPrice:
    """The list price of a part of a deployment that is not a node Karpenter launches."""

    item: str
    usd: float
    unit: str  # "hour" or "GB-month"
    excludes: str = ""  # what the price leaves out (traffic, LCUs...)

    @property
    def usd_per_hour(self) -> float:
        """The price per hour (per GB per hour for a GB-month price)."""
        return self.usd / HOURS_PER_MONTH if self.unit == "GB-month" else self.usd


# The fixed part's prices, from the same price list and region as the catalog (PRICES_SOURCE).
FIXED_PRICES: dict[str, FixedPrice] = {p.item: p for p in [
    FixedPrice("EKS control plane", 0.10, "hour", "extended support ($0.60/h) after a version's standard support ends"),
    FixedPrice("NAT gateway", 0.045, "hour", "data processed: $0.045/GB"),
    FixedPrice("public IPv4 address", 0.005, "hour"),
    FixedPrice("Network Load Balancer", 0.0225, "hour", "LCU charges ($0.006/LCU-hour) depend on traffic"),
    FixedPrice("EBS gp3 storage", 0.08, "GB-month", "IOPS and throughput above the gp3 baseline"),
    FixedPrice("EFS storage (Standard)", 0.30, "GB-month", "reads and writes on Elastic throughput"),
]}


@dataclass(frozen=True)
class InstanceType:
    """One EC2 instance type, as EC2 describes it (``DescribeInstanceTypes``)."""

    name: str
    vcpu: int
    memory_gib: int
    max_pods: int
    price: float
    gpus: int = 0
    gpu_name: str = ""
    gpu_memory_mib: int = 0
    neuron_devices: int = 0
    neuron_cores_per_device: int = 0
    accelerator_name: str = ""
    cpu_manufacturer: str = "intel"
    network_gbps: int = 10

    @property
    def family(self) -> str:
        return self.name.split(".")[0]

    @property
    def size(self) -> str:
        return self.name.split(".")[1]

    @property
    def category(self) -> str:
        return "".join(ch for ch in self.family if ch.isalpha())

    @property
    def generation(self) -> str:
        return "".join(ch for ch in self.family if ch.isdigit()) or "1"

    @property
    def memory_mib(self) -> int:
        return self.memory_gib * 1024

    @property
    def mig_layouts(self) -> dict[str, dict[str, int]]:
        """The MIG layouts of this type's GPUs (:data:`MIG_LAYOUTS`); empty when they cannot be partitioned."""
        return MIG_LAYOUTS.get(self.gpu_name, {})

    def labels(self) -> dict[str, str]:
        """Instance labels Karpenter (and EKS) set on a node of this type."""
        labels = {
            "node.kubernetes.io/instance-type": self.name,
            "beta.kubernetes.io/instance-type": self.name,
            "kubernetes.io/arch": "amd64", "beta.kubernetes.io/arch": "amd64",
            "kubernetes.io/os": "linux", "beta.kubernetes.io/os": "linux",
            "karpenter.k8s.aws/instance-category": self.category,
            "karpenter.k8s.aws/instance-family": self.family,
            "karpenter.k8s.aws/instance-generation": self.generation,
            "karpenter.k8s.aws/instance-size": self.size,
            "karpenter.k8s.aws/instance-cpu": str(self.vcpu),
            "karpenter.k8s.aws/instance-cpu-manufacturer": self.cpu_manufacturer,
            "karpenter.k8s.aws/instance-memory": str(self.memory_mib),
            "karpenter.k8s.aws/instance-hypervisor": "nitro",
            "karpenter.k8s.aws/instance-encryption-in-transit-supported": "true",
            "karpenter.k8s.aws/instance-network-bandwidth": str(self.network_gbps * 1000),
        }
        if self.gpus:
            labels.update({
                "karpenter.k8s.aws/instance-gpu-count": str(self.gpus),
                "karpenter.k8s.aws/instance-gpu-name": self.gpu_name,
                "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
                "karpenter.k8s.aws/instance-gpu-memory": str(self.gpu_memory_mib),
            })
        if self.neuron_devices:
            labels.update({
                "karpenter.k8s.aws/instance-accelerator-name": self.accelerator_name,
                "karpenter.k8s.aws/instance-accelerator-manufacturer": "aws",
                "karpenter.k8s.aws/instance-accelerator-count": str(self.neuron_devices),
            })
        return labels


def _family(prefix: str, sizes: list[tuple], **common) -> list[InstanceType]:
    return [InstanceType(f"{prefix}.{size}", *values, **common) for size, *values in sizes]


def _gpu_family(prefix: str, gpu_name: str, memory_mib_per_gpu: int, sizes: list[tuple], **common) -> list[InstanceType]:
    """Rows end with the number of GPUs; GPU memory is per GPU times that number."""
    return [InstanceType(f"{prefix}.{size}", *values, gpus=gpus, gpu_name=gpu_name,
                         gpu_memory_mib=memory_mib_per_gpu * gpus, **common) for size, *values, gpus in sizes]


# name.size: vcpu, memory GiB, max pods, price (+ per-type extras via keyword arguments)
CATALOG: dict[str, InstanceType] = {t.name: t for t in [
    *_family("m5", [("large", 2, 8, 29, 0.096), ("xlarge", 4, 16, 58, 0.192), ("2xlarge", 8, 32, 58, 0.384),
                    ("4xlarge", 16, 64, 234, 0.768), ("8xlarge", 32, 128, 234, 1.536),
                    ("12xlarge", 48, 192, 234, 2.304), ("16xlarge", 64, 256, 737, 3.072),
                    ("24xlarge", 96, 384, 737, 4.608)]),
    *_gpu_family("g5", "a10g", 24576, [
        ("xlarge", 4, 16, 58, 1.006, 1), ("2xlarge", 8, 32, 58, 1.212, 1), ("4xlarge", 16, 64, 234, 1.624, 1),
        ("8xlarge", 32, 128, 234, 2.448, 1), ("12xlarge", 48, 192, 737, 5.672, 4),
        ("16xlarge", 64, 256, 234, 4.096, 1), ("24xlarge", 96, 384, 737, 8.144, 4),
        ("48xlarge", 192, 768, 345, 16.288, 8)], cpu_manufacturer="amd"),
    *_gpu_family("g6", "l4", 23034, [
        ("xlarge", 4, 16, 58, 0.805, 1), ("2xlarge", 8, 32, 58, 0.978, 1), ("4xlarge", 16, 64, 234, 1.323, 1),
        ("8xlarge", 32, 128, 234, 2.014, 1), ("12xlarge", 48, 192, 234, 4.602, 4),
        ("16xlarge", 64, 256, 737, 3.397, 1), ("24xlarge", 96, 384, 737, 6.675, 4),
        ("48xlarge", 192, 768, 737, 13.35, 8)], cpu_manufacturer="amd"),
    InstanceType("p4d.24xlarge", 96, 1152, 737, 32.773, gpus=8, gpu_name="a100", gpu_memory_mib=40960 * 8,
                 network_gbps=400),
    InstanceType("trn1.2xlarge", 8, 32, 58, 1.343, neuron_devices=1, neuron_cores_per_device=2,
                 accelerator_name="trainium", network_gbps=12),
    InstanceType("trn1.32xlarge", 128, 512, 247, 21.50, neuron_devices=16, neuron_cores_per_device=2,
                 accelerator_name="trainium", network_gbps=800),
    *[InstanceType(f"inf2.{size}", vcpu, mem, pods, price, neuron_devices=devices, neuron_cores_per_device=2,
                   accelerator_name="inferentia", cpu_manufacturer="amd")
      for size, vcpu, mem, pods, price, devices in [
          ("xlarge", 4, 16, 58, 0.758, 1), ("8xlarge", 32, 128, 234, 1.968, 1),
          ("24xlarge", 96, 384, 737, 6.491, 6), ("48xlarge", 192, 768, 737, 12.981, 12)]],
]}


def get(name: str) -> InstanceType | None:
    """The catalog's entry for an instance type name (None when it is not in the catalog)."""
    return CATALOG.get(name)


def expected_extended_resources(instance: InstanceType) -> dict[str, Fraction]:
    """The extended resources of a node's physical devices: GPUs (``nvidia.com/gpu``) and Neuron
    devices (``aws.amazon.com/neuron``, ``neurondevice``, and ``neuroncore`` = devices x cores).

    What Karpenter expects a new node to register before it calls the node initialized; GPU
    time-slicing replicas and MIG slices come on top, from the device plugin's configuration.
    """
    resources: dict[str, Fraction] = {}
    if instance.gpus:
        resources["nvidia.com/gpu"] = Fraction(instance.gpus)
    if instance.neuron_devices:
        resources["aws.amazon.com/neuron"] = Fraction(instance.neuron_devices)
        resources["aws.amazon.com/neuroncore"] = Fraction(instance.neuron_devices * instance.neuron_cores_per_device)
        resources["aws.amazon.com/neurondevice"] = Fraction(instance.neuron_devices)
    return resources

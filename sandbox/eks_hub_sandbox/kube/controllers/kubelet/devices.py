"""The kubelet's device manager for NVIDIA devices: which device each container got.

A container that asks for ``nvidia.com/gpu`` or ``nvidia.com/mig-*`` (limits: extended
resources are requested through them) gets that many of its node's devices
(:func:`..device_plugins.node_devices`), kept for the pod's life (a restarted container keeps
them) and freed when the pod's processes are gone. Replicas of a time-sliced GPU are handed
out from the GPU with the fewest in use (the NVIDIA plugin's preferred allocation spreads
them); whole GPUs and MIG slices in order. What the container gets is what the plugin's
``Allocate`` answers: ``NVIDIA_VISIBLE_DEVICES`` with the UUIDs, and for the machine's real
GPUs also ``CUDA_VISIBLE_DEVICES`` (the sandbox's processes see every GPU of the machine)
and the device files (:func:`..gpus.device_files`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ...gpus import Device
from ... import quantity
from .commands import ContainerConfigError

NVIDIA_PREFIX = "nvidia.com/"


class DevicesUnavailable(ContainerConfigError):
    """A container asks for more devices than its node has free (the kubelet waits and retries)."""


def requested(container: dict) -> dict[str, int]:
    """The NVIDIA devices a container asks for: resource -> count (from its limits, else requests)."""
    resources = container.get("resources") or {}
    wanted = {**(resources.get("requests") or {}), **(resources.get("limits") or {})}
    return {k: int(quantity.parse(v)) for k, v in wanted.items() if k.startswith(NVIDIA_PREFIX) and quantity.parse(v) > 0}


@dataclass
class DeviceManager:
    """Devices in use per node: node -> pod uid -> container -> devices."""

    assigned: dict[str, dict[str, dict[str, list[Device]]]] = field(default_factory=dict)

    def in_use(self, node: str) -> set[str]:
        return {d.id for pod in self.assigned.get(node, {}).values() for devices in pod.values() for d in devices}

    def allocate(self, node: str, pod_uid: str, container: dict, available: dict[str, list[Device]]) -> list[Device]:
        """The devices of ``container`` (allocated on its first start, the same ones after)."""
        pod = self.assigned.setdefault(node, {}).setdefault(pod_uid, {})
        name = container["name"]
        if name in pod:
            return pod[name]
        chosen: list[Device] = []
        for resource, count in sorted(requested(container).items()):
            used = self.in_use(node) | {d.id for d in chosen}
            free = [d for d in available.get(resource, []) if d.id not in used]
            if len(free) < count:
                raise DevicesUnavailable(
                    f"{resource}: {count} requested, {len(free)} of {len(available.get(resource, []))} free on {node}")
            load = Counter(d.gpu.uuid for pod_devices in self.assigned[node].values()
                           for devices in pod_devices.values() for d in devices)
            for _ in range(count):
                pick = min(free, key=lambda d: (load[d.gpu.uuid], free.index(d)) if "::" in d.id else (0, free.index(d)))
                free.remove(pick)
                load[pick.gpu.uuid] += 1
                chosen.append(pick)
        pod[name] = chosen
        return chosen

    def release(self, pod_uid: str) -> None:
        """Free every device of a pod (its processes are gone)."""
        for pods in self.assigned.values():
            pods.pop(pod_uid, None)


def device_env(devices: list[Device]) -> dict[str, str]:
    """What the NVIDIA device plugin's ``Allocate`` sets in the container for ``devices`` (none: nothing)."""
    if not devices:
        return {}
    visible = list(dict.fromkeys(d.visible for d in devices))
    env = {"NVIDIA_VISIBLE_DEVICES": ",".join(visible)}
    real = list(dict.fromkeys(str(d.gpu.index) for d in devices if d.gpu.real))
    if real:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(real)
    return env

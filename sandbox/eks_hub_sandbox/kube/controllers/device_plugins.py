"""Device plugins: what the NVIDIA and Neuron device plugins register on a node.

NVIDIA (k8s-device-plugin): the configuration is read from a ConfigMap labelled
``app.kubernetes.io/name=nvidia-device-plugin`` (the Helm chart's ConfigMap) or named
``nvidia-device-plugin-configs`` / ``nvidia-device-plugin-config`` / ``time-slicing-config``, in any namespace. Each data
key is one config in the plugin's format (``version: v1``, ``flags.migStrategy``,
``sharing.timeSlicing.resources[].replicas``). A node uses the key named by its
``nvidia.com/device-plugin.config`` label, else ``default``, else ``any``, else the only
key. Without a ConfigMap the plugin runs with defaults (no sharing, no MIG).

- time-slicing: allocatable ``nvidia.com/gpu`` = physical GPUs x replicas (a g5.2xlarge
  with ``replicas: 4`` shows 4); ``rename`` / ``renameByDefault`` give ``<name>.shared``;
- MIG (GPUs the catalog's ``MIG_LAYOUTS`` can partition, i.e. A100 nodes; ``migStrategy: mixed``):
  per-profile resources such as ``nvidia.com/mig-1g.5gb``, laid out by the ``nvidia.com/mig.config``
  node label, one of the catalog's layouts for the GPU (``all-1g.5gb``, ``all-2g.10gb``, ...;
  unlabelled or unknown: ``all-balanced``); ``single`` exposes the slices as ``nvidia.com/gpu``
  (unlabelled: ``all-1g.5gb``);
- GPU feature discovery labels: ``nvidia.com/gpu.count``, ``.product`` (``-SHARED`` appended under
  time-slicing that keeps the name ``nvidia.com/gpu``, as GFD does), ``.replicas``, ``.memory``,
  ``.sharing-strategy``, ``nvidia.com/mig.strategy``, ``nvidia.com/mig.capable``, and on a MIG node
  ``nvidia.com/mig.config.state`` and ``nvidia.com/mig-<profile>.count`` / ``.slices.gi``;
- devices (:mod:`..gpus`): each physical GPU has a UUID (derived from the node's instance, or the
  machine's real GPU when ``nvidia-smi`` is on PATH); a time-slicing replica is ``<uuid>::<n>``,
  a MIG slice ``MIG-...`` of its GPU. The kubelet allocates them to containers
  (:func:`node_devices`) and sets ``NVIDIA_VISIBLE_DEVICES`` as the plugin's ``Allocate`` does.

Neuron (trn1, inf2): ``aws.amazon.com/neuron`` and ``neurondevice`` = devices,
``aws.amazon.com/neuroncore`` = devices x cores per device.
"""

from __future__ import annotations

import copy
import functools
import logging

import yaml

from eks_hub_runbook import instance_types
from eks_hub_runbook.instance_types import InstanceType
from .. import gpus
from .base import Controller

log = logging.getLogger(__name__)

NODES, CONFIGMAPS = ("", "nodes"), ("", "configmaps")
PLUGIN_LABEL = ("app.kubernetes.io/name", "nvidia-device-plugin")
# Names a ConfigMap may have without the label (the chart's `config.name` points at an existing one).
CONFIG_NAMES = ("nvidia-device-plugin-configs", "nvidia-device-plugin-config", "time-slicing-config")
NODE_CONFIG_LABEL = "nvidia.com/device-plugin.config"
MIG_CONFIG_LABEL = "nvidia.com/mig.config"
# The layout a MIG node without a (known) nvidia.com/mig.config label gets, by strategy.
DEFAULT_MIG_LAYOUT = {"mixed": "all-balanced", "single": "all-1g.5gb"}
# GPU names as nvidia-smi prints them (GFD's gpu.product label: spaces as dashes)
GPU_NAMES = {"a10g": "NVIDIA A10G", "l4": "NVIDIA L4", "a100": "NVIDIA A100-SXM4-40GB"}
MANAGED_PREFIXES = ("nvidia.com/", "aws.amazon.com/neuron")
GFD_LABELS = ("nvidia.com/gpu.count", "nvidia.com/gpu.product", "nvidia.com/gpu.replicas",
              "nvidia.com/gpu.sharing-strategy", "nvidia.com/mig.strategy", "nvidia.com/gpu.memory",
              "nvidia.com/mig.capable", "nvidia.com/mig.config.state")
MIG_PROFILE_LABEL_PREFIX = "nvidia.com/mig-"  # nvidia.com/mig-<profile>.count etc. (not mig.config, set by the pool)


def _is_plugin_configmap(cm: dict) -> bool:
    labels = cm["metadata"].get("labels") or {}
    return labels.get(PLUGIN_LABEL[0]) == PLUGIN_LABEL[1] or cm["metadata"]["name"] in CONFIG_NAMES


def parse_config(text: str) -> dict:
    """One device-plugin config document (YAML or JSON); {} when unreadable. Parsed once per text
    (every GPU container's allocation reads it); each caller gets its own copy."""
    return copy.deepcopy(_parsed(text))


@functools.lru_cache(maxsize=32)
def _parsed(text: str) -> dict:
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return {}
    return document if isinstance(document, dict) else {}


def select_config(configmaps: list[dict], node_labels: dict) -> dict:
    """The config document that applies to a node."""
    data: dict[str, str] = {}
    for cm in configmaps:
        data.update(cm.get("data") or {})
    if not data:
        return {}
    for key in (node_labels.get(NODE_CONFIG_LABEL), "default", "any"):
        if key and key in data:
            return parse_config(data[key])
    if len(data) == 1:
        return parse_config(next(iter(data.values())))
    return parse_config(data[sorted(data)[0]])


def _replicas(config: dict, resource: str) -> tuple[int, str]:
    """(replicas, advertised name) of a resource under time-slicing."""
    slicing = ((config.get("sharing") or {}).get("timeSlicing") or {})
    for entry in slicing.get("resources") or []:
        if entry.get("name") == resource:
            replicas = int(entry.get("replicas") or 1)
            renamed = entry.get("rename") or (f"{resource}.shared" if slicing.get("renameByDefault") and replicas > 1 else resource)
            return replicas, renamed
    return 1, resource


def _replicated(gpu: gpus.Gpu, resource: str, replicas: int, visible: str, profile: str = "") -> list[gpus.Device]:
    """The devices of one GPU (or MIG slice): itself, or ``replicas`` time-slicing replicas of it."""
    if replicas <= 1:
        return [gpus.Device(visible, resource, visible, gpu, profile)]
    return [gpus.Device(f"{visible}::{n}", resource, visible, gpu, profile) for n in range(replicas)]


def node_gpus(instance: InstanceType, seed: str, mig: bool, real: list[gpus.Gpu] | None = None) -> list[gpus.Gpu]:
    """A node's physical GPUs: the machine's real ones when there are (MIG nodes stay emulated:
    partitioning a real GPU needs its reset), else the catalog's, with UUIDs derived from ``seed``."""
    real = gpus.real_gpus() if real is None else real
    if real and not mig:
        return list(real)
    name = GPU_NAMES.get(instance.gpu_name, instance.gpu_name.upper())
    return gpus.emulated_gpus(seed, instance.gpus, name, instance.gpu_memory_mib // max(instance.gpus, 1))


def nvidia_devices(instance: InstanceType, config: dict, node_labels: dict, seed: str = "",
                   real: list[gpus.Gpu] | None = None) -> tuple[dict[str, list[gpus.Device]], dict[str, str]]:
    """(devices per extended resource, GPU feature discovery labels) for an NVIDIA node.

    ``seed`` makes the emulated GPUs' UUIDs (:func:`gpus.node_seed`); ``real`` the machine's
    GPUs (default: what ``nvidia-smi`` lists, none without it)."""
    strategy = ((config.get("flags") or {}).get("migStrategy") or "none")
    devices: dict[str, list[gpus.Device]] = {}
    replicas_label, shared_name = 1, "nvidia.com/gpu"
    layouts = instance_types.MIG_LAYOUTS.get(instance.gpu_name, {})
    layout: dict[str, int] = {}
    if layouts and strategy in ("mixed", "single"):
        layout_name = node_labels.get(MIG_CONFIG_LABEL) or DEFAULT_MIG_LAYOUT[strategy]
        layout = layouts.get(layout_name, layouts.get(DEFAULT_MIG_LAYOUT["mixed"], {}))
    else:
        strategy = "none" if strategy not in ("single", "mixed") else strategy
    physical = node_gpus(instance, seed, bool(layout), real)

    def add(resource: str, made: list[gpus.Device]) -> None:
        devices.setdefault(resource, []).extend(made)

    if not layout:
        replicas_label, shared_name = _replicas(config, "nvidia.com/gpu")
        for gpu in physical:
            add(shared_name, _replicated(gpu, shared_name, replicas_label, gpu.uuid))
    else:
        profiles = list(layout.items())[:1] if strategy == "single" else list(layout.items())
        for gpu in physical:
            slot = 0  # the GPU instances of this GPU, across profiles
            for profile, count in profiles:
                resource = "nvidia.com/gpu" if strategy == "single" else f"nvidia.com/mig-{profile}"
                replicas, name = _replicas(config, resource)
                if strategy == "single":
                    replicas_label, shared_name = replicas, name
                for _ in range(count):
                    add(name, _replicated(gpu, name, replicas, gpus.mig_uuid(gpu, slot), profile))
                    slot += 1
    first = physical[0] if physical else None
    product = gpus.product_label(first.name if first else GPU_NAMES.get(instance.gpu_name, ""))
    if replicas_label > 1 and shared_name == "nvidia.com/gpu":
        product += "-SHARED"  # GFD marks a time-sliced GPU that keeps its resource name
    labels = {
        "nvidia.com/gpu.count": str(len(physical)),
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.memory": str(first.memory_mib if first else 0),
        "nvidia.com/gpu.replicas": str(replicas_label),
        "nvidia.com/gpu.sharing-strategy": "time-slicing" if replicas_label > 1 else "none",
        "nvidia.com/mig.strategy": strategy,
    }
    if layouts:
        labels["nvidia.com/mig.capable"] = "true"
    if layout:
        labels["nvidia.com/mig.config.state"] = "success"  # the MIG manager applied the node's layout
        for profile, count in layout.items():
            labels[f"nvidia.com/mig-{profile}.count"] = str(count * len(physical))
            labels[f"nvidia.com/mig-{profile}.slices.gi"] = profile.split("g.")[0]
    return devices, labels


def nvidia_resources(instance: InstanceType, config: dict, node_labels: dict, seed: str = "",
                     real: list[gpus.Gpu] | None = None) -> tuple[dict[str, int], dict[str, str]]:
    """(extended resources, GPU feature discovery labels) for an NVIDIA node: the number of
    devices of each resource (:func:`nvidia_devices`)."""
    devices, labels = nvidia_devices(instance, config, node_labels, seed, real)
    return {name: len(items) for name, items in devices.items()}, labels


def node_devices(node: dict, configmaps: list[dict]) -> dict[str, list[gpus.Device]]:
    """The NVIDIA devices of a node as the plugin advertises them (empty for other nodes);
    what the kubelet allocates from. ``configmaps``: every ConfigMap (the plugin's are picked)."""
    labels = node["metadata"].get("labels") or {}
    instance = instance_types.get(labels.get("node.kubernetes.io/instance-type", ""))
    if instance is None or not instance.gpus:
        return {}
    config = select_config([cm for cm in configmaps if _is_plugin_configmap(cm)], labels)
    return nvidia_devices(instance, config, labels, gpus.node_seed(node))[0]


def neuron_resources(instance: InstanceType) -> dict[str, int]:
    return {"aws.amazon.com/neuron": instance.neuron_devices,
            "aws.amazon.com/neurondevice": instance.neuron_devices,
            "aws.amazon.com/neuroncore": instance.neuron_devices * instance.neuron_cores_per_device}


class DevicePlugins(Controller):
    name = "device-plugins"
    watches = (NODES, CONFIGMAPS)

    def interested(self, key, change) -> bool:
        if key == CONFIGMAPS:
            return _is_plugin_configmap(change.obj)
        return change.type != "DELETED"

    async def reconcile(self) -> None:
        configmaps = [cm for cm in self.cluster.store.list(CONFIGMAPS) if _is_plugin_configmap(cm)]
        for node in self.cluster.store.list(NODES):
            labels = node["metadata"].get("labels") or {}
            instance = instance_types.get(labels.get("node.kubernetes.io/instance-type", ""))
            if instance is None or node["metadata"].get("deletionTimestamp"):
                continue
            resources: dict[str, int] = {}
            gfd: dict[str, str] = {}
            if instance.gpus:
                resources, gfd = nvidia_resources(instance, select_config(configmaps, labels), labels, gpus.node_seed(node))
            if instance.neuron_devices:
                resources.update(neuron_resources(instance))
            if not instance.gpus and not instance.neuron_devices:
                continue
            self._apply(node, resources, gfd)

    def _apply(self, node: dict, resources: dict[str, int], gfd: dict[str, str]) -> None:
        def update(obj: dict):
            status = obj.setdefault("status", {})
            for section in ("capacity", "allocatable"):
                values = status.setdefault(section, {})
                for key in [k for k in values if k.startswith(MANAGED_PREFIXES)]:
                    if key not in resources:
                        del values[key]
                for key, value in resources.items():
                    values[key] = str(value)
            labels = obj["metadata"].setdefault("labels", {})
            for key in [k for k in labels if k.startswith(MIG_PROFILE_LABEL_PREFIX) and k not in gfd]:
                del labels[key]  # a profile of an earlier layout
            for key in GFD_LABELS:
                if key in gfd:
                    labels[key] = gfd[key]
                else:
                    labels.pop(key, None)
            labels.update({k: v for k, v in gfd.items() if k.startswith(MIG_PROFILE_LABEL_PREFIX)})
        self.cluster.mutate(NODES, "", node["metadata"]["name"], update)

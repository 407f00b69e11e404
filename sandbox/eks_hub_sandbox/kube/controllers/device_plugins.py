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
- GPU feature discovery labels: ``nvidia.com/gpu.count``, ``.product``, ``.replicas``,
  ``.sharing-strategy``, ``nvidia.com/mig.strategy``.

Neuron (trn1, inf2): ``aws.amazon.com/neuron`` and ``neurondevice`` = devices,
``aws.amazon.com/neuroncore`` = devices x cores per device.
"""

from __future__ import annotations

import logging

import yaml

from eks_hub_runbook import instance_types
from eks_hub_runbook.instance_types import InstanceType
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
GPU_PRODUCTS = {"a10g": "NVIDIA-A10G", "l4": "NVIDIA-L4", "a100": "NVIDIA-A100-SXM4-40GB"}
MANAGED_PREFIXES = ("nvidia.com/", "aws.amazon.com/neuron")
GFD_LABELS = ("nvidia.com/gpu.count", "nvidia.com/gpu.product", "nvidia.com/gpu.replicas",
              "nvidia.com/gpu.sharing-strategy", "nvidia.com/mig.strategy", "nvidia.com/gpu.memory")


def _is_plugin_configmap(cm: dict) -> bool:
    labels = cm["metadata"].get("labels") or {}
    return labels.get(PLUGIN_LABEL[0]) == PLUGIN_LABEL[1] or cm["metadata"]["name"] in CONFIG_NAMES


def parse_config(text: str) -> dict:
    """One device-plugin config document (YAML or JSON); {} when unreadable."""
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


def nvidia_resources(instance: InstanceType, config: dict, node_labels: dict) -> tuple[dict[str, int], dict[str, str]]:
    """(extended resources, GPU feature discovery labels) for an NVIDIA node."""
    strategy = ((config.get("flags") or {}).get("migStrategy") or "none")
    resources: dict[str, int] = {}
    replicas_label = 1
    layouts = instance_types.MIG_LAYOUTS.get(instance.gpu_name, {})
    if layouts and strategy in ("mixed", "single"):
        layout_name = node_labels.get(MIG_CONFIG_LABEL) or DEFAULT_MIG_LAYOUT[strategy]
        layout = layouts.get(layout_name, layouts.get(DEFAULT_MIG_LAYOUT["mixed"], {}))
        if not layout:
            replicas, name = _replicas(config, "nvidia.com/gpu")
            resources[name] = instance.gpus * replicas
            replicas_label = replicas
        elif strategy == "single":
            profile, count = next(iter(layout.items()))
            replicas, name = _replicas(config, "nvidia.com/gpu")
            resources[name] = instance.gpus * count * replicas
            replicas_label = replicas
        else:
            for profile, count in layout.items():
                replicas, name = _replicas(config, f"nvidia.com/mig-{profile}")
                resources[name] = instance.gpus * count * replicas
    else:
        strategy = "none" if strategy not in ("single", "mixed") else strategy
        replicas, name = _replicas(config, "nvidia.com/gpu")
        resources[name] = instance.gpus * replicas
        replicas_label = replicas
    labels = {
        "nvidia.com/gpu.count": str(instance.gpus),
        "nvidia.com/gpu.product": GPU_PRODUCTS.get(instance.gpu_name, instance.gpu_name.upper()),
        "nvidia.com/gpu.memory": str(instance.gpu_memory_mib // max(instance.gpus, 1)),
        "nvidia.com/gpu.replicas": str(replicas_label),
        "nvidia.com/gpu.sharing-strategy": "time-slicing" if replicas_label > 1 else "none",
        "nvidia.com/mig.strategy": strategy,
    }
    return resources, labels


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
                resources, gfd = nvidia_resources(instance, select_config(configmaps, labels), labels)
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
            for key in GFD_LABELS:
                if key in gfd:
                    labels[key] = gfd[key]
                else:
                    labels.pop(key, None)
        self.cluster.mutate(NODES, "", node["metadata"]["name"], update)

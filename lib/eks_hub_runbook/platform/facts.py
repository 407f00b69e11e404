"""What the platform's own configuration says, for the checks that hold a cluster against it.

The NodePools and EC2NodeClasses, the storage classes and claims, the NVIDIA device plugin's
configurations and the hub's profiles are defined once, in ``terraform/manifests`` and
``terraform/helm-values``; 03_verify, 04_gpu_sharing, the quota table and the browser
walkthrough read them here instead of typing the names again. Only names and constants are
read (no ``${...}`` placeholder is filled in), so no deployment or Terraform output is needed.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from .manifests import MANIFESTS_DIR
from .templating import load_documents, load_yaml
from .values import HELM_VALUES_DIR, JUPYTERHUB_VALUES_DIR

DEVICE_PLUGIN_VALUES = HELM_VALUES_DIR / "nvidia-device-plugin.yaml"
HUB_DATABASE_CLAIM = "hub-db-dir"  # the z2jh chart's name for the hub database's claim


def _objects(group: str, kind: str) -> list[dict]:
    return [doc for path in sorted((MANIFESTS_DIR / group).glob("*.yaml")) for doc in load_documents(path)
            if doc.get("kind") == kind]


def nodepools() -> tuple[str, ...]:
    """The NodePools the platform creates (``manifests/karpenter``)."""
    return tuple(o["metadata"]["name"] for o in _objects("karpenter", "NodePool"))


def nodeclasses() -> tuple[str, ...]:
    """The EC2NodeClasses the platform creates."""
    return tuple(o["metadata"]["name"] for o in _objects("karpenter", "EC2NodeClass"))


def storage_classes() -> dict[str, str]:
    """Storage class -> provisioner, as the platform defines them (``manifests/base``)."""
    return {o["metadata"]["name"]: o["provisioner"] for o in _objects("base", "StorageClass")}


def claims() -> tuple[str, ...]:
    """The claims the platform makes (the EFS homes and shared folder) and the hub database's."""
    return (*(o["metadata"]["name"] for o in _objects("base", "PersistentVolumeClaim")), HUB_DATABASE_CLAIM)


def device_plugin_config_map() -> tuple[str, str]:
    """(namespace, name) of the NVIDIA device plugin's ConfigMap."""
    name = (load_yaml(DEVICE_PLUGIN_VALUES) or {})["config"]["name"]
    (config_map,) = [o for o in _objects("base", "ConfigMap") if o["metadata"]["name"] == name]
    return config_map["metadata"]["namespace"], name


def device_plugin_config_texts() -> dict[str, str]:
    """The device plugin's configurations as its ConfigMap holds them (config name -> YAML text)."""
    _, name = device_plugin_config_map()
    (config_map,) = [o for o in _objects("base", "ConfigMap") if o["metadata"]["name"] == name]
    return dict(config_map.get("data") or {})


def device_plugin_configs() -> dict[str, dict[str, Any]]:
    """The device plugin's configurations (config name -> parsed config)."""
    return {key: yaml.safe_load(text) or {} for key, text in device_plugin_config_texts().items()}


def default_device_plugin_config() -> str:
    """The configuration a GPU node gets unless its label picks another (``config.default``)."""
    return (load_yaml(DEVICE_PLUGIN_VALUES) or {})["config"]["default"]


@functools.cache
def time_slicing_replicas() -> int:
    """How many ``nvidia.com/gpu`` each physical GPU is advertised as under the default config."""
    return replicas_of(default_device_plugin_config())


def profile_list(values_file: Path = JUPYTERHUB_VALUES_DIR / "base.yaml") -> list[dict[str, Any]]:
    """The hub's profiles (``singleuser.profileList`` of the base values; the overlays never change it)."""
    return list(((load_yaml(values_file) or {}).get("singleuser") or {}).get("profileList") or [])


@functools.cache
def default_profile() -> str:
    """The slug of the profile the hub preselects (``default: true``): the walkthrough's GPU profile."""
    defaults = [p["slug"] for p in profile_list() if p.get("default")]
    if len(defaults) != 1:
        raise ValueError(f"the hub's profile list should mark one profile default, not {defaults or 'none'}")
    return defaults[0]


DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"  # the node label that picks a config


def nodepool_objects() -> list[dict]:
    """The NodePools as written in ``manifests/karpenter`` (placeholders left as they are)."""
    return _objects("karpenter", "NodePool")


def replicas_of(config_name: str) -> int:
    """How many ``nvidia.com/gpu`` each physical GPU is advertised as under device plugin config ``config_name``."""
    configs = device_plugin_configs()
    if config_name not in configs:
        raise ValueError(f"no device plugin config {config_name!r} (have: {', '.join(sorted(configs))})")
    for item in ((configs[config_name].get("sharing") or {}).get("timeSlicing") or {}).get("resources") or []:
        if item.get("name") == "nvidia.com/gpu":
            return int(item.get("replicas", 1))
    return 1


def pool_device_plugin_config(pool: dict) -> str:
    """The device plugin config a NodePool's nodes get: their template label, else the default."""
    labels = (((pool.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(DEVICE_PLUGIN_CONFIG_LABEL) or default_device_plugin_config()


def pool_instance_types(pool: dict) -> tuple[str, ...]:
    """The instance types a NodePool's ``node.kubernetes.io/instance-type In`` requirement allows."""
    requirements = (((pool.get("spec") or {}).get("template") or {}).get("spec") or {}).get("requirements") or []
    for requirement in requirements:
        if requirement.get("key") == "node.kubernetes.io/instance-type" and requirement.get("operator") == "In":
            return tuple(requirement.get("values") or ())
    return ()


def time_slicing_pools() -> dict[str, int]:
    """NodePool -> replicas, for the GPU pools whose nodes time-slice their GPUs (replicas > 1)."""
    from .. import instance_types

    pools = {}
    for pool in nodepool_objects():
        types = [instance_types.get(name) for name in pool_instance_types(pool)]
        if not any(t is not None and t.gpus for t in types):
            continue
        replicas = replicas_of(pool_device_plugin_config(pool))
        if replicas > 1:
            pools[pool["metadata"]["name"]] = replicas
    return pools

"""Plain Kubernetes manifests of the platform, rendered from ``terraform/manifests/<group>/``.

Groups are applied at the point of the install plan that names them (``charts.yaml``):
``base`` (namespaces, storage classes, EFS volumes, the single-user service account, the
NVIDIA device plugin config) before any release, ``karpenter`` (NodePools,
EC2NodeClasses, the time-slicing NodeOverlay) once the Karpenter chart has installed its CRDs.

Besides the values' variables, manifests may use those of :func:`manifest_variables`: the
GPU pools' capacity types (``gpu_spot``) and the time-slicing NodeOverlay's figures, read from
the NodePools, the device plugin config and the instance catalog.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from .. import instance_types
from ..errors import PlatformError
from ..params import DeploymentParameters
from ..paths import TERRAFORM_DIR
from . import outputs as tf_outputs
from .templating import load_documents, substitute
from .values import CLIENT_SECRET_NAME, client_secret, variables

MANIFESTS_DIR = TERRAFORM_DIR / "manifests"
# Apply order within a group, as helm orders kinds: what others refer to comes first.
KIND_ORDER = ("Namespace", "StorageClass", "PersistentVolume", "PersistentVolumeClaim", "ServiceAccount",
              "Secret", "ConfigMap", "EC2NodeClass", "NodePool", "NodeOverlay")
ON_DEMAND, SPOT = "on-demand", "spot"


def gpu_capacity_types(params: DeploymentParameters) -> list[str]:
    """``karpenter.sh/capacity-type`` values of the GPU NodePools: on-demand, or spot and
    on-demand with ``gpu_spot`` (Karpenter then prefers the cheaper spot offerings)."""
    return [SPOT, ON_DEMAND] if params.gpu_spot else [ON_DEMAND]


def time_slicing_overlay() -> dict[str, Any]:
    """The figures of the time-slicing NodeOverlay: its pool, the pool's device plugin config and
    instance types, and ``nvidia.com/gpu`` = physical GPUs x replicas of those types.

    Read from ``manifests/karpenter`` (the one GPU pool that time-slices), the device plugin
    config (replicas) and ``instance_types`` (GPUs per type); one overlay declares one capacity,
    so the pool's types must have the same number of GPUs."""
    from . import facts  # facts reads this module's folder

    pools = facts.time_slicing_pools()
    if len(pools) != 1:
        raise PlatformError(f"{MANIFESTS_DIR / 'karpenter'}: the time-slicing NodeOverlay needs exactly one GPU "
                            f"NodePool whose device plugin config time-slices, found {sorted(pools) or 'none'}: "
                            "label one GPU pool nvidia.com/device-plugin.config with a time-slicing config")
    (pool_name, replicas), = pools.items()
    pool = next(p for p in facts.nodepool_objects() if p["metadata"]["name"] == pool_name)
    types = facts.pool_instance_types(pool)
    gpus = {name: instance_types.get(name).gpus for name in types}
    if len(set(gpus.values())) != 1:
        raise PlatformError(f"NodePool {pool_name}: its instance types have different GPU counts ({gpus}); one "
                            "NodeOverlay declares one capacity: keep types with the same GPU count in the pool")
    return {
        "time_slicing_pool": pool_name,
        "time_slicing_config": facts.pool_device_plugin_config(pool),
        "time_slicing_instance_types": list(types),
        "time_slicing_gpus": str(next(iter(gpus.values())) * replicas),
    }


def manifest_variables(params: DeploymentParameters) -> dict[str, Any]:
    """The ``${name}`` variables only manifests use (on top of the values' variables)."""
    return {"gpu_capacity_types": gpu_capacity_types(params), **time_slicing_overlay()}


def groups() -> list[str]:
    """Names of the manifest groups (sub-folders of ``terraform/manifests``)."""
    return sorted(p.name for p in MANIFESTS_DIR.iterdir() if p.is_dir())


def render_group(group: str, params: DeploymentParameters, outputs: Mapping[str, Any],
                 names: Mapping[str, Any] | None = None) -> list[dict]:
    """The objects of one group, filled from the parameters and Terraform outputs, in apply order.

    ``names``: the template variables when the caller has them already (an install context)."""
    folder = MANIFESTS_DIR / group
    if not folder.is_dir():
        raise PlatformError(f"no manifest group '{group}' in {MANIFESTS_DIR} (have: {', '.join(groups())})")
    if names is None:
        outputs = tf_outputs.resolve(params, outputs)
        names = variables(params, outputs)
    names = {**manifest_variables(params), **names}
    objects: list[dict] = []
    for path in sorted(folder.glob("*.yaml")):
        for doc in load_documents(path):
            objects.append(substitute(doc, names, source=str(path)))
    rank = {kind: index for index, kind in enumerate(KIND_ORDER)}
    return sorted(objects, key=lambda obj: rank.get(obj.get("kind"), len(rank)))


def render(params: DeploymentParameters, outputs: Mapping[str, Any]) -> dict[str, list[dict]]:
    """Every group, rendered: ``{group: [objects]}``."""
    return {group: render_group(group, params, outputs) for group in groups()}


def oauth_client_secret(params: DeploymentParameters, outputs: Mapping[str, Any]) -> dict | None:
    """The ``hub-oauth-client`` Secret holding the OAuth client secret (None for dummy).

    The object carries the secret: apply it, never print or record it.
    """
    outputs = tf_outputs.resolve(params, outputs)
    value = client_secret(params, outputs)
    if value is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": CLIENT_SECRET_NAME, "namespace": "jupyterhub"},
        "data": {"client-secret": base64.b64encode(value.encode()).decode()},
    }


def describe(obj: Mapping[str, Any]) -> str:
    """``Kind namespace/name`` (or ``Kind name``) for tables and messages."""
    meta = obj.get("metadata", {})
    where = f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else meta.get("name")
    return f"{obj.get('kind')} {where}"

"""Plain Kubernetes manifests of the platform, rendered from ``terraform/manifests/<group>/``.

Groups are applied at the point of the install plan that names them (``charts.yaml``):
``base`` (namespaces, storage classes, EFS volumes, the single-user service account, the
NVIDIA device plugin config) before any release, ``karpenter`` (NodePools,
EC2NodeClasses) once the Karpenter chart has installed its CRDs.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ..errors import PlatformError
from ..params import DeploymentParameters
from ..paths import TERRAFORM_DIR
from . import outputs as tf_outputs
from .templating import load_documents, substitute
from .values import CLIENT_SECRET_NAME, client_secret, variables

MANIFESTS_DIR = TERRAFORM_DIR / "manifests"
# Apply order within a group, as helm orders kinds: what others refer to comes first.
KIND_ORDER = ("Namespace", "StorageClass", "PersistentVolume", "PersistentVolumeClaim", "ServiceAccount",
              "Secret", "ConfigMap", "EC2NodeClass", "NodePool")


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

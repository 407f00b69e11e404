"""The Terraform outputs the platform reads, normalised and checked in one place.

``terraform output -json`` gives ``{"name": {"value": ..., "sensitive": bool}}``; the
terraform module may also hand over plain ``{"name": value}``. Both are accepted.
A missing output is a :class:`PlatformError` naming it, raised before anything is
installed. Sensitive values (the Cognito client secret) are registered with the
records' redaction so they can never be written to a record or a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import PlatformError
from ..params import DeploymentParameters

# What every deployment needs from Terraform.
REQUIRED = (
    "cluster_name",
    "region",
    "efs_file_system_id",
    "efs_home_access_point_id",
    "efs_shared_access_point_id",
    "karpenter_node_role_name",
    "karpenter_queue_name",
)
# What the cognito login method needs in addition.
COGNITO = (
    "cognito_authorize_url",
    "cognito_token_url",
    "cognito_userinfo_url",
    "cognito_client_id",
    "cognito_client_secret",
)
SENSITIVE = ("cognito_client_secret",)
# Defaults for outputs that name things the platform and Terraform must agree on.
DEFAULTS = {
    "singleuser_service_account": "jupyterhub-singleuser",
    "singleuser_namespace": "jupyterhub",
}


def normalise(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Plain ``{name: value}`` from either output format."""
    plain = {}
    for name, item in raw.items():
        if isinstance(item, Mapping) and "value" in item and set(item) <= {"value", "sensitive", "type"}:
            plain[name] = item["value"]
        else:
            plain[name] = item
    return plain


def required_names(params: DeploymentParameters) -> tuple[str, ...]:
    return REQUIRED + (COGNITO if params.auth == "cognito" else ())


def resolve(params: DeploymentParameters, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Checked outputs for ``params``: defaults filled in, missing ones reported together."""
    outputs = {**DEFAULTS, **{k: v for k, v in normalise(raw).items() if v not in (None, "")}}
    missing = [name for name in required_names(params) if name not in outputs]
    if missing:
        raise PlatformError(
            f"Terraform outputs missing for auth '{params.auth}': {', '.join(missing)}. "
            "Run the Terraform apply step (02_deploy) first, or check terraform/outputs.tf."
        )
    from ..records.redact import register_secret

    for name in SENSITIVE:
        register_secret(outputs.get(name))
    return outputs

"""Terraform input variables from validated deployment parameters.

The root module's variables are rendered into ``terraform.tfvars.json`` in the
deployment's working directory. Secret values never go into that file: they are
passed as ``TF_VAR_<name>`` environment variables of the terraform process only.
"""

from __future__ import annotations

from typing import Any

from ..errors import ParameterError
from ..params import DeploymentParameters

# Module variables that carry secrets, by deployment parameter (none today: the Keycloak
# client secret is used by the platform layer, not by Terraform). Listed here so a secret
# added later is routed through the environment, never through the tfvars file.
SECRET_VARIABLES: dict[str, str] = {}


def render_variables(params: DeploymentParameters, certificate_arn: str = "") -> dict[str, Any]:
    """The non-secret tfvars for ``params`` (``certificate_arn`` overrides the parameter).

    Types 2 and 3 pass the hub domain and the certificate (ARN, else the domain to look
    it up by); type 1 passes neither, so the module creates nothing TLS- or Cognito-related.
    """
    arn = (certificate_arn or params.certificate_arn).strip()
    if arn and not params.uses_domain:
        raise ParameterError("certificate_arn", "is only used with auth cognito or oauth (deployment types 2 and 3)",
                             "drop the certificate ARN, or choose -p auth cognito / oauth")
    variables: dict[str, Any] = {
        "name": params.deployment,
        "region": params.region,
        "jupyter_hub_auth_mechanism": params.auth,
        "kubernetes_version": params.kubernetes_version,
        "public_access_cidrs": list(params.public_access_cidrs),
        "nat_gateway_mode": params.nat_gateway_mode,
        "jupyterhub_domain": params.domain if params.uses_domain else "",
        "acm_certificate_domain": params.certificate_domain if params.uses_domain else "",
        "certificate_arn": arn if params.uses_domain else "",
    }
    return variables


def secret_environment(secrets: dict[str, str]) -> dict[str, str]:
    """``TF_VAR_`` environment entries for secret module variables (by variable name)."""
    unknown = sorted(set(secrets) - set(SECRET_VARIABLES.values()))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} is not a secret variable of the root module")
    return {f"TF_VAR_{name}": value for name, value in secrets.items() if value}

"""Helm values for a deployment: the z2jh values from one base file and two overlays
(login method, exposure type), and the other charts' values, all filled from the
deployment parameters and the Terraform outputs.

Nothing secret is ever part of the values: the OAuth client secret travels in the
``hub-oauth-client`` Secret (see :mod:`.manifests`) and reaches the hub as
``OAUTH_CLIENT_SECRET``, which OAuthenticator reads by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PlatformError
from ..params import DeploymentParameters
from ..paths import TERRAFORM_DIR, write_file
from . import outputs as tf_outputs
from .templating import deep_merge, dump, load_yaml, substitute

HELM_VALUES_DIR = TERRAFORM_DIR / "helm-values"
JUPYTERHUB_VALUES_DIR = HELM_VALUES_DIR / "jupyterhub"
EXPOSURES = {1: "port-forward", 2: "nlb", 3: "nlb"}
PROXY_SERVICE = "proxy-public"  # the z2jh chart's public Service
PORT_FORWARD_PORT = 8080  # the local port of the walkthrough's port-forward
CLIENT_SECRET_NAME = "hub-oauth-client"
CULL_EVERY_MAX = 300  # seconds: the idle culler looks at least every 5 minutes (z2jh's default is 10)


@dataclass(frozen=True)
class LoginEndpoints:
    """The three OAuth2 endpoints GenericOAuthenticator talks to."""

    authorize_url: str
    token_url: str
    userdata_url: str


def hub_namespace() -> str:
    """The namespace of the jupyterhub release (``terraform/charts.yaml``)."""
    from . import charts

    return charts.release("jupyterhub").namespace


def port_forward_command() -> str:
    """The walkthrough's type 1 access: ``kubectl port-forward svc/proxy-public 8080:80 -n jupyterhub``."""
    return f"kubectl port-forward svc/{PROXY_SERVICE} {PORT_FORWARD_PORT}:80 -n {hub_namespace()}"


def exposure(params: DeploymentParameters) -> str:
    """``port-forward`` for deployment type 1, ``nlb`` for types 2 and 3."""
    return EXPOSURES[params.deployment_type]


def jupyterhub_files(auth: str, exposure_name: str) -> list[Path]:
    """The values files for a login method and exposure type, in merge order."""
    files = [
        JUPYTERHUB_VALUES_DIR / "base.yaml",
        JUPYTERHUB_VALUES_DIR / f"auth-{auth}.yaml",
        JUPYTERHUB_VALUES_DIR / f"exposure-{exposure_name}.yaml",
    ]
    for path in files:
        if not path.is_file():
            raise PlatformError(f"values file {path} is missing (login '{auth}', exposure '{exposure_name}')")
    return files


def keycloak_endpoints(host: str, realm: str) -> LoginEndpoints:
    """Keycloak's OpenID Connect endpoints for a realm."""
    base = f"https://{host}/realms/{realm}/protocol/openid-connect"
    return LoginEndpoints(f"{base}/auth", f"{base}/token", f"{base}/userinfo")


def login_endpoints(params: DeploymentParameters, outputs: Mapping[str, Any]) -> LoginEndpoints | None:
    """Where the login method's provider lives on AWS (None for dummy)."""
    if params.auth == "cognito":
        return LoginEndpoints(outputs["cognito_authorize_url"], outputs["cognito_token_url"], outputs["cognito_userinfo_url"])
    if params.auth == "oauth":
        return keycloak_endpoints(params.oauth_domain, params.oauth_realm)
    return None


def oauth_client_id(params: DeploymentParameters, outputs: Mapping[str, Any]) -> str:
    return outputs.get("cognito_client_id", "") if params.auth == "cognito" else params.oauth_client_id


def client_secret(params: DeploymentParameters, outputs: Mapping[str, Any]) -> str | None:
    """The OAuth client secret (cognito: Terraform output; oauth: the secret parameter).

    Returned for the ``hub-oauth-client`` Secret only; never logged or put in values.
    """
    if params.auth == "cognito":
        return outputs["cognito_client_secret"]
    if params.auth == "oauth":
        from ..params import oauth_client_secret
        from ..records.redact import register_secret

        value = oauth_client_secret(params)
        register_secret(value)
        return value
    return None


def certificate_arn(params: DeploymentParameters, outputs: Mapping[str, Any]) -> str:
    """The ACM certificate for the NLB: the parameter, a Terraform output, or 01_certificate's record."""
    from ..aws import acm

    arn = params.certificate_arn or outputs.get("certificate_arn", "") or (acm.recorded_arn(params) if params.uses_domain else "")
    if not arn and params.uses_domain:
        raise PlatformError(
            f"deployment type {params.deployment_type} needs an ACM certificate for the NLB: "
            "run 01_certificate, or pass -p certificate_arn arn:aws:acm:..."
        )
    return arn


def cull_timeout_seconds(minutes: float) -> int:
    """The idle culler's ``--timeout`` (whole seconds, at least 1) for ``cull_timeout_minutes``.

    The culler takes an integer; 0 minutes means culling is off (see :func:`cull_variables`)."""
    if minutes < 0:
        raise PlatformError(f"cull_timeout_minutes must be 0 (never cull) or positive, got {minutes:g}")
    return max(1, round(minutes * 60))


def cull_every_seconds(timeout: int) -> int:
    """How often the culler looks (``--cull-every``): half the timeout, at most
    :data:`CULL_EVERY_MAX` s, at least 1 s, so an idle server goes within 1.5 timeouts."""
    return max(1, min(CULL_EVERY_MAX, timeout // 2))


def cull_variables(params: DeploymentParameters) -> dict[str, Any]:
    """``cull_enabled``, ``cull_timeout`` and ``cull_every`` for the values' ``cull`` block,
    from the 02 parameter ``cull_timeout_minutes`` (0: culling off, timeout and interval unset)."""
    minutes = params.cull_timeout_minutes
    if not minutes:
        return {"cull_enabled": False, "cull_timeout": None, "cull_every": None}
    timeout = cull_timeout_seconds(minutes)
    return {"cull_enabled": True, "cull_timeout": timeout, "cull_every": cull_every_seconds(timeout)}


def variables(
    params: DeploymentParameters,
    outputs: Mapping[str, Any],
    *,
    hub_url: str | None = None,
    endpoints: LoginEndpoints | None = None,
) -> dict[str, Any]:
    """Every ``${name}`` the values files and manifests may use.

    ``hub_url`` and ``endpoints`` replace the public hub URL and the provider's endpoints:
    the sandbox passes its local hub and OpenID Connect provider here; nothing else differs.
    """
    endpoints = endpoints or login_endpoints(params, outputs)
    callback = f"{hub_url.rstrip('/')}/hub/oauth_callback" if hub_url else params.hub_callback_url
    names = dict(outputs)
    names.update(
        cluster_name=outputs.get("cluster_name", params.cluster_name),
        region=outputs.get("region", params.region),
        allowed_users=list(params.allowed_users),
        admin_users=list(params.admin_users),
        allow_all=params.allow_all,
        domain=params.domain,
        certificate_arn=certificate_arn(params, outputs) if params.uses_domain else "",
        oauth_client_id=oauth_client_id(params, outputs),
        oauth_callback_url=callback,
        username_claim=params.oauth_username_claim,
        authorize_url=endpoints.authorize_url if endpoints else "",
        token_url=endpoints.token_url if endpoints else "",
        userdata_url=endpoints.userdata_url if endpoints else "",
        **cull_variables(params),
    )
    names.setdefault("karpenter_discovery_tag", names["cluster_name"])
    names.pop("cognito_client_secret", None)  # never a template variable
    return names


def jupyterhub_values(
    params: DeploymentParameters,
    outputs: Mapping[str, Any],
    *,
    hub_url: str | None = None,
    endpoints: LoginEndpoints | None = None,
    names: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The z2jh values for ``params``: base + ``auth-<auth>`` + ``exposure-<type>``, filled in.

    ``names``: the template variables when the caller has them already (an install context)."""
    if names is None:
        outputs = tf_outputs.resolve(params, outputs)
        names = variables(params, outputs, hub_url=hub_url, endpoints=endpoints)
    merged: dict[str, Any] = {}
    for path in jupyterhub_files(params.auth, exposure(params)):
        merged = deep_merge(merged, substitute(load_yaml(path) or {}, names, source=str(path)))
    return merged


def release_values(values_file: str, params: DeploymentParameters, outputs: Mapping[str, Any],
                   names: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Values of a non-hub release (``values_file`` relative to ``terraform/``), filled in."""
    path = TERRAFORM_DIR / values_file
    if names is None:
        names = variables(params, tf_outputs.resolve(params, outputs))
    return substitute(load_yaml(path) or {}, names, source=str(path))


def write_values(values: Mapping[str, Any], path: Path) -> Path:
    """Write values for ``helm --values``: mode 0600, in the git-ignored state folder."""
    return write_file(path, dump(dict(values)), private=True)


def reach_instructions(params: DeploymentParameters) -> str:
    """How a person reaches the hub on AWS for this deployment type."""
    if params.deployment_type == 1:
        return f"{port_forward_command()}  then open http://localhost:{PORT_FORWARD_PORT}"
    return (
        f"create a CNAME record {params.domain}. pointing at the load balancer's DNS name "
        f"(kubectl get svc proxy-public -n jupyterhub), then open https://{params.domain}"
    )

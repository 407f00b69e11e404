"""What must be in place before a deployment: tools, credentials or sandbox, parameters.

Every check is a row ``{"check", "needed", "found", "status"}`` with status
``pass``, ``fail``, ``warn`` or ``info`` so the notebook can show one table and stop
on the first failure. The tools are the ones the target's notebooks run (``Target.tools``:
terraform, kubectl and helm for AWS, which also needs working credentials; terraform for
the sandbox, which applies the same module against its local AWS); a target's local
services are started here if they are not running.
"""

from __future__ import annotations

import os

from . import targets
from .errors import PrerequisiteError
from .params import DEPLOYMENT_TYPES, SECRET_ENV, DeploymentParameters
from .tools import TOOLS, problem, tool_version, version_tuple


def _row(check: str, needed: str, found: str, status: str) -> dict[str, str]:
    return {"check": check, "needed": needed, "found": found, "status": status}


def tool_rows(params: DeploymentParameters) -> list[dict[str, str]]:
    """Version checks of the tools the target needs (kubectl also against the cluster version)."""
    rows = []
    needed_tools = targets.of(params).tools
    for tool in TOOLS:
        if tool.name not in needed_tools:
            continue
        minimum = tool.minimum()
        if tool.name == "kubectl":
            # kubectl supports one minor version of skew either side of the API server.
            major, minor = version_tuple(params.kubernetes_version)[:2]
            minimum = max(minimum, (major, minor - 1))
        needed = ">= " + ".".join(map(str, minimum))
        found = tool_version(tool)
        if found is None:
            rows.append(_row(tool.name, needed, "not found", "fail"))
        elif problem(tool, found, minimum):
            rows.append(_row(tool.name, needed, f"{found} (too old; see {tool.install})", "fail"))
        else:
            rows.append(_row(tool.name, needed, found, "pass"))
    return rows


def service_rows(params: DeploymentParameters, start: bool = True, hub_tools: bool = True) -> list[dict[str, str]]:
    """The target's local services (started when ``start``; see ``Target.service_rows``)."""
    return targets.of(params).service_rows(params, start, hub_tools)


def secret_rows(params: DeploymentParameters) -> list[dict[str, str]]:
    """Secrets the deployment type needs, read from the environment (values never shown)."""
    if params.auth != "oauth":
        return []
    env_name = SECRET_ENV["oauth_client_secret"]
    present = bool(os.environ.get(env_name))
    if present:
        return [_row("OAuth client secret", f"${env_name}", "set (not shown)", "pass")]
    target = targets.of(params)
    if "oauth_client_secret" in target.makes_secrets:
        return [_row("OAuth client secret", f"${env_name}",
                     f"not set: generated for the {target.name} ({target.name} default, not shown)", "pass")]
    return [_row("OAuth client secret", f"${env_name}", f"not set: export {env_name}=...", "fail")]


def deployment_type_rows(params: DeploymentParameters) -> list[dict[str, str]]:
    """The three deployment types, what each requires, and which one this deployment is."""
    required = {
        "dummy": "region",
        "cognito": "region, domain, certificate (01_certificate or certificate_arn), allowed_users or allow_all",
        "oauth": "as cognito + oauth_domain, oauth_client_id, $" + SECRET_ENV["oauth_client_secret"],
    }
    reached = {
        "dummy": "kubectl port-forward (sandbox: a local URL)",
        "cognito": "https://<domain> via NLB + TLS, Cognito hosted UI",
        "oauth": "https://<domain> via NLB + TLS, Keycloak-style OIDC",
    }
    return [
        {
            "type": str(number),
            "auth": auth,
            "hub reached by": reached[auth],
            "requires": required[auth],
            "chosen": "<- this deployment" if auth == params.auth else "",
        }
        for auth, number in DEPLOYMENT_TYPES.items()
    ]


def parameter_rows(params: DeploymentParameters) -> list[dict[str, str]]:
    """The chosen deployment type's required parameters, with their (validated) values."""
    rows = [_row("parameters", f"deployment type {params.deployment_type} ({params.auth})", "valid", "pass")]
    if params.uses_domain:
        rows.append(_row("hub domain", "a DNS name", params.domain, "pass"))
        rows.append(_row("certificate domain", f"covers {params.domain}", params.certificate_domain, "pass"))
    if params.auth == "oauth":
        rows.append(_row("OAuth provider", "host + client id", f"{params.oauth_domain}, client {params.oauth_client_id}", "pass"))
    return rows


def check(params: DeploymentParameters, start_services: bool = True) -> list[dict[str, str]]:
    """Every local prerequisite as rows: parameters, tools, the target's local services, secrets."""
    return [*parameter_rows(params), *tool_rows(params), *service_rows(params, start_services), *secret_rows(params)]


def require(rows: list[dict]) -> None:
    """Raise ``PrerequisiteError`` naming every failed check (rows of any of the tables)."""
    failed = [str(r.get("check") or r.get("family") or r) for r in rows if r.get("status") == "fail"]
    if failed:
        raise PrerequisiteError(f"{len(failed)} prerequisite check(s) failed: {', '.join(failed)}. "
                                "Fix them (see the 'found' column) and run this notebook again.")


def cost_note(params: DeploymentParameters, estimate) -> str:
    """Markdown: the estimate's per-hour total (``estimate``: a :class:`~eks_hub_runbook.cost.Estimate`),
    with one node of the walkthrough's GPU profile, and whether this target bills it."""
    from .aws.quotas import DEMO_PROFILE

    text = estimate.summary(DEMO_PROFILE)
    if not targets.of(params).billable:
        text += (f" **The {params.target} itself costs nothing**: these are the prices the same deployment would have "
                 f"on AWS in {params.region}.")
    return text


def summary(local: list[dict], where: list[dict], quota_rows: list[dict]) -> list[dict[str, str]]:
    """The notebook's closing table: every check of the three tables as ``area, check, status, detail``.

    Quota rows that fail or warn carry the command that requests the increase.
    """
    from .aws.quotas import increase_hint

    rows = [{"area": "local", "check": r["check"], "status": r["status"], "detail": r["found"]} for r in local]
    rows += [{"area": "AWS", "check": r["check"], "status": r["status"], "detail": r["detail"]} for r in where]
    for r in quota_rows:
        detail = f"{r['limit (vCPU)']} of {r['needed (vCPU)']} vCPUs ({r['source']})"
        if r["status"] in ("fail", "warn"):
            detail += f"; raise it: {increase_hint(r)}"
        rows.append({"area": "quota", "check": f"{r['family']} instances", "status": r["status"], "detail": detail})
    return rows

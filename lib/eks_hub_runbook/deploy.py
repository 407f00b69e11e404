"""02_deploy's orchestration: Terraform (staged, retried) -> platform install -> how to reach the hub.

The pieces belong to other modules (:mod:`.terraform`, :mod:`.platform`, :mod:`.aws.acm`);
this module only strings them together the way the walkthrough does and turns the
results into rows for the notebook's tables:

- ``certificate`` the ACM certificate to use (recorded by 01_certificate, given, or on
  the sandbox created now so a fresh clone works);
- ``workspace`` / ``plan_summary`` the Terraform variables and what a plan would change;
- ``stop_if_plan_only`` with ``plan_only``: what the apply would create and cost, then the notebook stops;
- ``apply`` the staged apply with a live progress display;
- ``install_platform`` helm releases and manifests (EKS) or their sandbox equivalent;
- ``access`` how to reach the hub: type 1 the port-forward command (sandbox: the URL),
  types 2/3 the load balancer's DNS name and the CNAME record to create (optionally
  created in a Route 53 zone);
- ``hub_endpoint`` a context manager yielding a URL this process can reach the hub at
  (03_verify and 04_gpu_sharing use it).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from . import targets
from .aws import acm
from .aws.session import client
from .errors import ParameterError, PlatformError, RunbookError
from .params import DeploymentParameters

ProgressCallback = Callable[[str, str, str], None]


# --------------------------------------------------------------------------- certificate + terraform


PLANNED_CERTIFICATE_ID = "00000000-0000-0000-0000-000000000000"  # the certificate a plan_only run does not import


def certificate(params: DeploymentParameters, plan_only: bool = False) -> str:
    """The ACM certificate ARN for types 2/3 ('' for type 1); see :func:`acm.ensure_certificate`.

    With ``plan_only`` nothing is imported: where the target would make a certificate now (the
    sandbox, when none is recorded or the recorded one is gone), the plan gets an ARN of the
    right shape (:func:`planned_certificate_arn`) instead. That is harmless: the module uses a
    given ARN in no resource, only in its ``certificate_arn`` output, and the plan is never applied.
    """
    recorded = acm.recorded_arn(params)
    if plan_only and params.uses_domain and not params.certificate_arn and targets.of(params).makes_certificates:
        if recorded:
            try:
                acm.check_arn(params, recorded)
                return recorded
            except ParameterError:
                pass
        return planned_certificate_arn(params)
    return acm.ensure_certificate(params, recorded)


def planned_certificate_arn(params: DeploymentParameters) -> str:
    """An ACM ARN in the deployment's account and region that stands for the certificate the apply would import."""
    account = client("sts", params.target, params.region).get_caller_identity()["Account"]
    return f"arn:aws:acm:{params.region}:{account}:certificate/{PLANNED_CERTIFICATE_ID}"


def workspace(params: DeploymentParameters, certificate_arn: str = ""):
    """The Terraform working directory with the variables rendered (nothing applied)."""
    from . import terraform

    return terraform.prepare(params, certificate_arn=certificate_arn)


def variable_rows(ws) -> list[dict[str, str]]:
    """The rendered ``terraform.tfvars.json`` as rows (no secrets are ever in it)."""
    import json

    from .terraform.workspace import TFVARS_FILE

    variables = json.loads((ws.directory / TFVARS_FILE).read_text())
    return [{"variable": k, "value": ", ".join(map(str, v)) if isinstance(v, list) else str(v)}
            for k, v in sorted(variables.items())]


def plan(ws):
    """``terraform plan`` for the workspace (nothing changes): a :class:`terraform.Plan`."""
    from . import terraform

    return terraform.plan(ws, log=None)


def plan_summary(plan) -> list[dict[str, Any]]:
    """A plan's changes grouped by resource type and action (a readable summary of ~60 rows)."""
    counts: Counter[tuple[str, str]] = Counter()
    for change in plan.changes:
        address = re.sub(r"\[[^\]]*\]", "", change.address)
        parts = [p for p in address.split(".") if p]
        resource_type = next((p for p in parts if p.startswith("aws_") or p.startswith("terraform_")), parts[0] if parts else "?")
        counts[(resource_type, change.action)] += 1
    rows = [{"resource type": t, "action": a, "count": n} for (t, a), n in sorted(counts.items())]
    return rows or [{"resource type": "(all)", "action": "no changes", "count": 0}]


def plan_only_note(plan, estimate) -> str:
    """Markdown: a plan_only run created nothing; what the apply would create (by type) and cost
    (``estimate``: :func:`eks_hub_runbook.cost.estimate`)."""
    created = [row for row in plan_summary(plan) if row["action"] == "create"]
    total = sum(row["count"] for row in created)
    biggest = sorted(created, key=lambda r: (-r["count"], r["resource type"]))[:6]
    by_type = ", ".join(f"{r['count']} {r['resource type']}" for r in biggest)
    more = f" and {total - sum(r['count'] for r in biggest)} more" if len(created) > len(biggest) else ""
    return (f"**plan_only: nothing was created, and the notebook stops here.** The apply would create {total} "
            f"resources of {len(created)} types ({by_type}{more}; the table above lists them all), and then the "
            f"platform on the cluster. {estimate.summary()} Run again with `plan_only = False` to deploy.")


def stop_if_plan_only(params: DeploymentParameters, plan, plan_only: bool) -> None:
    """With ``plan_only``: show what the apply would create and what it would cost per hour (fixed part and
    per profile), then stop the notebook with ``SystemExit(0)``, which papermill and the runner record as a
    success and which ends JupyterLab's Run All here. Without ``plan_only``: nothing."""
    if not plan_only:
        return
    import warnings

    from IPython.display import display

    from . import cost
    from .notebook.display import note, table

    estimate = cost.estimate(params)
    note(plan_only_note(plan, estimate))
    display(table(estimate.fixed, index="item"))
    display(table(estimate.profiles, index="profile"))
    # IPython adds "To exit: use 'exit', 'quit', or Ctrl-D." to a SystemExit: not what a stop after a plan means.
    warnings.filterwarnings("ignore", message="To exit: use 'exit', 'quit', or Ctrl-D.")
    raise SystemExit(0)


def stage_names() -> list[str]:
    """The staged apply's stage names, in order (for a progress display)."""
    from . import terraform

    return [stage.name for stage in terraform.APPLY_STAGES]


# The plan after the apply, started in the background as the apply ends (see apply), by working directory.
_PLANS_AFTER_APPLY: dict[Path, Any] = {}


def convergence_rows(ws) -> list[dict[str, str]]:
    """A second plan right after the apply must find nothing to change (no drift).

    That plan is the full, refreshing ``terraform plan`` :func:`apply` started as it finished, which
    has run while the notebook went on (outputs, platform); it is used when nothing it depends on
    changed since (state, variables, configuration) and it is recent, else a plan is made now."""
    pending = _PLANS_AFTER_APPLY.pop(Path(ws.directory), None) if hasattr(ws, "directory") else None
    made = pending.result() if pending is not None else None
    changes = (made if made is not None else plan(ws)).changes
    return [{"check": "plan after apply", "status": "fail" if changes else "pass",
             "detail": f"{len(changes)} change(s): " + ", ".join(c.address for c in changes[:5]) if changes
             else "no changes: re-running this notebook converges"}]


def certificate_rows(params: DeploymentParameters, certificate_arn: str) -> list[dict[str, str]]:
    """The certificate the load balancer will use, as ACM lists it (type 1: none)."""
    if not params.uses_domain:
        return [{"field": "certificate", "value": "none: deployment type 1 is reached by port-forward"}]
    if certificate_arn.endswith(PLANNED_CERTIFICATE_ID):
        return [{"field": "ARN", "value": certificate_arn},
                {"field": "status", "value": f"not imported (plan_only): the apply would make a self-signed certificate "
                                             f"for {params.certificate_domain} and import it"}]
    return [{"field": "ARN", "value": certificate_arn}, *acm.describe(params, certificate_arn)]


def preflight(params: DeploymentParameters) -> None:
    """Read-only checks for the validation cell, before Terraform runs.

    The secret the login method needs is set (or made by the target); types 2/3 have a
    usable ACM certificate (given, or recorded by 01_certificate) unless the target makes
    one. Raises ``ParameterError``. The target's local services are started if they are not
    running (so this notebook works on a fresh clone without 00_prerequisites); nothing is
    created.
    """
    from . import targets
    from .notebook.display import require_pass

    target = targets.of(params)
    if params.auth == "oauth":
        from .params import oauth_client_secret

        oauth_client_secret(params)
    require_pass(target.service_rows(params), "local services", name_column="check")
    if params.uses_domain and not target.makes_certificates:
        arn = acm.recorded_arn(params)
        if not arn:
            raise ParameterError("certificate_arn", f"auth '{params.auth}' needs an ACM certificate for {params.domain} and none was recorded",
                                 "run 01_certificate for this deployment first, or pass -p certificate_arn arn:aws:acm:...")
        acm.check_arn(params, arn)


class _StageLog:
    """Turns the Terraform runner's log lines into progress updates per stage.

    The runner announces each run with ``=== <title> (<time>)``; a new stage means the
    previous one succeeded (failures raise, and the progress display marks the running
    stage failed). Everything else is detail for the current stage.
    """

    def __init__(self, progress: ProgressCallback, verb: str):
        self.progress = progress
        self.verb = verb
        self.current = ""

    def __call__(self, line: str) -> None:
        match = re.match(rf"^=== {self.verb}: (.+?)(?: \(attempt \d+\))?(?: \((\d{{4}}-.*)\)|: (\d+) done.*)$", line)
        if match:
            stage = match.group(1)
            if match.group(2) is not None and stage != self.current:
                # A stage starts: the previous one finished (a failure raises instead).
                if self.current:
                    self.progress(self.current, "done", "")
                self.current = stage
                self.progress(stage, "running", "")
            return
        if self.current and line.strip():
            self.progress(self.current, "running", line.strip()[:160])


def apply(ws, progress: ProgressCallback | None = None) -> list[dict[str, Any]]:
    """Staged apply (network, cluster, everything), retried on transient errors. Rows per stage.

    Then the strays of an earlier apply killed mid-create are deleted (:func:`.aws.sweep.strays`: a
    VPC, subnet, gateway or KMS key AWS made but the state never recorded, which the resume made
    again); a last row says how many, when there were any. Last, the plan after the apply that
    :func:`convergence_rows` checks is started in the background, so that it runs while the
    notebook reads the outputs and installs the platform."""
    from . import terraform

    report = progress or (lambda *_: None)
    results = terraform.deploy(ws, log=_StageLog(report, "apply"), bar=False)
    rows = [r.as_row() for r in results] + remove_strays(ws)
    start_plan_after_apply(ws)
    return rows


def start_plan_after_apply(ws) -> None:
    """Start the plan :func:`convergence_rows` checks (:class:`terraform.BackgroundPlan`), replacing
    one started earlier for the same working directory."""
    from . import terraform

    _PLANS_AFTER_APPLY[Path(ws.directory)] = terraform.BackgroundPlan(ws)


def remove_strays(ws) -> list[dict[str, Any]]:
    """Delete what an earlier apply, SIGKILLed mid-create, left in AWS unrecorded and the resume made
    again (:func:`.aws.sweep.strays`); call it once the apply succeeded. One stage row when there
    were strays, none otherwise; a stray that cannot be deleted raises, naming it."""
    from . import terraform
    from .aws import sweep

    started = time.monotonic()
    swept = sweep.sweep_strays(ws.deployment, ws.target, ws.region, terraform.state_ids(ws))
    if not swept:
        return []
    for row in swept:
        print(f"stray {row['service']} {row['kind']} {row['id']}: {row['result']}", flush=True)
    failed = [row for row in swept if row["result"] not in ("deleted", "gone")]
    if failed:
        raise RunbookError(f"could not delete {len(failed)} stray resource(s) an interrupted apply left: "
                           + ", ".join(f"{r['kind']} {r['id']} ({r['result']})" for r in failed)
                           + ". Fix: run this notebook again, or delete them by hand (05_cleanup's sweep also does).")
    return [{"stage": "strays", "command": "sweep", "resources": len(swept), "attempts": 1,
             "seconds": round(time.monotonic() - started, 1)}]


def outputs(ws):
    """Terraform outputs (sensitive ones masked in their ``public()`` view), read from the state."""
    from . import terraform

    return terraform.output(ws)


def output_rows(tf_outputs) -> list[dict[str, Any]]:
    """Public outputs as rows for a table (sensitive values masked)."""
    return [{"output": k, "value": ", ".join(map(str, v)) if isinstance(v, list) else v}
            for k, v in sorted(tf_outputs.public().items()) if not k.endswith("_data")]


# --------------------------------------------------------------------------- platform


def kubeconfig(params: DeploymentParameters, just_created: bool = False) -> Path:
    """A kubeconfig for the deployment's cluster, built from EKS ``DescribeCluster`` (both targets).

    ``just_created``: Terraform created the cluster moments ago (EKS may not list it yet).
    """
    from .aws import eks

    return eks.write_kubeconfig(params, just_created=just_created)


def install_platform(params: DeploymentParameters, tf_outputs: Mapping[str, Any],
                     progress: ProgressCallback | None = None) -> list[dict[str, Any]]:
    """Install the platform (:func:`platform.install.install`). Rows per step."""
    from .platform import install

    report = progress or (lambda *_: None)
    report("platform", "running", "helm releases and manifests")
    rows = install.install(params, tf_outputs, kubeconfig(params, just_created=True))
    report("platform", "done", "")
    return rows


# --------------------------------------------------------------------------- reaching the hub


@dataclass
class Access:
    """How people reach the hub of a deployment."""

    params: DeploymentParameters
    hub_url: str
    load_balancer: str = ""
    dns_record: str = ""
    dns_created: str = ""

    def rows(self) -> list[dict[str, str]]:
        p = self.params
        rows = [{"item": "deployment type", "value": f"{p.deployment_type} ({p.auth})"}]
        target = targets.of(p)
        local = self.hub_url if target.local_hub_url(p) else ""  # the target serves the hub on this machine
        if p.deployment_type == 1:
            from .platform.values import PORT_FORWARD_PORT, port_forward_command

            if local:
                rows.append({"item": "open the hub", "value": local})
                rows.append({"item": "on EKS you would run",
                             "value": f"{port_forward_command()}  then open http://localhost:{PORT_FORWARD_PORT}"})
            else:
                rows.append({"item": "1. forward a local port", "value": port_forward_command()})
                rows.append({"item": "2. open the hub", "value": f"http://localhost:{PORT_FORWARD_PORT}"})
            rows.append({"item": "log in", "value": "any user name in allowed_users (e.g. user-1), any password"})
            return rows
        rows.append({"item": "load balancer DNS name", "value": self.load_balancer or "(not provisioned yet)"})
        rows.append({"item": "DNS record to create", "value": self.dns_record})
        rows.append({"item": "note", "value": "the record's target ends with a dot: it is a fully qualified name "
                                               "(some DNS consoles add it, some need it typed)"})
        if self.dns_created:
            rows.append({"item": "Route 53", "value": self.dns_created})
        if local:
            rows.append({"item": f"open the hub ({target.name})", "value": local})
        rows.append({"item": "open the hub", "value": f"https://{p.domain}"})
        rows.append({"item": "log in", "value": "through Cognito's hosted UI" if p.auth == "cognito"
                     else f"through the identity provider at {p.oauth_domain}"})
        return rows


def load_balancer_hostname(params: DeploymentParameters, timeout: float = 0.0) -> str:
    """DNS name of the ``proxy-public`` Service's load balancer ('' if there is none yet)."""
    from kubernetes import client as k8s

    from .platform.install import api_client
    from .platform.values import PROXY_SERVICE, hub_namespace

    api = k8s.CoreV1Api(api_client(kubeconfig(params)))
    deadline = time.monotonic() + timeout
    while True:
        try:
            service = api.read_namespaced_service(PROXY_SERVICE, hub_namespace())
            ingress = (service.status.load_balancer.ingress if service.status and service.status.load_balancer else None) or []
            names = [i.hostname or i.ip for i in ingress if i.hostname or i.ip]
            if names:
                return names[0]
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise PlatformError(f"cannot read service {hub_namespace()}/{PROXY_SERVICE}: HTTP {exc.status}") from None
        if time.monotonic() >= deadline:
            return ""
        time.sleep(1)


def cname_record(domain: str, target: str) -> str:
    """The CNAME record in zone-file form, both names fully qualified (trailing dots)."""
    return f"{domain.rstrip('.')}. 300 IN CNAME {target.rstrip('.')}." if target else f"{domain.rstrip('.')}. CNAME <load balancer DNS name>."


def create_dns_record(params: DeploymentParameters, zone_id: str, target: str) -> str:
    """UPSERT the hub's CNAME in a Route 53 hosted zone; returns what was done."""
    if not zone_id:
        return ""
    if not target:
        raise PlatformError("the load balancer has no DNS name yet: re-run this cell in a minute")
    route53 = client("route53", params.target, params.region)
    try:
        zone = route53.get_hosted_zone(Id=zone_id)["HostedZone"]
    except route53.exceptions.NoSuchHostedZone:
        raise ParameterError("route53_zone_id", f"{zone_id} is not a hosted zone of this account",
                             "give the zone's id (aws route53 list-hosted-zones), or leave it empty") from None
    zone_name = zone["Name"].rstrip(".")
    if not (params.domain == zone_name or params.domain.endswith("." + zone_name)):
        raise ParameterError("route53_zone_id", f"zone {zone_name} cannot hold {params.domain}",
                             "give the zone of the hub's parent domain")
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{
        "Action": "UPSERT",
        "ResourceRecordSet": {"Name": params.domain + ".", "Type": "CNAME", "TTL": 300,
                              "ResourceRecords": [{"Value": target.rstrip(".") + "."}]},
    }]})
    return f"CNAME {params.domain} -> {target} upserted in zone {zone_name}"


def hub_url(params: DeploymentParameters) -> str:
    """The URL people open (the target's: a local URL, or the AWS one for the deployment type)."""
    from . import targets

    return targets.of(params).hub_url(params)


def access(params: DeploymentParameters, route53_zone_id: str = "", wait_seconds: float = 300.0) -> Access:
    """How to reach the hub; optionally creates the CNAME in Route 53 (types 2/3). With a domain it
    waits (up to ``wait_seconds``) for the load balancer's DNS name, which the AWS Load Balancer
    Controller sets on ``proxy-public`` within a minute or so of the platform's install: the CNAME
    needs it, and a cell right after the install would otherwise show it "not provisioned yet"."""
    result = Access(params, hub_url(params))
    if params.uses_domain:
        result.load_balancer = load_balancer_hostname(params, timeout=wait_seconds)
        result.dns_record = cname_record(params.domain, result.load_balancer)
        result.dns_created = create_dns_record(params, route53_zone_id, result.load_balancer)
    return result


def hub_endpoint(params: DeploymentParameters):
    """A context manager yielding ``(url, verify)`` where this process reaches the hub (see
    ``Target.hub_endpoint``: on AWS a port-forward for type 1, the domain for types 2/3)."""
    from . import targets

    return targets.of(params).hub_endpoint(params)

"""deploy.py: 02_deploy's orchestration (certificate, Terraform workspace, plan summary, staged apply
with progress, platform install) and how people reach the hub (port-forward, load balancer, CNAME).

Unit tests use the ``aws`` target with Terraform, ACM, Route 53 and the cluster replaced by fakes;
the one sandbox test reads the rows of the sandbox's own hub URL.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from eks_hub_runbook import deploy, records, tls
from eks_hub_runbook.errors import ParameterError, PlatformError
from eks_hub_runbook.notebook import Progress
from eks_hub_runbook.params import resolve

ARN = "arn:aws:acm:us-west-2:123456789012:certificate/12345678-1234-1234-1234-123456789012"
COGNITO = dict(auth="cognito", domain="hub.example.com")
OAUTH = dict(auth="oauth", domain="hub.example.com", oauth_domain="kc.example.com", oauth_client_id="jupyterhub")


# --------------------------------------------------------------------------- certificate + terraform


def test_certificate_passes_the_arn_01_certificate_recorded(monkeypatch):
    asked = []
    monkeypatch.setattr(deploy.acm, "ensure_certificate", lambda params, recalled: asked.append(recalled) or "arn:chosen")
    params = resolve(target="aws", deployment="cert-recorded", **COGNITO)
    assert deploy.certificate(params) == "arn:chosen" and asked == [""]  # nothing recorded yet
    records.remember("cert-recorded", "certificate_arn", ARN)
    assert deploy.certificate(params) == "arn:chosen" and asked[-1] == ARN


def test_workspace_renders_the_variables_and_variable_rows_show_them():
    params = resolve(target="aws", deployment="ws-rows", public_access_cidrs="10.0.0.0/8,192.168.0.0/16", **COGNITO)
    ws = deploy.workspace(params, ARN)
    assert ws.directory.name == "terraform-aws" and ws.directory.parent.name == "ws-rows"
    rows = deploy.variable_rows(ws)
    values = {r["variable"]: r["value"] for r in rows}
    assert [r["variable"] for r in rows] == sorted(values)
    assert values["certificate_arn"] == ARN and values["name"] == "ws-rows"
    assert values["jupyter_hub_auth_mechanism"] == "cognito" and values["jupyterhub_domain"] == "hub.example.com"
    assert values["public_access_cidrs"] == "10.0.0.0/8, 192.168.0.0/16"  # a list reads as one cell
    assert not (ws.directory / "sandbox_override.tf").exists() and not list(ws.directory.glob("*_override.tf"))


def test_plan_summary_groups_by_type_and_action():
    changes = [SimpleNamespace(address=a, action=x) for a, x in [
        ("aws_subnet.private[0]", "create"), ("aws_subnet.private[1]", "create"), ('aws_eks_addon.this["vpc-cni"]', "create"),
        ("data.aws_acm_certificate.hub[0]", "read"), ("aws_vpc.this", "update")]]
    rows = deploy.plan_summary(SimpleNamespace(changes=changes))
    assert {"resource type": "aws_subnet", "action": "create", "count": 2} in rows
    assert {"resource type": "aws_vpc", "action": "update", "count": 1} in rows
    assert deploy.plan_summary(SimpleNamespace(changes=[]))[0]["action"] == "no changes"


def test_plan_and_outputs_come_from_terraform_without_a_log(monkeypatch):
    from eks_hub_runbook import terraform

    calls = []
    monkeypatch.setattr(terraform, "plan", lambda ws, log: calls.append(("plan", ws, log)) or "the plan")
    monkeypatch.setattr(terraform, "output", lambda ws: calls.append(("output", ws)) or "the outputs")
    assert deploy.plan("ws") == "the plan" and deploy.outputs("ws") == "the outputs"
    assert calls == [("plan", "ws", None), ("output", "ws")]


def test_stage_names_are_the_staged_applys():
    from eks_hub_runbook import terraform

    assert deploy.stage_names() == [stage.name for stage in terraform.APPLY_STAGES] == ["network", "cluster", "everything"]


def test_convergence_passes_only_when_a_second_plan_changes_nothing(monkeypatch):
    monkeypatch.setattr(deploy, "plan", lambda ws: SimpleNamespace(changes=[]))
    assert deploy.convergence_rows("ws") == [{"check": "plan after apply", "status": "pass",
                                             "detail": "no changes: re-running this notebook converges"}]
    drift = [SimpleNamespace(address=f"aws_security_group_rule.r[{i}]") for i in range(7)]
    monkeypatch.setattr(deploy, "plan", lambda ws: SimpleNamespace(changes=drift))
    row = deploy.convergence_rows("ws")[0]
    assert row["status"] == "fail" and row["detail"].startswith("7 change(s): aws_security_group_rule.r[0], ")
    assert "r[4]" in row["detail"] and "r[5]" not in row["detail"]  # the first five named


def test_stage_log_drives_progress():
    progress = Progress("apply", ["network", "cluster", "everything"])
    log = deploy._StageLog(progress, "apply")
    log("=== apply: network (2026-11-28 13:00:00)")
    log("aws_vpc.this: Creating...")
    log("=== apply: network: 12 done, 0 failed, 3s")
    log("=== apply: cluster (attempt 2) (2026-11-28 13:01:00)")
    states = {r["step"]: r["state"] for r in progress.rows()}
    assert states == {"network": "done", "cluster": "running", "everything": "pending"}


def test_apply_reports_each_stage_and_returns_its_rows(monkeypatch):
    from eks_hub_runbook import terraform

    def fake_deploy(ws, log, bar):
        assert bar is False  # the notebook's own progress display, not a terminal bar
        for line in ("=== apply: network (2026-11-28 13:00:00)", "aws_vpc.this: Creation complete after 2s", "",
                     "=== apply: cluster (2026-11-28 13:02:00)"):
            log(line)
        return [terraform.StageResult("network", "apply", 12, 1, 61.04), terraform.StageResult("cluster", "apply", 3, 2, 600.0)]

    monkeypatch.setattr(terraform, "deploy", fake_deploy)
    monkeypatch.setattr(deploy, "remove_strays", lambda ws: [])  # none (tests/test_sweep.py covers them)
    started = []
    monkeypatch.setattr(deploy, "start_plan_after_apply", started.append)
    reports = []
    rows = deploy.apply("ws", progress=lambda *r: reports.append(r))
    assert rows == [{"stage": "network", "command": "apply", "resources": 12, "attempts": 1, "seconds": 61.0},
                    {"stage": "cluster", "command": "apply", "resources": 3, "attempts": 2, "seconds": 600.0}]
    assert reports == [("network", "running", ""), ("network", "running", "aws_vpc.this: Creation complete after 2s"),
                       ("network", "done", ""), ("cluster", "running", "")]
    assert started == ["ws"]  # the convergence check's plan starts once the apply (and the strays' sweep) is done
    assert deploy.apply("ws") == rows  # no progress callback: nothing to report to


def test_convergence_uses_the_plan_started_after_the_apply_while_it_stands(monkeypatch, tmp_path):
    """The plan apply started is the check's when it still stands; when it does not (inputs changed, too
    old, failed: BackgroundPlan.result is None) or there is none, a plan is made now."""
    from eks_hub_runbook.terraform import Plan, PlannedChange

    ws = SimpleNamespace(directory=tmp_path)
    made_now = []
    monkeypatch.setattr(deploy, "plan", lambda w: made_now.append(w) or SimpleNamespace(changes=[]))
    drift = Plan([PlannedChange("aws_vpc.this", "update")], None, 1.0)
    monkeypatch.setattr(deploy, "_PLANS_AFTER_APPLY", {tmp_path: SimpleNamespace(result=lambda: drift)})
    assert deploy.convergence_rows(ws)[0]["status"] == "fail" and made_now == []
    assert deploy._PLANS_AFTER_APPLY == {}  # used once: a second check plans again
    assert deploy.convergence_rows(ws)[0]["status"] == "pass" and made_now == [ws]
    deploy._PLANS_AFTER_APPLY[tmp_path] = SimpleNamespace(result=lambda: None)
    assert deploy.convergence_rows(ws)[0]["status"] == "pass" and made_now == [ws, ws]


def test_output_rows_mask_secrets_and_leave_out_data_outputs():
    from eks_hub_runbook.terraform import Outputs

    outputs = Outputs({"cluster_name": "hub", "private_subnet_ids": ["subnet-a", "subnet-b"],
                       "cognito_client_secret": "s3cr3t-value", "cluster_certificate_authority_data": "LS0t"},
                      sensitive=["cognito_client_secret"])
    rows = deploy.output_rows(outputs)
    assert [r["output"] for r in rows] == ["cluster_name", "cognito_client_secret", "private_subnet_ids"]
    values = {r["output"]: r["value"] for r in rows}
    assert values["private_subnet_ids"] == "subnet-a, subnet-b"
    assert "s3cr3t-value" not in json.dumps(rows)


def test_certificate_rows_per_type(monkeypatch):
    assert deploy.certificate_rows(resolve(target="aws"), "") == [
        {"field": "certificate", "value": "none: deployment type 1 is reached by port-forward"}]
    monkeypatch.setattr(deploy.acm, "describe", lambda params, arn: [{"field": "status", "value": f"ISSUED ({arn[-4:]})"}])
    assert deploy.certificate_rows(resolve(target="aws", **COGNITO), ARN) == [
        {"field": "ARN", "value": ARN}, {"field": "status", "value": "ISSUED (9012)"}]


def test_preflight_needs_the_oauth_secret(monkeypatch):
    monkeypatch.delenv("RUNBOOK_OAUTH_CLIENT_SECRET", raising=False)
    oauth = resolve(target="aws", **OAUTH)
    with pytest.raises(ParameterError, match="oauth_client_secret"):
        deploy.preflight(oauth)


def test_preflight_on_aws_needs_a_certificate(state_dir):
    with pytest.raises(ParameterError, match="certificate_arn.*01_certificate"):
        deploy.preflight(resolve(target="aws", deployment="no-cert-here", **COGNITO))


def test_preflight_checks_the_given_or_recorded_certificate(monkeypatch, oauth_secret_env):
    checked = []
    monkeypatch.setattr(deploy.acm, "check_arn", lambda params, arn: checked.append((params.deployment, arn)))
    deploy.preflight(resolve(target="aws"))  # type 1: no certificate, nothing to check
    deploy.preflight(resolve(target="aws", deployment="given-cert", certificate_arn=ARN, **OAUTH))
    records.remember("recorded-cert", "certificate_arn", ARN.replace("1234-1234-1234", "1234-1234-4321"))
    deploy.preflight(resolve(target="aws", deployment="recorded-cert", **COGNITO))
    assert checked == [("given-cert", ARN), ("recorded-cert", ARN.replace("1234-1234-1234", "1234-1234-4321"))]


# --------------------------------------------------------------------------- platform


def test_install_platform_uses_the_deployments_kubeconfig_and_reports(monkeypatch, tmp_path):
    from eks_hub_runbook.aws import eks
    from eks_hub_runbook.platform import install

    monkeypatch.setattr(eks, "write_kubeconfig", lambda params, **_: tmp_path / f"{params.deployment}.kubeconfig")
    assert deploy.kubeconfig(resolve(target="aws", deployment="plat")) == tmp_path / "plat.kubeconfig"
    installed = []
    monkeypatch.setattr(install, "install", lambda params, outputs, kubeconfig: installed.append((outputs, kubeconfig))
                        or [{"step": 1, "status": "deployed"}])
    reports = []
    rows = deploy.install_platform(resolve(target="aws", deployment="plat"), {"cluster_name": "plat"},
                                   progress=lambda *r: reports.append(r))
    assert rows == [{"step": 1, "status": "deployed"}]
    assert installed == [({"cluster_name": "plat"}, tmp_path / "plat.kubeconfig")]
    assert [r[:2] for r in reports] == [("platform", "running"), ("platform", "done")]


def test_a_failed_install_leaves_the_platform_step_running_for_the_display_to_mark(monkeypatch, tmp_path):
    from eks_hub_runbook.aws import eks
    from eks_hub_runbook.platform import install

    monkeypatch.setattr(eks, "write_kubeconfig", lambda params, **_: tmp_path / "kubeconfig")

    def broken(params, outputs, kubeconfig):
        raise PlatformError("helm upgrade karpenter failed")

    monkeypatch.setattr(install, "install", broken)
    reports = []
    with pytest.raises(PlatformError, match="karpenter"):
        deploy.install_platform(resolve(target="aws"), {}, progress=lambda *r: reports.append(r))
    assert reports == [("platform", "running", "helm releases and manifests")]


# --------------------------------------------------------------------------- reaching the hub


def test_cname_record_is_fully_qualified():
    assert deploy.cname_record("hub.example.com", "k8s-x.elb.amazonaws.com") == \
        "hub.example.com. 300 IN CNAME k8s-x.elb.amazonaws.com."
    assert deploy.cname_record("hub.example.com.", "k8s-x.elb.amazonaws.com.").count("..") == 0
    assert "<load balancer DNS name>" in deploy.cname_record("hub.example.com", "")


def test_access_rows_on_aws_per_type():
    one = {r["item"]: r["value"] for r in deploy.Access(resolve(target="aws"), "http://localhost:8080").rows()}
    assert one == {"deployment type": "1 (dummy)",
                   "1. forward a local port": "kubectl port-forward svc/proxy-public 8080:80 -n jupyterhub",
                   "2. open the hub": "http://localhost:8080",
                   "log in": "any user name in allowed_users (e.g. user-1), any password"}
    three = deploy.Access(resolve(target="aws", **OAUTH), "https://hub.example.com", "k8s-x.elb.amazonaws.com",
                          deploy.cname_record("hub.example.com", "k8s-x.elb.amazonaws.com"),
                          "CNAME hub.example.com -> k8s-x.elb.amazonaws.com upserted in zone example.com")
    rows = three.rows()
    values = {r["item"]: r["value"] for r in rows}
    assert values["deployment type"] == "3 (oauth)" and values["load balancer DNS name"] == "k8s-x.elb.amazonaws.com"
    assert values["Route 53"].endswith("upserted in zone example.com")
    assert values["open the hub"] == "https://hub.example.com"
    assert values["log in"] == "through the identity provider at kc.example.com"
    assert not any(r["item"].startswith("open the hub (") for r in rows)  # no local hub on AWS
    pending = {r["item"]: r["value"] for r in deploy.Access(resolve(target="aws", **COGNITO), "https://hub.example.com").rows()}
    assert pending["load balancer DNS name"] == "(not provisioned yet)" and "Route 53" not in pending
    assert pending["log in"] == "through Cognito's hosted UI"


@pytest.mark.sandbox
def test_access_rows_per_type(monkeypatch):
    monkeypatch.setattr(deploy, "hub_url", lambda params: "http://127.0.0.1:8000")
    one = deploy.Access(resolve(), "http://127.0.0.1:8000")
    values = {r["item"]: r["value"] for r in one.rows()}
    assert values["open the hub"] == "http://127.0.0.1:8000"
    assert "kubectl port-forward svc/proxy-public 8080:80 -n jupyterhub" in values["on EKS you would run"]
    on_aws = {r["item"]: r["value"] for r in deploy.Access(resolve(target="aws"), "http://localhost:8080").rows()}
    assert on_aws["1. forward a local port"].startswith("kubectl port-forward")
    two = deploy.Access(resolve(**COGNITO), "http://127.0.0.1:8000", "k8s-x.elb.amazonaws.com",
                        deploy.cname_record("hub.example.com", "k8s-x.elb.amazonaws.com"))
    values = {r["item"]: r["value"] for r in two.rows()}
    assert values["DNS record to create"].endswith("k8s-x.elb.amazonaws.com.")
    assert "trailing" in values["note"] or "ends with a dot" in values["note"]
    assert values["open the hub"] == "https://hub.example.com"


class FakeCore:
    """CoreV1Api.read_namespaced_service answering a list of results in turn (an ApiException raises)."""

    answers: list = []
    asked: list = []

    def __init__(self, api_client):
        self.api_client = api_client

    def read_namespaced_service(self, name, namespace):
        FakeCore.asked.append((name, namespace))
        answer = FakeCore.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        ingress = [SimpleNamespace(hostname=h, ip=None) for h in answer]
        return SimpleNamespace(status=SimpleNamespace(load_balancer=SimpleNamespace(ingress=ingress)))


@pytest.fixture
def fake_service(monkeypatch, tmp_path):
    from kubernetes import client

    from eks_hub_runbook.platform import install

    monkeypatch.setattr(deploy, "kubeconfig", lambda params, **_: tmp_path / "kubeconfig")
    monkeypatch.setattr(install, "api_client", lambda path: ("client for", path))
    monkeypatch.setattr(client, "CoreV1Api", FakeCore)
    monkeypatch.setattr(deploy.time, "sleep", lambda seconds: None)
    FakeCore.answers, FakeCore.asked = [], []
    return FakeCore


def test_load_balancer_hostname_waits_for_the_proxy_service(fake_service):
    from kubernetes.client import ApiException

    params = resolve(target="aws", **COGNITO)
    fake_service.answers = [ApiException(status=404), [], ["k8s-jupyterh-proxypub-1.elb.us-west-2.amazonaws.com"]]
    assert deploy.load_balancer_hostname(params, timeout=60) == "k8s-jupyterh-proxypub-1.elb.us-west-2.amazonaws.com"
    assert fake_service.asked == [("proxy-public", "jupyterhub")] * 3
    fake_service.answers = [[]]
    assert deploy.load_balancer_hostname(params) == ""  # no wait: none yet
    fake_service.answers = [ApiException(status=403)]
    with pytest.raises(PlatformError, match="cannot read service jupyterhub/proxy-public: HTTP 403"):
        deploy.load_balancer_hostname(params)


class FakeRoute53:
    class exceptions:
        class NoSuchHostedZone(Exception):
            pass

    def __init__(self, zones):
        self.zones, self.changes = zones, []

    def get_hosted_zone(self, Id):
        if Id not in self.zones:
            raise self.exceptions.NoSuchHostedZone(Id)
        return {"HostedZone": {"Id": f"/hostedzone/{Id}", "Name": self.zones[Id]}}

    def change_resource_record_sets(self, HostedZoneId, ChangeBatch):
        self.changes.append((HostedZoneId, ChangeBatch))


def test_create_dns_record_upserts_the_cname_in_the_parent_zone(monkeypatch):
    route53 = FakeRoute53({"Z1": "example.com.", "Z2": "other.org."})
    asked = []
    monkeypatch.setattr(deploy, "client", lambda service, target, region: asked.append((service, target, region)) or route53)
    params = resolve(target="aws", region="eu-west-1", **COGNITO)
    assert deploy.create_dns_record(params, "", "k8s-x.elb.amazonaws.com") == "" and asked == []  # no zone: nothing
    assert deploy.create_dns_record(params, "Z1", "k8s-x.elb.amazonaws.com") == \
        "CNAME hub.example.com -> k8s-x.elb.amazonaws.com upserted in zone example.com"
    assert asked == [("route53", "aws", "eu-west-1")]
    assert route53.changes == [("Z1", {"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": "hub.example.com.", "Type": "CNAME", "TTL": 300,
        "ResourceRecords": [{"Value": "k8s-x.elb.amazonaws.com."}]}}]})]
    with pytest.raises(ParameterError, match="zone other.org cannot hold hub.example.com"):
        deploy.create_dns_record(params, "Z2", "k8s-x.elb.amazonaws.com")
    with pytest.raises(ParameterError, match="Z9 is not a hosted zone of this account"):
        deploy.create_dns_record(params, "Z9", "k8s-x.elb.amazonaws.com")
    with pytest.raises(PlatformError, match="no DNS name yet"):
        deploy.create_dns_record(params, "Z1", "")
    assert len(route53.changes) == 1


def test_hub_url_is_the_targets():
    assert deploy.hub_url(resolve(target="aws")) == "http://localhost:8080"
    assert deploy.hub_url(resolve(target="aws", **COGNITO)) == "https://hub.example.com"


def test_access_looks_up_the_load_balancer_only_for_a_domain(monkeypatch):
    looked = []
    monkeypatch.setattr(deploy, "load_balancer_hostname", lambda params, timeout: looked.append(timeout) or "k8s-x.elb.amazonaws.com")
    monkeypatch.setattr(deploy, "create_dns_record", lambda params, zone, target: f"{zone}:{target}" if zone else "")
    one = deploy.access(resolve(target="aws"), route53_zone_id="Z1")
    assert (one.hub_url, one.load_balancer, one.dns_record, one.dns_created, looked) == ("http://localhost:8080", "", "", "", [])
    two = deploy.access(resolve(target="aws", **COGNITO), route53_zone_id="Z1", wait_seconds=30)
    assert looked == [30] and two.hub_url == "https://hub.example.com"
    assert two.dns_record == "hub.example.com. 300 IN CNAME k8s-x.elb.amazonaws.com."
    assert two.dns_created == "Z1:k8s-x.elb.amazonaws.com"


def test_hub_endpoint_for_a_domain_trusts_the_generated_certificate_when_there_is_one():
    from eks_hub_runbook.aws import acm

    params = resolve(target="aws", deployment="endpoint-domain", **COGNITO)
    with deploy.hub_endpoint(params) as (url, verify):
        assert (url, verify) == ("https://hub.example.com", True)
    generated = tls.certificate_dir("endpoint-domain") / tls.CERTIFICATE_FILE
    generated.write_text("-----BEGIN CERTIFICATE-----\n")
    with deploy.hub_endpoint(params) as (url, verify):
        assert (url, verify) == ("https://hub.example.com", str(generated))


# --------------------------------------------------------------------------- plan_only


def test_plan_only_note_counts_what_the_apply_would_create():
    changes = [SimpleNamespace(address=a, action=x) for a, x in [
        ("aws_subnet.private[0]", "create"), ("aws_subnet.private[1]", "create"), ("aws_vpc.this", "create"),
        ("aws_eks_cluster.this", "update")]]
    estimate = SimpleNamespace(summary=lambda: "The deployment costs about $0.56/h.")
    text = deploy.plan_only_note(SimpleNamespace(changes=changes), estimate)
    assert "nothing was created" in text and "would create 3 resources of 2 types (2 aws_subnet, 1 aws_vpc;" in text
    assert "$0.56/h" in text


def test_stop_if_plan_only_stops_with_a_clean_exit_only_when_asked(monkeypatch):
    from eks_hub_runbook import cost

    shown = []
    monkeypatch.setattr(cost, "estimate", lambda params: cost.Estimate("us-west-2", "table", "", [], []))
    monkeypatch.setattr("eks_hub_runbook.notebook.display.note", shown.append)
    plan = SimpleNamespace(changes=[SimpleNamespace(address="aws_vpc.this", action="create")])
    params = resolve(target="aws")
    assert deploy.stop_if_plan_only(params, plan, False) is None and shown == []
    with pytest.raises(SystemExit) as stopped:
        deploy.stop_if_plan_only(params, plan, True)
    assert stopped.value.code == 0  # papermill and the runner record SystemExit(0) as a success
    assert "would create 1 resources" in shown[0]


def test_plan_only_certificate_is_a_placeholder_where_the_target_would_import_one(monkeypatch):
    imported = []
    monkeypatch.setattr(deploy.acm, "ensure_certificate", lambda params, recalled: imported.append(1) or "arn:new")
    monkeypatch.setattr(deploy, "planned_certificate_arn", lambda params: f"arn:aws:acm:us-west-2:1:certificate/{deploy.PLANNED_CERTIFICATE_ID}")
    monkeypatch.setattr(deploy.targets.of(resolve(target="aws")).__class__, "makes_certificates", True)
    params = resolve(target="aws", deployment="plan-only-cert", **COGNITO)
    arn = deploy.certificate(params, plan_only=True)
    assert arn.endswith(deploy.PLANNED_CERTIFICATE_ID) and imported == []
    rows = deploy.certificate_rows(params, arn)
    assert "not imported (plan_only)" in rows[1]["value"]
    assert deploy.certificate(params) == "arn:new" and imported == [1]  # without plan_only it is imported


@pytest.mark.sandbox
@pytest.mark.slow
def test_02_with_plan_only_stops_after_the_plan_and_creates_nothing(full_sandbox, tmp_path):
    """02_deploy on the sandbox with plan_only (type 2, so the certificate path is taken too): papermill
    records a success, the apply never runs, no certificate is imported and nothing exists in the local AWS."""
    import nbformat
    import papermill as pm

    from eks_hub_runbook import paths
    from eks_hub_runbook.aws import leftovers, session
    from eks_hub_runbook.records import archive

    deployment = "plan-only"
    acm = session.client("acm", "sandbox", "us-west-2")
    ec2 = session.client("ec2", "sandbox", "us-west-2")
    before = (len(acm.list_certificates()["CertificateSummaryList"]), len(ec2.describe_vpcs()["Vpcs"]))
    out = tmp_path / "02.ipynb"
    pm.execute_notebook(str(paths.RUNBOOKS_DIR / "02_deploy.ipynb"), str(out),
                        parameters={"deployment": deployment, "plan_only": True, **COGNITO},
                        kernel_name="python3", progress_bar=False)
    cells = {c.get("id"): c for c in nbformat.read(out, as_version=4).cells}
    stop = cells["02-plan-only-stop"]
    assert [o.get("ename") for o in stop.outputs if o.output_type == "error"] == ["SystemExit"]
    assert "nothing was created" in json.dumps(stop.outputs)
    assert cells["02-12"].execution_count is None  # the apply never ran
    summary = archive.summarize_notebook(out)  # what the runner records: a success, stopped on purpose
    assert summary.failure is None and "stopped" in [c.status for c in summary.cells]
    assert "not imported (plan_only)" in json.dumps(cells["02-06"].outputs)
    assert (len(acm.list_certificates()["CertificateSummaryList"]), len(ec2.describe_vpcs()["Vpcs"])) == before
    assert leftovers.scan(deployment, "sandbox", "us-west-2") == []
    assert records.recall(deployment, "certificate_arn") is None and records.recall(deployment, "cluster_name") is None

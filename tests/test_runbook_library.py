"""Unit tests of the runbooks' orchestration helpers (no sandbox): deploy, verify, cleanup, GPU demo."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from eks_hub_runbook import cleanup, deploy, gpu_sharing, verify
from eks_hub_runbook.errors import ParameterError
from eks_hub_runbook.notebook import Progress
from eks_hub_runbook.params import resolve

COGNITO = dict(auth="cognito", domain="hub.example.com")


def test_cname_record_is_fully_qualified():
    assert deploy.cname_record("hub.example.com", "k8s-x.elb.amazonaws.com") == \
        "hub.example.com. 300 IN CNAME k8s-x.elb.amazonaws.com."
    assert deploy.cname_record("hub.example.com.", "k8s-x.elb.amazonaws.com.").count("..") == 0
    assert "<load balancer DNS name>" in deploy.cname_record("hub.example.com", "")


def test_plan_summary_groups_by_type_and_action():
    changes = [SimpleNamespace(address=a, action=x) for a, x in [
        ("aws_subnet.private[0]", "create"), ("aws_subnet.private[1]", "create"), ('aws_eks_addon.this["vpc-cni"]', "create"),
        ("data.aws_acm_certificate.hub[0]", "read"), ("aws_vpc.this", "update")]]
    rows = deploy.plan_summary(SimpleNamespace(changes=changes))
    assert {"resource type": "aws_subnet", "action": "create", "count": 2} in rows
    assert {"resource type": "aws_vpc", "action": "update", "count": 1} in rows
    assert deploy.plan_summary(SimpleNamespace(changes=[]))[0]["action"] == "no changes"


def test_stage_log_drives_progress():
    progress = Progress("apply", ["network", "cluster", "everything"])
    log = deploy._StageLog(progress, "apply")
    log("=== apply: network (2026-11-28 13:00:00)")
    log("aws_vpc.this: Creating...")
    log("=== apply: network: 12 done, 0 failed, 3s")
    log("=== apply: cluster (attempt 2) (2026-11-28 13:01:00)")
    states = {r["step"]: r["state"] for r in progress.rows()}
    assert states == {"network": "done", "cluster": "running", "everything": "pending"}


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


def test_preflight_needs_the_oauth_secret(monkeypatch):
    monkeypatch.delenv("RUNBOOK_OAUTH_CLIENT_SECRET", raising=False)
    oauth = resolve(target="aws", auth="oauth", domain="hub.example.com", oauth_domain="kc.example.com",
                    oauth_client_id="jupyterhub")
    with pytest.raises(ParameterError, match="oauth_client_secret"):
        deploy.preflight(oauth)


def test_preflight_on_aws_needs_a_certificate(state_dir):
    with pytest.raises(ParameterError, match="certificate_arn.*01_certificate"):
        deploy.preflight(resolve(target="aws", deployment="no-cert-here", **COGNITO))


def test_demo_users_must_be_allowed():
    gpu_sharing.check(resolve(target="aws"))
    gpu_sharing.check(resolve(target="aws", **COGNITO))  # user-1 becomes user-1@example.com on both sides
    with pytest.raises(ParameterError, match="allowed_users.*user-2@example.com"):
        gpu_sharing.check(resolve(target="aws", allowed_users="user-1", **COGNITO))
    gpu_sharing.check(resolve(target="aws", allowed_users="someone", allow_all=True, **COGNITO))


def test_sharing_rows():
    demo = gpu_sharing.Demo(resolve(target="aws"), "http://hub", "gpu-time-slicing")
    demo.servers = [gpu_sharing.UserServer("user-1", None, "gpu-time-slicing", 0.1, 60.0),
                    gpu_sharing.UserServer("user-2", None, "gpu-time-slicing", 0.1, 3.0)]
    placement = [{"user": "user-1", "node": "n1", "nvidia.com/gpu requested": 1},
                 {"user": "user-2", "node": "n1", "nvidia.com/gpu requested": 1}]
    nodes = [{"nvidia.com/gpu capacity": 4}]
    assert {r["status"] for r in gpu_sharing.sharing_rows(demo, placement, nodes)} == {"pass"}
    spread = [dict(placement[0]), {**placement[1], "node": "n2"}]
    rows = {r["check"]: r for r in gpu_sharing.sharing_rows(demo, spread, [{"nvidia.com/gpu capacity": 1}])}
    assert rows["the users share one GPU node"]["status"] == "fail"
    assert "karpenter issue 729" in rows["the users share one GPU node"]["detail"]
    assert [r["start"] for r in demo.timing_rows()] == ["cold (new node)", "warm (same node)"]
    figure = gpu_sharing.time_to_ready_chart(demo)
    assert figure.axes[0].get_ylabel() == "seconds to ready"


def test_verify_summary_counts():
    rows = verify.summary(pvcs=[{"status": "pass"}, {"status": "info"}], hub=[{"status": "fail"}])
    assert rows == [
        {"table": "pvcs", "checks": 2, "passed": 1, "failed": 0, "status": "pass"},
        {"table": "hub", "checks": 1, "passed": 0, "failed": 1, "status": "fail"},
    ]
    kubectl = {r["check"]: r["kubectl"] for r in verify.kubectl_rows(resolve(target="aws", region="eu-west-1"))}
    assert kubectl["kubeconfig"] == "aws eks --region eu-west-1 update-kubeconfig --name jupyterhub-on-eks"
    assert kubectl["nodepools"] == "kubectl get nodepools,ec2nodeclasses"


def test_cleanup_tag_names():
    assert cleanup.cluster_owned_tag("hub") == "kubernetes.io/cluster/hub"
    assert cleanup.Found("load balancer", "arn:x", "dns").row("deleted") == \
        {"resource": "load balancer", "id": "arn:x", "name": "dns", "action": "deleted"}


@pytest.mark.sandbox
def test_sweep_deletes_what_kubernetes_created_and_is_idempotent(aws_sandbox):
    from eks_hub_runbook.aws.session import client

    params = resolve(deployment="sweep-test")
    ec2, elb = client("ec2", "sandbox", "us-west-2"), client("elbv2", "sandbox", "us-west-2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"us-west-2{z}")["Subnet"]["SubnetId"]
               for i, z in enumerate("ab")]
    lb_tags = [{"Key": "elbv2.k8s.aws/cluster", "Value": "sweep-test"}]
    lb = elb.create_load_balancer(Name="k8s-jupyterh-proxypub", Subnets=subnets, Type="network", Tags=lb_tags)
    tg = elb.create_target_group(Name="k8s-jupyterh-proxypub", Protocol="TCP", Port=80, VpcId=vpc, TargetType="ip",
                                 Tags=lb_tags)
    sg = ec2.create_security_group(GroupName="k8s-traffic-sweep", Description="lb", VpcId=vpc,
                                   TagSpecifications=[{"ResourceType": "security-group", "Tags": lb_tags}])
    ec2.create_volume(AvailabilityZone="us-west-2a", Size=10, TagSpecifications=[{"ResourceType": "volume", "Tags": [
        {"Key": "kubernetes.io/cluster/sweep-test", "Value": "owned"}, {"Key": "ebs.csi.aws.com/cluster", "Value": "true"},
        {"Key": "kubernetes.io/created-for/pvc/name", "Value": "hub-db-dir"},
        {"Key": "kubernetes.io/created-for/pvc/namespace", "Value": "jupyterhub"}]}])
    ec2.create_volume(AvailabilityZone="us-west-2a", Size=10)  # not the cluster's: must stay
    found = {f.kind for f in cleanup.kubernetes_created(params)}
    assert found == {"load balancer", "target group", "security group", "EBS volume (PVC)"}
    rows = cleanup.delete_kubernetes_created(params, timeout=30)
    assert sorted(r["resource"] for r in rows) == ["EBS volume (PVC)", "load balancer", "security group", "target group"]
    assert next(r for r in rows if r["resource"].startswith("EBS"))["name"] == "jupyterhub/hub-db-dir"
    assert cleanup.kubernetes_created(params) == []
    assert cleanup.delete_kubernetes_created(params, timeout=30) == []  # a second run finds nothing
    assert len(ec2.describe_volumes()["Volumes"]) >= 1
    assert lb["LoadBalancers"][0]["LoadBalancerArn"] and tg["TargetGroups"] and sg["GroupId"]

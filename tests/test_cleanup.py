"""What 05_cleanup's sweep finds and deletes, and how it treats the certificate (local AWS)."""

from __future__ import annotations

import pytest

from eks_hub_runbook import cleanup, tls
from eks_hub_runbook.aws import acm, leftovers
from eks_hub_runbook.aws.session import client
from eks_hub_runbook.aws.tags import DEPLOYMENT_TAG, MANAGED_BY_TAG
from eks_hub_runbook.params import resolve

pytestmark = pytest.mark.sandbox


def test_sweep_deletes_what_kubernetes_created_and_is_idempotent(aws_sandbox):
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


def test_sweep_terminates_karpenter_nodes_first_and_deletes_cni_interfaces(aws_sandbox):
    params = resolve(deployment="sweep-nodes")
    ec2 = client("ec2", "sandbox", "us-west-2")
    vpc = ec2.create_vpc(CidrBlock="10.31.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.31.0.0/24", AvailabilityZone="us-west-2a")["Subnet"]["SubnetId"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    node = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="m5.large", SubnetId=subnet, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": leftovers.cluster_owned_tag("sweep-nodes"), "Value": "owned"},
                                              {"Key": leftovers.KARPENTER_NODEPOOL_TAG, "Value": "default"}]}])["Instances"][0]["InstanceId"]
    eni = ec2.create_network_interface(SubnetId=subnet, Description="aws-K8S-left", TagSpecifications=[
        {"ResourceType": "network-interface", "Tags": [{"Key": leftovers.CNI_CLUSTER_TAG, "Value": "sweep-nodes"}]}],
    )["NetworkInterface"]["NetworkInterfaceId"]
    found = cleanup.kubernetes_created(params)
    assert [(f.kind, f.id, f.name) for f in found] == [
        ("EC2 instance (Karpenter)", node, "default m5.large"), ("network interface", eni, "aws-K8S-left")]
    rows = cleanup.delete_kubernetes_created(params, timeout=30)
    assert [(r["resource"], r["action"]) for r in rows] == [("EC2 instance (Karpenter)", "terminated"),
                                                           ("network interface", "deleted")]
    assert ec2.describe_instances(InstanceIds=[node])["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"
    assert cleanup.kubernetes_created(params) == [] and cleanup.delete_kubernetes_created(params, timeout=30) == []


def test_the_imported_certificate_is_kept_or_deleted_and_never_a_leftover(aws_sandbox, tmp_path, state_dir):
    """The leftovers scan lists the deployment's certificates; 05's leftovers table leaves out the one
    01_certificate imported (step 4 deleted it, or keeps it on purpose) but not a stray one."""
    params = resolve(target="sandbox", deployment="clean-cert", auth="cognito", domain="hub.example.com")
    material = tls.generate_self_signed("hub.example.com", tmp_path)
    arn = acm.import_certificate(params, material)
    assert {"service": "acm", "type": "certificate", "count": 1} in cleanup.inventory_rows(params)
    assert cleanup.certificate_rows(params, delete=False) == [
        {"resource": "ACM certificate", "id": arn, "name": "hub.example.com", "action": "kept (delete_certificate=False)"}]
    assert cleanup.leftover_rows(params) == []
    stray = client("acm", "sandbox", "us-west-2").import_certificate(
        Certificate=material.certificate_pem, PrivateKey=material.key_pem,
        Tags=[{"Key": DEPLOYMENT_TAG, "Value": "clean-cert"}, {"Key": MANAGED_BY_TAG, "Value": "someone"}])["CertificateArn"]
    assert [(r["service"], r["id"]) for r in cleanup.leftover_rows(params)] == [("acm", stray)]
    assert cleanup.certificate_rows(params, delete=True) == [
        {"resource": "ACM certificate", "id": arn, "name": "hub.example.com", "action": "deleted"}]
    assert cleanup.certificate_rows(params, delete=True) == []
    acm.delete(params, stray)
    assert cleanup.leftover_rows(params) == []


def test_cleanup_tag_names():
    assert cleanup.cluster_owned_tag("hub") == "kubernetes.io/cluster/hub"
    assert cleanup.Found("load balancer", "arn:x", "dns").row("deleted") == \
        {"resource": "load balancer", "id": "arn:x", "name": "dns", "action": "deleted"}



# --------------------------------------------------------------------------- what ran and what it cost


def test_usage_reads_karpenters_instances_terminated_ones_included(aws_sandbox):
    """Instances Karpenter launched for the cluster (its tags), running or already terminated, with their times."""
    params = resolve(deployment="spend-test")
    ec2 = client("ec2", "sandbox", "us-west-2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

    def launch(pool: str, instance_type: str) -> str:
        tags = [{"Key": f"kubernetes.io/cluster/{params.cluster_name}", "Value": "owned"},
                {"Key": leftovers.KARPENTER_NODEPOOL_TAG, "Value": pool}]
        return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType=instance_type,
                                 TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])["Instances"][0]["InstanceId"]

    gpu, cpu = launch("gpu-ts", "g5.2xlarge"), launch("cpu", "m5.xlarge")
    ec2.terminate_instances(InstanceIds=[cpu])
    ran = cleanup.usage(params)
    assert ran.started is None  # no EKS cluster of that name: its lifetime is unknown
    runs = {n.name: n for n in ran.nodes}
    assert (runs[gpu].instance_type, runs[gpu].pool, runs[gpu].ended) == ("g5.2xlarge", "gpu-ts", None)
    assert runs[cpu].pool == "cpu" and runs[cpu].ended is not None and runs[cpu].ended >= runs[cpu].started
    assert [r["until"] for r in ran.rows()][0] == "now" and len(ran.rows()) == 3
    spent = cleanup.spend(params, ran)
    assert {i["item"] for i in spent.items} == {f"gpu-ts node {gpu}", f"cpu node {cpu}"}  # no fixed part without a start
    ec2.terminate_instances(InstanceIds=[gpu])


def test_spend_counts_the_fixed_part_from_the_clusters_creation(monkeypatch):
    import datetime as dt

    from eks_hub_runbook import cost

    now = dt.datetime.now(dt.timezone.utc)
    node = cost.NodeRun("ip-10-1-0-9", "g5.2xlarge", "gpu-ts", now - dt.timedelta(hours=1))
    monkeypatch.setattr(cleanup, "_cluster_created", lambda params: now - dt.timedelta(hours=3))
    monkeypatch.setattr(cleanup, "_karpenter_instances", lambda params: {"i-1": cost.NodeRun("i-1", "g5.2xlarge", "gpu-ts", now)})
    monkeypatch.setattr(cleanup, "_cluster_nodes", lambda params: {"i-1": node})  # the cluster's view of i-1 wins
    ran = cleanup.usage(resolve(target="aws", deployment="spend-fixed"))
    assert ran.nodes == [node]
    spent = cleanup.spend(resolve(target="aws", deployment="spend-fixed"), ran)
    control_plane = next(i for i in spent.items if i["item"] == "EKS control plane")
    assert control_plane["hours"] == pytest.approx(3, abs=0.01) and control_plane["USD"] == pytest.approx(0.3, abs=0.01)
    gpu = next(i for i in spent.items if i["part"] == "node")
    assert gpu["hours"] == pytest.approx(1, abs=0.01) and gpu["USD"] == pytest.approx(1.212, abs=0.02)
    assert spent.as_dict()["usd"] == round(spent.usd, 2)


def test_terminated_at_reads_the_state_transition_reason():
    import datetime as dt

    when = cleanup._terminated_at({"StateTransitionReason": "User initiated (2026-12-01 10:15:00 GMT)"})
    assert when == dt.datetime(2026, 12, 1, 10, 15, tzinfo=dt.timezone.utc)
    assert cleanup._terminated_at({"StateTransitionReason": ""}) is None


def test_run_json_holds_the_estimated_cost_05_glued(tmp_path):
    import json

    from eks_hub_runbook.records import archive

    run = archive.Run.create("spend-record", [("00_prerequisites", tmp_path / "00.ipynb"), ("05_cleanup", tmp_path / "05.ipynb")],
                             {}, target="sandbox", root=tmp_path)
    assert "estimated_cost" not in json.loads((run.dir / archive.RUN_FILE).read_text())
    spend = {"usd": 0.42, "items": [{"part": "fixed", "item": "EKS control plane", "USD": 0.1}], "source": "price table"}
    run.entry("05_cleanup").scraps = {"estimated_cost": spend, "cleanup": {"leftovers": 0}}
    run.save()
    recorded = json.loads((run.dir / archive.RUN_FILE).read_text())
    assert recorded["estimated_cost"] == spend
    assert archive.Run.load(run.dir).record.to_dict()["estimated_cost"] == spend  # kept when read and written again

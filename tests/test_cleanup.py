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


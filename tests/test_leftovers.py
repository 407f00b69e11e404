"""What the leftovers scan and the lookups of Kubernetes-created resources find (local AWS)."""

from __future__ import annotations

import pytest

from eks_hub_runbook import tls
from eks_hub_runbook.aws import acm, leftovers
from eks_hub_runbook.aws.session import client
from eks_hub_runbook.params import resolve

pytestmark = pytest.mark.sandbox

REGION = "us-west-2"


def _ec2():
    return client("ec2", "sandbox", REGION)


def _network(cidr: str) -> tuple[str, list[str]]:
    """A VPC with two subnets (what a load balancer needs), untagged."""
    vpc = _ec2().create_vpc(CidrBlock=f"{cidr}.0.0/16")["Vpc"]["VpcId"]
    subnets = [_ec2().create_subnet(VpcId=vpc, CidrBlock=f"{cidr}.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
               for i, z in enumerate("ab")]
    return vpc, subnets


def _load_balancer(cluster: str, name: str, subnets: list[str], vpc: str) -> tuple[str, str]:
    """A load balancer and a target group as the load balancer controller tags them: (LB ARN, TG ARN)."""
    elb = client("elbv2", "sandbox", REGION)
    tags = [{"Key": leftovers.LB_CLUSTER_TAG, "Value": cluster}]
    lb = elb.create_load_balancer(Name=name, Subnets=subnets, Type="network", Tags=tags)["LoadBalancers"][0]
    tg = elb.create_target_group(Name=name, Protocol="TCP", Port=80, VpcId=vpc, TargetType="ip", Tags=tags)["TargetGroups"][0]
    return lb["LoadBalancerArn"], tg["TargetGroupArn"]


def _ids(resources: list[leftovers.Resource]) -> set[str]:
    return {r.id for r in resources}


def test_cluster_owned_tag():
    assert leftovers.cluster_owned_tag("hub") == "kubernetes.io/cluster/hub"


def test_load_balancers_and_target_groups_of_the_cluster_only(aws_sandbox):
    vpc, subnets = _network("10.21")
    lb, tg = _load_balancer("look-elb", "k8s-look-elb", subnets, vpc)
    other_lb, other_tg = _load_balancer("look-elb-other", "k8s-look-other", subnets, vpc)
    dns = client("elbv2", "sandbox", REGION).describe_load_balancers(LoadBalancerArns=[lb])["LoadBalancers"][0]["DNSName"]
    assert dns and leftovers.load_balancers("look-elb", "sandbox", REGION) == [leftovers.Resource(lb, dns)]
    assert leftovers.target_groups("look-elb", "sandbox", REGION) == [leftovers.Resource(tg, "k8s-look-elb")]
    assert _ids(leftovers.load_balancers("look-elb-other", "sandbox", REGION)) == {other_lb}
    # the scan finds the same ones, through the same listing
    rows = leftovers.scan("look-elb", "sandbox", REGION, services=["elbv2"])
    assert {(r["type"], r["id"], r["match"]) for r in rows} == {
        ("load-balancer", lb, "tag elbv2.k8s.aws/cluster"), ("target-group", tg, "tag elbv2.k8s.aws/cluster")}
    assert other_tg not in {r["id"] for r in rows}


def test_security_groups_volumes_and_network_interfaces_of_the_cluster_only(aws_sandbox):
    vpc, subnets = _network("10.22")
    ec2 = _ec2()
    group = ec2.create_security_group(GroupName="k8s-traffic-look", Description="lb", VpcId=vpc, TagSpecifications=[
        {"ResourceType": "security-group", "Tags": [{"Key": leftovers.LB_CLUSTER_TAG, "Value": "look-ec2"}]}])["GroupId"]
    ec2.create_security_group(GroupName="someone-elses", Description="x", VpcId=vpc)
    pvc_tags = [{"Key": leftovers.EBS_CSI_TAG, "Value": "true"},
                {"Key": "kubernetes.io/created-for/pvc/name", "Value": "hub-db-dir"},
                {"Key": "kubernetes.io/created-for/pvc/namespace", "Value": "jupyterhub"}]
    owned = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=10, TagSpecifications=[{"ResourceType": "volume", "Tags": [
        {"Key": leftovers.cluster_owned_tag("look-ec2"), "Value": "owned"}, *pvc_tags]}])["VolumeId"]
    legacy = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=10, TagSpecifications=[{"ResourceType": "volume", "Tags": [
        {"Key": "KubernetesCluster", "Value": "look-ec2"}, {"Key": leftovers.EBS_CSI_TAG, "Value": "true"}]}])["VolumeId"]
    ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=10)  # not the cluster's
    ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=10, TagSpecifications=[{"ResourceType": "volume", "Tags": [
        {"Key": leftovers.cluster_owned_tag("look-ec2"), "Value": "owned"}]}])  # the cluster's, but no PVC's
    eni = ec2.create_network_interface(SubnetId=subnets[0], Description="aws-K8S-i-0123", TagSpecifications=[
        {"ResourceType": "network-interface", "Tags": [{"Key": leftovers.CNI_CLUSTER_TAG, "Value": "look-ec2"}]}])
    ec2.create_network_interface(SubnetId=subnets[0], Description="not the cluster's")
    assert leftovers.load_balancer_security_groups("look-ec2", "sandbox", REGION) == [leftovers.Resource(group, "k8s-traffic-look")]
    volumes = {r.id: r.name for r in leftovers.pvc_volumes("look-ec2", "sandbox", REGION)}
    assert volumes == {owned: "jupyterhub/hub-db-dir", legacy: ""}
    assert leftovers.cni_network_interfaces("look-ec2", "sandbox", REGION) == [
        leftovers.Resource(eni["NetworkInterface"]["NetworkInterfaceId"], "aws-K8S-i-0123")]
    for lookup in (leftovers.load_balancer_security_groups, leftovers.pvc_volumes, leftovers.cni_network_interfaces,
                   leftovers.karpenter_instances, leftovers.load_balancers, leftovers.target_groups):
        assert lookup("look-nothing", "sandbox", REGION) == []


def test_karpenter_instances_of_the_cluster_only(aws_sandbox):
    ec2 = _ec2()
    image = ec2.describe_images()["Images"][0]["ImageId"]
    karpenter = [{"Key": leftovers.cluster_owned_tag("look-karp"), "Value": "owned"},
                 {"Key": leftovers.KARPENTER_NODEPOOL_TAG, "Value": "gpu"}]
    node = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="g5.xlarge", TagSpecifications=[
        {"ResourceType": "instance", "Tags": karpenter}])["Instances"][0]["InstanceId"]
    ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[  # a node group's, not Karpenter's
        {"ResourceType": "instance", "Tags": karpenter[:1]}])
    gone = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": karpenter}])["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[gone])
    assert leftovers.karpenter_instances("look-karp", "sandbox", REGION) == [leftovers.Resource(node, "gpu g5.xlarge")]


def test_the_scan_lists_the_deployments_acm_certificates(aws_sandbox, tmp_path, state_dir):
    params = resolve(target="sandbox", deployment="look-acm", auth="cognito", domain="hub.example.com")
    material = tls.generate_self_signed("hub.example.com", tmp_path)
    imported = acm.import_certificate(params, material)
    acm_client = client("acm", "sandbox", REGION)
    legacy = acm_client.import_certificate(Certificate=material.certificate_pem, PrivateKey=material.key_pem, Tags=[
        {"Key": "eks-hub-runbook/deployment", "Value": "look-acm"}, {"Key": "managed-by", "Value": "eks-hub-runbook"}])["CertificateArn"]
    untagged = acm_client.import_certificate(Certificate=material.certificate_pem, PrivateKey=material.key_pem)["CertificateArn"]
    other = acm.import_certificate(resolve(target="sandbox", deployment="look-acm-other", auth="cognito",
                                           domain="hub.example.com"), material)
    rows = leftovers.scan("look-acm", "sandbox", REGION, services=["acm"])
    assert {(r["service"], r["type"], r["id"], r["name"]) for r in rows} == {
        ("acm", "certificate", imported, "hub.example.com"), ("acm", "certificate", legacy, "hub.example.com")}
    matches = {r["id"]: r["match"] for r in rows}
    assert matches[imported] == "tag runbook:deployment"
    assert matches[legacy].startswith("tag eks-hub-runbook/deployment")
    assert "acm" in leftovers.SCANNERS and any(r["service"] == "acm" for r in leftovers.scan("look-acm", "sandbox", REGION))
    for arn in (imported, legacy, untagged, other):
        acm_client.delete_certificate(CertificateArn=arn)
    assert leftovers.scan("look-acm", "sandbox", REGION, services=["acm"]) == []

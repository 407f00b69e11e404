"""Sweep by tag (aws/sweep.py, cleanup.sweep): the order as data, every Terraform resource type
covered, and the sweep of orphans of every kind in a local AWS of the module's own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from eks_hub_runbook import cleanup, tls
from eks_hub_runbook.aws import acm, leftovers, sweep
from eks_hub_runbook.aws.session import client
from eks_hub_runbook.aws.tags import DEPLOYMENT_TAG
from eks_hub_runbook.params import resolve

TERRAFORM = Path(__file__).resolve().parents[1] / "terraform"
REGION = "us-west-2"

# Resource types of the AWS provider that take no ``tags`` argument (so the provider's default_tags
# cannot reach them): each must go with a parent the sweep deletes. Checked against the provider's
# documentation (registry.terraform.io/providers/hashicorp/aws/5.100): none of these has ``tags``.
NOT_TAGGABLE = {
    "aws_vpc_ipv4_cidr_block_association": "a VPC's secondary CIDR block",
    "aws_route": "a route in a route table",
    "aws_route_table_association": "a subnet's association with a table",
    "aws_eks_access_policy_association": "a policy of an access entry",
    "aws_iam_role_policy": "an inline policy of a role",
    "aws_iam_role_policy_attachment": "an attachment of a managed policy",
    "aws_kms_alias": "a name of a key",
    "aws_cloudwatch_event_target": "a target of a rule",
    "aws_cognito_user_pool_client": "an app client of a pool",
    "aws_cognito_user_pool_domain": "a domain of a pool",
    "aws_efs_mount_target": "a file system's interface in a subnet",
    "aws_sqs_queue_policy": "a queue's policy",
}


def _terraform_types() -> set[str]:
    return {m for path in TERRAFORM.glob("*.tf") for m in re.findall(r'^resource\s+"(aws_[a-z0-9_]+)"', path.read_text(), re.M)}


# --------------------------------------------------------------------------- the order, as data


# Kinds the sweep deletes that carry no tag: reached through their parent, not by tag.
REACHED_THROUGH_PARENT = {
    ("efs", "mount-target"): "sweep.children() lists a swept file system's mount targets",
    ("kms", "alias"): "the scan finds the secrets key's alias by name",
    ("cognito-idp", "user-pool-domain"): "the scan lists a swept pool's domain",
}


def test_every_terraform_resource_type_is_swept_or_goes_with_a_swept_parent():
    types = _terraform_types()
    assert len(types) > 25  # the parse found the module's resources
    assert sorted(types - set(sweep.TERRAFORM_TYPES)) == []  # a new resource type needs a line in TERRAFORM_TYPES
    for kind, covered in sweep.TERRAFORM_TYPES.items():
        target = covered.parent if isinstance(covered, sweep.WithParent) else covered
        assert target in sweep.RANK and target in sweep.DELETERS, kind
        if kind in NOT_TAGGABLE:  # the sweep cannot find it by tag: its parent must take it
            assert isinstance(covered, sweep.WithParent) or covered in REACHED_THROUGH_PARENT, kind


def test_the_order_has_one_deleter_per_kind_and_every_scanned_kind():
    assert set(sweep.DELETERS) == set(sweep.RANK) == set(sweep.ACTIONS)
    assert len(sweep.ORDER) == len(sweep.RANK)  # no kind twice
    rank = sweep.RANK
    for before, after in [(("ec2", "instance"), ("ec2", "subnet")), (("eks", "nodegroup"), ("eks", "cluster")),
                          (("efs", "mount-target"), ("efs", "file-system")), (("ec2", "nat-gateway"), ("ec2", "elastic-ip")),
                          (("ec2", "subnet"), ("ec2", "vpc")), (("elbv2", "load-balancer"), ("acm", "certificate")),
                          (("cognito-idp", "user-pool-domain"), ("cognito-idp", "user-pool")),
                          (("iam", "instance-profile"), ("iam", "role")), (("eks", "cluster"), ("iam", "role")),
                          (("kms", "alias"), ("kms", "key")), (("elbv2", "load-balancer"), ("ec2", "security-group"))]:
        assert rank[before] < rank[after], (before, after)


def test_plan_orders_drops_kept_unknown_and_duplicate_rows():
    rows = [
        {"service": "ec2", "type": "vpc", "id": "vpc-1"},
        {"service": "acm", "type": "certificate", "id": "arn:kept"},
        {"service": "ec2", "type": "subnet", "id": "subnet-2"},
        {"service": "iam", "type": "scan-error", "id": "", "name": "AccessDenied"},
        {"service": "ec2", "type": "instance", "id": "i-1", "state": "running"},
        {"service": "ec2", "type": "subnet", "id": "subnet-1"},
        {"service": "ec2", "type": "subnet", "id": "subnet-2"},
    ]
    items = sweep.plan(rows, keep=["arn:kept"])
    assert [(i.kind, i.id) for i in items] == [("instance", "i-1"), ("subnet", "subnet-2"), ("subnet", "subnet-1"), ("vpc", "vpc-1")]
    assert items[0].row("deleted") == {"service": "ec2", "kind": "instance", "id": "i-1", "action": "terminate", "result": "deleted"}


@pytest.mark.parametrize(("code", "verdict"), [
    ("InvalidVpcID.NotFound", "gone"), ("NoSuchEntity", "gone"), ("ResourceNotFoundException", "gone"),
    ("AWS.SimpleQueueService.NonExistentQueue", "gone"), ("KMSInvalidStateException", "gone"),
    ("DependencyViolation", "retry"), ("ResourceInUseException", "retry"), ("DeleteConflict", "retry"),
    ("FileSystemInUse", "retry"), ("AccessDenied", "fail"), ("UnauthorizedOperation", "fail"),
])
def test_classify(code, verdict):
    assert sweep.classify(code) == verdict


def test_the_core_nodes_launch_template_tags_its_instances_for_the_deployment():
    # default_tags do not reach a launch template's tag_specifications: the instances EKS launches
    # from it would carry no deployment tag
    text = (TERRAFORM / "eks.tf").read_text()
    block = re.search(r'resource "aws_launch_template" "core" \{.*?\n\}', text, re.S).group(0)
    specs = re.findall(r"tag_specifications \{(.*?)\n  \}", block, re.S)
    assert specs and all('"runbook:deployment" = var.name' in spec for spec in specs)
    assert "default_tags" in (TERRAFORM / "versions.tf").read_text()
    assert '"runbook:deployment" = var.name' in (TERRAFORM / "versions.tf").read_text()


def test_sweep_rows_say_when_nothing_was_left():
    assert cleanup.sweep_rows([]) == [{"service": "", "kind": "", "id": "", "action": "", "result": "nothing left to sweep"}]
    row = {"service": "sqs", "kind": "queue", "id": "u", "action": "delete", "result": "deleted"}
    assert cleanup.sweep_rows([row]) == [row]


# --------------------------------------------------------------------------- orphans of every kind


NAME = "sweep-all"
OTHER = "sweep-other"


def _tags(name: str = NAME) -> list[dict[str, str]]:
    return [{"Key": DEPLOYMENT_TAG, "Value": name}]


def _spec(kind: str, tags: list[dict[str, str]]) -> list[dict]:
    return [{"ResourceType": kind, "Tags": tags}]


def _orphans(name: str, cidr: str, cert_dir: Path) -> dict[str, str]:
    """What a SIGKILLed apply can leave, created directly and tagged as the module and the
    controllers tag it. Returns ids by kind."""
    ec2, tags = client("ec2", "sandbox", REGION), _tags(name)
    ids: dict[str, str] = {}
    ids["vpc"] = vpc = ec2.create_vpc(CidrBlock=f"{cidr}.0.0/16", TagSpecifications=_spec("vpc", tags))["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"{cidr}.{i}.0/24", AvailabilityZone=f"{REGION}{z}",
                                 TagSpecifications=_spec("subnet", tags))["Subnet"]["SubnetId"] for i, z in enumerate("ab")]
    ids["subnet"] = subnets[0]
    ids["igw"] = igw = ec2.create_internet_gateway(TagSpecifications=_spec("internet-gateway", tags))["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc, TagSpecifications=_spec("route-table", tags))["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnets[0])
    groups = [ec2.create_security_group(GroupName=f"{name}-{n}", Description="x", VpcId=vpc,
                                        TagSpecifications=_spec("security-group", tags))["GroupId"] for n in ("cluster", "node")]
    for group, other in (groups, groups[::-1]):  # each names the other: neither goes first without a revoke
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": other}]}])
    ids["sg"] = groups[0]
    ids["eni"] = ec2.create_network_interface(SubnetId=subnets[1], Groups=[groups[1]], TagSpecifications=_spec(
        "network-interface", tags))["NetworkInterface"]["NetworkInterfaceId"]
    ids["eip"] = ec2.allocate_address(Domain="vpc", TagSpecifications=_spec("elastic-ip", tags))["AllocationId"]
    nat_ip = ec2.allocate_address(Domain="vpc", TagSpecifications=_spec("elastic-ip", tags))["AllocationId"]
    ids["nat"] = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=nat_ip, TagSpecifications=_spec(
        "natgateway", tags))["NatGateway"]["NatGatewayId"]
    ids["volume"] = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=10, TagSpecifications=_spec("volume", [
        {"Key": leftovers.cluster_owned_tag(name), "Value": "owned"}, {"Key": leftovers.EBS_CSI_TAG, "Value": "true"}]))["VolumeId"]
    # Karpenter's node and launch template
    image = ec2.describe_images()["Images"][0]["ImageId"]
    karpenter = [{"Key": leftovers.cluster_owned_tag(name), "Value": "owned"}, {"Key": leftovers.KARPENTER_NODEPOOL_TAG, "Value": "gpu"},
                 {"Key": "karpenter.sh/discovery", "Value": name}]
    ids["instance"] = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="g5.xlarge", SubnetId=subnets[1],
                                        TagSpecifications=_spec("instance", karpenter))["Instances"][0]["InstanceId"]
    ids["lt"] = ec2.create_launch_template(LaunchTemplateName=f"karpenter.k8s.aws/{name}-1", LaunchTemplateData={"ImageId": image},
                                           TagSpecifications=_spec("launch-template", [
                                               {"Key": "karpenter.k8s.aws/cluster", "Value": name}]))["LaunchTemplate"]["LaunchTemplateId"]
    # the load balancer controller's
    elb, lb_tags = client("elbv2", "sandbox", REGION), [{"Key": leftovers.LB_CLUSTER_TAG, "Value": name}]
    ids["lb"] = elb.create_load_balancer(Name=f"k8s-{name}", Subnets=subnets, Type="network", Tags=lb_tags)["LoadBalancers"][0]["LoadBalancerArn"]
    ids["tg"] = elb.create_target_group(Name=f"k8s-{name}", Protocol="TCP", Port=80, VpcId=vpc, TargetType="ip",
                                        Tags=lb_tags)["TargetGroups"][0]["TargetGroupArn"]
    # IAM: a role with a managed and an inline policy, in an instance profile
    iam = client("iam", "sandbox", REGION)
    role = iam.create_role(RoleName=f"{name}-karpenter-node", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
                           Tags=tags)["Role"]
    ids["role"] = role["RoleName"]
    document = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]})
    ids["policy"] = iam.create_policy(PolicyName=f"{name}-karpenter-controller", PolicyDocument=document, Tags=tags)["Policy"]["Arn"]
    iam.create_policy_version(PolicyArn=ids["policy"], PolicyDocument=document, SetAsDefault=True)
    iam.attach_role_policy(RoleName=role["RoleName"], PolicyArn=ids["policy"])
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="inline", PolicyDocument=document)
    iam.create_instance_profile(InstanceProfileName=f"{name}_profile", Tags=[{"Key": leftovers.cluster_owned_tag(name), "Value": "owned"}])
    iam.add_role_to_instance_profile(InstanceProfileName=f"{name}_profile", RoleName=role["RoleName"])
    ids["profile"] = f"{name}_profile"
    # EKS: a cluster with a node group and an add-on
    eks = client("eks", "sandbox", REGION)
    eks.create_cluster(name=name, roleArn=role["Arn"], version="1.32", resourcesVpcConfig={"subnetIds": subnets}, tags={DEPLOYMENT_TAG: name})
    eks.create_nodegroup(clusterName=name, nodegroupName="core", nodeRole=role["Arn"], subnets=subnets, tags={DEPLOYMENT_TAG: name})
    eks.create_addon(clusterName=name, addonName="vpc-cni")
    # EFS with a mount target and an access point
    efs = client("efs", "sandbox", REGION)
    ids["efs"] = fs = efs.create_file_system(CreationToken=f"{name}-users", Tags=tags)["FileSystemId"]
    ids["mount"] = efs.create_mount_target(FileSystemId=fs, SubnetId=subnets[0])["MountTargetId"]
    ids["ap"] = efs.create_access_point(FileSystemId=fs, Tags=tags)["AccessPointId"]
    # KMS, logs, SQS, EventBridge, Cognito, ACM
    kms = client("kms", "sandbox", REGION)
    ids["key"] = key = kms.create_key(Tags=[{"TagKey": DEPLOYMENT_TAG, "TagValue": name}])["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=f"alias/{name}-eks-secrets", TargetKeyId=key)
    ids["log"] = f"/aws/eks/{name}/cluster"
    client("logs", "sandbox", REGION).create_log_group(logGroupName=ids["log"], tags={DEPLOYMENT_TAG: name})
    ids["flow log"] = f"/aws/vpc/{name}/flow-logs"  # the VPC's flow logs (vpc_flow_logs on)
    client("logs", "sandbox", REGION).create_log_group(logGroupName=ids["flow log"], tags={DEPLOYMENT_TAG: name})
    sqs = client("sqs", "sandbox", REGION)
    ids["queue"] = queue = sqs.create_queue(QueueName=f"{name}-karpenter", tags={DEPLOYMENT_TAG: name})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = client("events", "sandbox", REGION)
    ids["rule"] = events.put_rule(Name=f"{name}-karpenter-rebalance", EventPattern='{"source": ["aws.ec2"]}', Tags=tags)["RuleArn"]
    events.put_targets(Rule=f"{name}-karpenter-rebalance", Targets=[{"Id": "karpenter-interruption-queue", "Arn": queue_arn}])
    cognito = client("cognito-idp", "sandbox", REGION)
    ids["pool"] = pool = cognito.create_user_pool(PoolName=f"{name}-users", UserPoolTags={DEPLOYMENT_TAG: name})["UserPool"]["Id"]
    ids["domain"] = f"{name}-login"
    cognito.create_user_pool_domain(Domain=ids["domain"], UserPoolId=pool)
    params = resolve(target="sandbox", deployment=name, auth="cognito", domain="hub.example.com")
    ids["certificate"] = acm.import_certificate(params, tls.generate_self_signed("hub.example.com", cert_dir))
    return ids


def _bystanders(tmp: Path) -> dict[str, str]:
    """Resources the sweep must leave: untagged ones named like the deployment, another deployment's."""
    ec2, iam = client("ec2", "sandbox", REGION), client("iam", "sandbox", REGION)
    return {
        "vpc": ec2.create_vpc(CidrBlock="10.59.0.0/16", TagSpecifications=_spec("vpc", _tags(OTHER)))["Vpc"]["VpcId"],
        "untagged vpc": ec2.create_vpc(CidrBlock="10.58.0.0/16")["Vpc"]["VpcId"],
        "role": iam.create_role(RoleName=f"{NAME}-not-ours", AssumeRolePolicyDocument="{}")["Role"]["RoleName"],
        "queue": client("sqs", "sandbox", REGION).create_queue(QueueName=f"{NAME}-x", tags={DEPLOYMENT_TAG: OTHER})["QueueUrl"],
        "key": client("kms", "sandbox", REGION).create_key(Tags=[{"TagKey": DEPLOYMENT_TAG, "TagValue": OTHER}])["KeyMetadata"]["KeyId"],
    }


def _bystanders_there(ids: dict[str, str]) -> None:
    ec2 = client("ec2", "sandbox", REGION)
    assert {v["VpcId"] for v in ec2.describe_vpcs(VpcIds=[ids["vpc"], ids["untagged vpc"]])["Vpcs"]} == {ids["vpc"], ids["untagged vpc"]}
    client("iam", "sandbox", REGION).get_role(RoleName=ids["role"])
    client("sqs", "sandbox", REGION).get_queue_attributes(QueueUrl=ids["queue"])
    assert client("kms", "sandbox", REGION).describe_key(KeyId=ids["key"])["KeyMetadata"]["KeyState"] == "Enabled"


@pytest.mark.sandbox
def test_the_sweep_deletes_orphans_of_every_kind_in_order_and_leaves_others(private_aws_sandbox, tmp_path):
    ids = _orphans(NAME, "10.57", tmp_path)
    others = _bystanders(tmp_path)
    params = resolve(target="sandbox", deployment=NAME, auth="cognito", domain="hub.example.com")
    before = {(r["service"], r["type"]) for r in leftovers.scan(NAME, "sandbox", REGION)}
    children = {("eks", "nodegroup"), ("eks", "addon"), ("efs", "mount-target"), ("efs", "access-point")}
    # every kind but the children (no tags; listed from their parent) and an alias (its key is tagged)
    assert before == set(sweep.RANK) - children - {("kms", "alias")}, sorted(set(sweep.RANK) - children - before)

    # the certificate 01 imported is kept unless asked: the sweep leaves it, the leftovers table too
    passes = []
    rows = cleanup.sweep(params, delete_certificate=False, delay=0.1, progress=lambda step, status, detail: passes.append(detail))
    assert passes[-1] == "35 resource(s)" and "pass 3: scanning" not in passes  # one pass deletes, one finds nothing
    assert [r for r in rows if r["result"] not in ("deleted", "gone")] == []
    swept = {(r["service"], r["kind"]) for r in rows}
    assert swept == set(sweep.RANK) - {("acm", "certificate"), ("kms", "alias")}, sorted(set(sweep.RANK) - swept)
    assert [sweep.RANK[(r["service"], r["kind"])] for r in rows] == sorted(sweep.RANK[(r["service"], r["kind"])] for r in rows)
    by_id = {r["id"]: r for r in rows}
    assert by_id[ids["flow log"]]["result"] == by_id[ids["log"]]["result"] == "deleted"
    assert by_id[ids["lt"]]["result"] == "deleted"  # Karpenter's launch template: by its karpenter.k8s.aws/cluster tag
    assert by_id[ids["key"]]["action"] == "schedule deletion (7 days)"
    assert by_id[ids["vpc"]]["result"] == "deleted" and by_id[ids["lb"]]["result"] == "deleted"
    assert cleanup.leftover_rows(params) == []
    kms = client("kms", "sandbox", REGION).describe_key(KeyId=ids["key"])["KeyMetadata"]
    assert kms["KeyState"] == "PendingDeletion"  # and not a leftover
    assert acm.find_imported(params) == [ids["certificate"]]

    rows = cleanup.sweep(params, delete_certificate=True, delay=0.1)
    assert rows == [{"service": "acm", "kind": "certificate", "id": ids["certificate"], "action": "delete", "result": "deleted"}]
    assert leftovers.scan(NAME, "sandbox", REGION) == []
    assert cleanup.sweep(params, delete_certificate=True, delay=0.1) == []  # a second sweep: nothing to do
    _bystanders_there(others)


@pytest.mark.sandbox
def test_a_dependency_still_in_use_is_retried_a_bounded_number_of_times(private_aws_sandbox):
    # a subnet that an interface of someone else's (not tagged, so not swept) still uses
    ec2 = client("ec2", "sandbox", REGION)
    vpc = ec2.create_vpc(CidrBlock="10.56.0.0/16", TagSpecifications=_spec("vpc", _tags("sweep-stuck")))["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.56.1.0/24", TagSpecifications=_spec("subnet", _tags("sweep-stuck")))["Subnet"]["SubnetId"]
    blocker = ec2.run_instances(ImageId=ec2.describe_images()["Images"][0]["ImageId"], MinCount=1, MaxCount=1,
                                SubnetId=subnet)["Instances"][0]["InstanceId"]
    # in the VPC, the instance counts as the deployment's: the sweep terminates it and the rest follows
    rows = sweep.sweep("sweep-stuck", "sandbox", REGION, passes=3, delay=0.01)
    results = {r["kind"]: r["result"] for r in rows}
    assert {k: results.get(k) for k in ("instance", "subnet", "vpc")} == {"instance": "deleted", "subnet": "deleted", "vpc": "deleted"}
    assert set(results.values()) <= {"deleted", "gone"}  # the instance's interface, if listed, went with it
    assert ec2.describe_instances(InstanceIds=[blocker])["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"

    # an interface that stays in use (AWS still detaching it) is retried in each pass, a bounded number of times
    subnet = ec2.create_subnet(VpcId=ec2.create_vpc(CidrBlock="10.55.0.0/16")["Vpc"]["VpcId"], CidrBlock="10.55.1.0/24")["Subnet"]["SubnetId"]
    eni = ec2.create_network_interface(SubnetId=subnet, TagSpecifications=_spec("network-interface", _tags("sweep-stuck2")))[
        "NetworkInterface"]["NetworkInterfaceId"]
    calls = []

    def in_use(aws, item):
        calls.append(item.id)
        raise ClientError({"Error": {"Code": "InvalidNetworkInterface.InUse", "Message": "in use"}}, "DeleteNetworkInterface")

    original = sweep.DELETERS[("ec2", "network-interface")]
    sweep.DELETERS[("ec2", "network-interface")] = in_use
    try:
        rows = sweep.sweep("sweep-stuck2", "sandbox", REGION, passes=3, delay=0.01)
    finally:
        sweep.DELETERS[("ec2", "network-interface")] = original
    assert calls == [eni] * 3
    assert rows == [{"service": "ec2", "kind": "network-interface", "id": eni, "action": "detach, delete",
                     "result": "still in use (InvalidNetworkInterface.InUse)"}]
    assert sweep.sweep("sweep-stuck2", "sandbox", REGION, passes=2, delay=0.01)[0]["result"] == "deleted"
    assert leftovers.scan("sweep-stuck2", "sandbox", REGION) == []


@pytest.mark.sandbox
def test_05s_sweep_cell_says_nothing_left_after_a_clean_destroy(private_aws_sandbox):
    notebook = json.loads((Path(__file__).resolve().parents[1] / "runbooks" / "05_cleanup.ipynb").read_text())
    ids = [cell.get("id") for cell in notebook["cells"]]
    assert ids.index("05-13") < ids.index("05-sweep") < ids.index("05-15")  # after the certificate, before the leftovers
    source = "".join(notebook["cells"][ids.index("05-sweep")]["source"])
    from types import SimpleNamespace

    from eks_hub_runbook import notebook as nb

    scope = {"nb": nb, "cleanup": cleanup, "params": resolve(target="sandbox", deployment="sweep-clean"),
             "options": SimpleNamespace(delete_certificate=False)}
    exec(compile(source, "05-sweep", "exec"), scope)  # noqa: S102 - the notebook's own cell
    assert scope["swept"] == []
    assert scope["progress"].rows() and list(nb.table(cleanup.sweep_rows(scope["swept"]))["result"]) == ["nothing left to sweep"]


@pytest.mark.sandbox
def test_strays_of_a_killed_apply_are_swept_and_what_the_state_holds_is_kept(private_aws_sandbox):
    """A terraform killed mid-create leaves a VPC / KMS key the state never recorded; the resume makes
    another. After the resume, ``sweep_strays`` deletes the unrecorded copies only (the fault matrix's finding)."""
    ec2, kms = client("ec2", "sandbox", REGION), client("kms", "sandbox", REGION)
    kept_vpc = ec2.create_vpc(CidrBlock="10.53.0.0/16", TagSpecifications=_spec("vpc", _tags("strays")))["Vpc"]["VpcId"]
    stray_vpc = ec2.create_vpc(CidrBlock="10.53.0.0/16", TagSpecifications=_spec("vpc", _tags("strays")))["Vpc"]["VpcId"]
    stray_subnet = ec2.create_subnet(VpcId=stray_vpc, CidrBlock="10.53.1.0/24",
                                     TagSpecifications=_spec("subnet", _tags("strays")))["Subnet"]["SubnetId"]
    keys = [kms.create_key(Tags=[{"TagKey": DEPLOYMENT_TAG, "TagValue": "strays"}])["KeyMetadata"]["Arn"] for _ in range(2)]
    # a controller's resource (cluster tag only) is not a stray even if the state does not know it
    controllers = ec2.create_vpc(CidrBlock="10.52.0.0/16", TagSpecifications=_spec(
        "vpc", [{"Key": "kubernetes.io/cluster/strays", "Value": "owned"}]))["Vpc"]["VpcId"]

    found = sweep.strays(leftovers.scan("strays", "sandbox", REGION), {kept_vpc, keys[0]})
    assert {r["id"] for r in found} == {stray_vpc, stray_subnet, keys[1]}
    rows = sweep.sweep_strays("strays", "sandbox", REGION, {kept_vpc, keys[0]}, delay=0.01)
    assert {(r["kind"], r["id"], r["result"]) for r in rows} == {
        ("vpc", stray_vpc, "deleted"), ("subnet", stray_subnet, "deleted"), ("key", keys[1], "deleted")}
    left = {r["id"] for r in leftovers.scan("strays", "sandbox", REGION)}
    assert left == {kept_vpc, keys[0], controllers}
    assert kms.describe_key(KeyId=keys[1])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert sweep.sweep_strays("strays", "sandbox", REGION, {kept_vpc, keys[0]}, delay=0.01) == []
    with pytest.raises(ValueError, match="complete Terraform state"):
        sweep.sweep_strays("strays", "sandbox", REGION, set())

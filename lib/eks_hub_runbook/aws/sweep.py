"""Sweep by tag: delete every AWS resource that still belongs to a deployment, in dependency order.

After Terraform's staged destroy nothing should be left; a SIGKILLed apply or destroy, a controller
that raced the destroy or an AWS error can still leave resources that carry the deployment's tags
(``runbook:deployment`` and the tags the controllers put on what they create for the cluster). The
leftovers scan (:func:`.leftovers.scan`) finds them; this module deletes them.

Pure parts (no AWS calls), so the order can be read and tested as data:

- :data:`ORDER`: every kind the sweep deletes, ``(service, kind)``, in deletion order, with what
  deleting it does (:data:`ACTIONS`);
- :data:`TERRAFORM_TYPES`: each ``aws_*`` resource type of ``terraform/``, the sweep kind that deletes
  it, or the parent it goes with;
- :func:`plan`: scan rows (and their children) to :class:`Item` s in deletion order, kept ones left out;
- :func:`classify`: an AWS error code as ``gone``, ``retry`` or ``fail``.

The boto3 I/O: one deleter per kind (:data:`DELETERS`), :func:`children` (an EKS cluster's node groups
and add-ons, a file system's mount targets and access points: not tagged themselves, they must go
before their parent), and :func:`sweep`, which scans, deletes, and scans again until nothing is left
or a bounded number of passes ran. "Not found" counts as done; a dependency error ("still in use")
is retried in the next pass. The result is one row per resource (``service``, ``kind``, ``id``,
``action``, ``result``) for a table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from . import leftovers, session

Row = dict[str, str]

# ---- the order, as data -----------------------------------------------------------------------

KMS_PENDING_WINDOW_DAYS = 7  # the shortest waiting period KMS allows

# (service, kind, what deleting it does), in deletion order: what runs on the network (instances,
# node groups, the cluster, load balancers, file systems) before the network; inside the network,
# what holds addresses and interfaces before subnets, subnets before the VPC; the roles and keys
# those services used after them; the certificate last (a load balancer may still use it).
ORDER: tuple[tuple[str, str, str], ...] = (
    ("ec2", "instance", "terminate"),
    ("eks", "nodegroup", "delete"),
    ("eks", "addon", "delete"),
    ("eks", "cluster", "delete"),
    ("elbv2", "load-balancer", "delete"),
    ("elbv2", "target-group", "delete"),
    ("efs", "access-point", "delete"),
    ("efs", "mount-target", "delete"),
    ("efs", "file-system", "delete"),
    ("ec2", "nat-gateway", "delete"),
    ("ec2", "elastic-ip", "disassociate, release"),
    ("ec2", "network-interface", "detach, delete"),
    ("ec2", "volume", "delete"),
    ("ec2", "launch-template", "delete"),
    ("ec2", "internet-gateway", "detach, delete"),
    ("ec2", "route-table", "disassociate, delete"),
    ("ec2", "security-group", "revoke group rules, delete"),
    ("ec2", "subnet", "delete"),
    ("ec2", "vpc", "delete"),
    ("cognito-idp", "user-pool-domain", "delete"),
    ("cognito-idp", "user-pool", "delete"),
    ("events", "rule", "remove targets, delete"),
    ("sqs", "queue", "delete"),
    ("iam", "instance-profile", "remove roles, delete"),
    ("iam", "role", "detach policies, delete"),
    ("iam", "policy", "detach, delete versions, delete"),
    ("kms", "alias", "delete"),
    ("kms", "key", f"schedule deletion ({KMS_PENDING_WINDOW_DAYS} days)"),
    ("logs", "log-group", "delete"),
    ("acm", "certificate", "delete"),
)
RANK: dict[tuple[str, str], int] = {(service, kind): n for n, (service, kind, _) in enumerate(ORDER)}
ACTIONS: dict[tuple[str, str], str] = {(service, kind): action for service, kind, action in ORDER}


@dataclass(frozen=True)
class WithParent:
    """A Terraform resource type the sweep does not delete itself: it goes with ``parent`` (a sweep
    kind), and ``why``."""

    parent: tuple[str, str]
    why: str


# Every aws_* resource type in terraform/: the sweep kind that deletes it, or the parent it goes with.
# tests/test_sweep.py holds this equal to the types terraform/*.tf uses.
TERRAFORM_TYPES: dict[str, tuple[str, str] | WithParent] = {
    "aws_vpc": ("ec2", "vpc"),
    "aws_vpc_ipv4_cidr_block_association": WithParent(("ec2", "vpc"), "not taggable; a VPC's CIDR blocks go with it"),
    "aws_internet_gateway": ("ec2", "internet-gateway"),
    "aws_subnet": ("ec2", "subnet"),
    "aws_eip": ("ec2", "elastic-ip"),
    "aws_nat_gateway": ("ec2", "nat-gateway"),
    "aws_route_table": ("ec2", "route-table"),
    "aws_route": WithParent(("ec2", "route-table"), "not taggable; a route is part of its table"),
    "aws_route_table_association": WithParent(("ec2", "route-table"), "not taggable; the table's deleter disassociates it"),
    "aws_security_group": ("ec2", "security-group"),
    "aws_default_security_group": WithParent(("ec2", "vpc"), "the VPC's default group: AWS deletes it with the VPC"),
    "aws_vpc_security_group_ingress_rule": WithParent(("ec2", "security-group"), "a rule is part of its group"),
    "aws_vpc_security_group_egress_rule": WithParent(("ec2", "security-group"), "a rule is part of its group"),
    "aws_flow_log": WithParent(("ec2", "vpc"), "AWS deletes a VPC's flow logs with the VPC"),
    "aws_launch_template": ("ec2", "launch-template"),
    "aws_eks_cluster": ("eks", "cluster"),
    "aws_eks_node_group": ("eks", "nodegroup"),
    "aws_eks_addon": ("eks", "addon"),
    "aws_eks_access_entry": WithParent(("eks", "cluster"), "EKS deletes access entries with the cluster"),
    "aws_eks_access_policy_association": WithParent(("eks", "cluster"), "not taggable; part of an access entry"),
    "aws_eks_pod_identity_association": WithParent(("eks", "cluster"), "EKS deletes pod identity associations with the cluster"),
    "aws_efs_file_system": ("efs", "file-system"),
    "aws_efs_mount_target": ("efs", "mount-target"),
    "aws_efs_access_point": ("efs", "access-point"),
    "aws_iam_role": ("iam", "role"),
    "aws_iam_policy": ("iam", "policy"),
    "aws_iam_instance_profile": ("iam", "instance-profile"),
    "aws_iam_role_policy": WithParent(("iam", "role"), "not taggable; the role's deleter deletes its inline policies"),
    "aws_iam_role_policy_attachment": WithParent(("iam", "role"), "not taggable; the role's deleter detaches its policies"),
    "aws_kms_key": ("kms", "key"),
    "aws_kms_alias": ("kms", "alias"),
    "aws_cloudwatch_log_group": ("logs", "log-group"),
    "aws_sqs_queue": ("sqs", "queue"),
    "aws_sqs_queue_policy": WithParent(("sqs", "queue"), "not taggable; part of the queue"),
    "aws_cloudwatch_event_rule": ("events", "rule"),
    "aws_cloudwatch_event_target": WithParent(("events", "rule"), "not taggable; the rule's deleter removes its targets"),
    "aws_cognito_user_pool": ("cognito-idp", "user-pool"),
    "aws_cognito_user_pool_domain": ("cognito-idp", "user-pool-domain"),
    "aws_cognito_user_pool_client": WithParent(("cognito-idp", "user-pool"), "not taggable; Cognito deletes clients with the pool"),
    "aws_acm_certificate": ("acm", "certificate"),
}


@dataclass(frozen=True)
class Item:
    """A resource to delete: its service and kind (a key of :data:`RANK`), id, name and state as the
    scan reported them, and ``parent`` (a cluster's name, a file system's id) for children."""

    service: str
    kind: str
    id: str
    name: str = ""
    state: str = ""
    parent: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies the resource across passes."""
        return (self.service, self.kind, self.id)

    def row(self, result: str) -> Row:
        """The item as a row of the sweep's table."""
        return {"service": self.service, "kind": self.kind, "id": self.id,
                "action": ACTIONS[(self.service, self.kind)], "result": result}


def plan(rows: Iterable[Row], keep: Iterable[str] = ()) -> list[Item]:
    """The scan's rows (``service``, ``type``, ``id``, ...) as items in deletion order.

    Rows of kinds the sweep does not know (``scan-error``) and ids in ``keep`` (a certificate kept
    on purpose) are left out; duplicates count once. Within a kind the order is the scan's.
    """
    kept = set(keep)
    items: dict[tuple[str, str, str], Item] = {}
    for row in rows:
        kind = (row["service"], row["type"])
        if kind not in RANK or row["id"] in kept or not row["id"]:
            continue
        item = Item(row["service"], row["type"], row["id"], row.get("name", ""), row.get("state", ""), row.get("parent", ""))
        items.setdefault(item.key, item)
    return sorted(items.values(), key=lambda item: RANK[(item.service, item.kind)])


# Error codes: the resource is gone (done), still in use by something being deleted (retry later).
_GONE = ("NoSuchEntity", "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue")
_RETRY = ("DependencyViolation", "ResourceInUse", "ResourceInUseException", "InvalidNetworkInterface.InUse",
          "VolumeInUse", "DeleteConflict", "FileSystemInUse", "InvalidIPAddress.InUse", "IncorrectState",
          "IncorrectStateException", "ConcurrentModificationException", "InvalidState", "Conflict",
          "AuthFailure.ServiceLinkedRoleCreationNotPermitted", "InvalidParameterValue")
_ALREADY = ("KMSInvalidStateException",)  # scheduling deletion of a key already pending deletion


def classify(code: str) -> str:
    """What an AWS error code means for a deletion: ``gone`` (done), ``retry`` (a dependency is still
    being deleted) or ``fail``."""
    if code in _GONE or code in _ALREADY or "NotFound" in code:
        return "gone"
    if code in _RETRY:
        return "retry"
    return "fail"


# States in which AWS is already deleting a resource: wait for it rather than ask again.
DELETING_STATES = frozenset({"deleting", "DELETING", "shutting-down", "PendingDeletion"})


# ---- the boto3 I/O: one deleter per kind ----------------------------------------------------


class Clients:
    """boto3 clients for a target and region, made on first use."""

    def __init__(self, target: str, region: str) -> None:
        self.target, self.region = target, region
        self._made: dict[str, Any] = {}

    def __getitem__(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = session.client(service, self.target, self.region)
        return self._made[service]


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _ignore_gone(call: Callable[[], Any]) -> None:
    """Run a preparatory call (detach, remove); a resource already gone is fine."""
    try:
        call()
    except ClientError as exc:
        if classify(_code(exc)) != "gone":
            raise


def _instance(aws: Clients, item: Item) -> None:
    aws["ec2"].terminate_instances(InstanceIds=[item.id])


def _nodegroup(aws: Clients, item: Item) -> None:
    aws["eks"].delete_nodegroup(clusterName=item.parent, nodegroupName=item.name)


def _addon(aws: Clients, item: Item) -> None:
    aws["eks"].delete_addon(clusterName=item.parent, addonName=item.name)


def _cluster(aws: Clients, item: Item) -> None:
    aws["eks"].delete_cluster(name=item.id)


def _load_balancer(aws: Clients, item: Item) -> None:
    aws["elbv2"].delete_load_balancer(LoadBalancerArn=item.id)


def _target_group(aws: Clients, item: Item) -> None:
    aws["elbv2"].delete_target_group(TargetGroupArn=item.id)


def _access_point(aws: Clients, item: Item) -> None:
    aws["efs"].delete_access_point(AccessPointId=item.id)


def _mount_target(aws: Clients, item: Item) -> None:
    aws["efs"].delete_mount_target(MountTargetId=item.id)


def _file_system(aws: Clients, item: Item) -> None:
    aws["efs"].delete_file_system(FileSystemId=item.id)


def _nat_gateway(aws: Clients, item: Item) -> None:
    aws["ec2"].delete_nat_gateway(NatGatewayId=item.id)


def _elastic_ip(aws: Clients, item: Item) -> None:
    ec2 = aws["ec2"]
    for address in ec2.describe_addresses(AllocationIds=[item.id]).get("Addresses", []):
        if address.get("AssociationId"):
            _ignore_gone(lambda a=address: ec2.disassociate_address(AssociationId=a["AssociationId"]))
    ec2.release_address(AllocationId=item.id)


def _network_interface(aws: Clients, item: Item) -> str | None:
    ec2 = aws["ec2"]
    for eni in ec2.describe_network_interfaces(NetworkInterfaceIds=[item.id]).get("NetworkInterfaces", []):
        attachment = eni.get("Attachment") or {}
        if eni.get("RequesterManaged") and attachment:
            return "deleting"  # AWS deletes it with the service it made it for (EKS, a NAT gateway, a load balancer)
        # An instance's primary interface goes with the instance, one AWS manages for a service
        # (a NAT gateway's, a load balancer's) with the service: only a secondary one is detached.
        if attachment.get("AttachmentId") and attachment.get("DeviceIndex", 0) != 0 and not eni.get("RequesterManaged"):
            _ignore_gone(lambda a=attachment: ec2.detach_network_interface(AttachmentId=a["AttachmentId"], Force=True))
    ec2.delete_network_interface(NetworkInterfaceId=item.id)
    return None


def _volume(aws: Clients, item: Item) -> None:
    aws["ec2"].delete_volume(VolumeId=item.id)


def _launch_template(aws: Clients, item: Item) -> None:
    aws["ec2"].delete_launch_template(LaunchTemplateId=item.id)


def _internet_gateway(aws: Clients, item: Item) -> None:
    ec2 = aws["ec2"]
    for gateway in ec2.describe_internet_gateways(InternetGatewayIds=[item.id]).get("InternetGateways", []):
        for attachment in gateway.get("Attachments", []):
            _ignore_gone(lambda a=attachment: ec2.detach_internet_gateway(InternetGatewayId=item.id, VpcId=a["VpcId"]))
    ec2.delete_internet_gateway(InternetGatewayId=item.id)


def _route_table(aws: Clients, item: Item) -> None:
    ec2 = aws["ec2"]
    for table in ec2.describe_route_tables(RouteTableIds=[item.id]).get("RouteTables", []):
        for association in table.get("Associations", []):
            if not association.get("Main") and association.get("RouteTableAssociationId"):
                _ignore_gone(lambda a=association: ec2.disassociate_route_table(AssociationId=a["RouteTableAssociationId"]))
    ec2.delete_route_table(RouteTableId=item.id)


def _security_group(aws: Clients, item: Item) -> None:
    # Groups that refer to each other (the cluster's and the nodes' groups) cannot be deleted while
    # the other's rules name them: revoke this group's rules that name groups first.
    ec2 = aws["ec2"]
    for group in ec2.describe_security_groups(GroupIds=[item.id]).get("SecurityGroups", []):
        for key, revoke in (("IpPermissions", ec2.revoke_security_group_ingress),
                            ("IpPermissionsEgress", ec2.revoke_security_group_egress)):
            naming = [rule for rule in group.get(key, []) if rule.get("UserIdGroupPairs")]
            if naming:
                _ignore_gone(lambda r=revoke, n=naming: r(GroupId=item.id, IpPermissions=n))
    ec2.delete_security_group(GroupId=item.id)


def _subnet(aws: Clients, item: Item) -> None:
    aws["ec2"].delete_subnet(SubnetId=item.id)


def _vpc(aws: Clients, item: Item) -> None:
    aws["ec2"].delete_vpc(VpcId=item.id)


def _user_pool_domain(aws: Clients, item: Item) -> None:
    cognito = aws["cognito-idp"]
    pool = cognito.describe_user_pool_domain(Domain=item.id).get("DomainDescription", {}).get("UserPoolId")
    if pool:
        cognito.delete_user_pool_domain(Domain=item.id, UserPoolId=pool)


def _user_pool(aws: Clients, item: Item) -> None:
    cognito = aws["cognito-idp"]
    if cognito.describe_user_pool(UserPoolId=item.id)["UserPool"].get("DeletionProtection") == "ACTIVE":
        cognito.update_user_pool(UserPoolId=item.id, DeletionProtection="INACTIVE")
    cognito.delete_user_pool(UserPoolId=item.id)


def _rule(aws: Clients, item: Item) -> None:
    events = aws["events"]
    targets = [t["Id"] for t in events.list_targets_by_rule(Rule=item.name).get("Targets", [])]
    if targets:
        events.remove_targets(Rule=item.name, Ids=targets, Force=True)
    events.delete_rule(Name=item.name, Force=True)


def _queue(aws: Clients, item: Item) -> None:
    aws["sqs"].delete_queue(QueueUrl=item.id)


def _instance_profile(aws: Clients, item: Item) -> None:
    iam = aws["iam"]
    profile = iam.get_instance_profile(InstanceProfileName=item.name)["InstanceProfile"]
    for role in profile.get("Roles", []):
        _ignore_gone(lambda r=role: iam.remove_role_from_instance_profile(InstanceProfileName=item.name, RoleName=r["RoleName"]))
    iam.delete_instance_profile(InstanceProfileName=item.name)


def _role(aws: Clients, item: Item) -> None:
    iam = aws["iam"]
    for profile in iam.list_instance_profiles_for_role(RoleName=item.name).get("InstanceProfiles", []):
        _ignore_gone(lambda p=profile: iam.remove_role_from_instance_profile(
            InstanceProfileName=p["InstanceProfileName"], RoleName=item.name))
    for policy in iam.list_attached_role_policies(RoleName=item.name).get("AttachedPolicies", []):
        _ignore_gone(lambda p=policy: iam.detach_role_policy(RoleName=item.name, PolicyArn=p["PolicyArn"]))
    for name in iam.list_role_policies(RoleName=item.name).get("PolicyNames", []):
        _ignore_gone(lambda n=name: iam.delete_role_policy(RoleName=item.name, PolicyName=n))
    iam.delete_role(RoleName=item.name)


def _policy(aws: Clients, item: Item) -> None:
    iam = aws["iam"]
    entities = iam.list_entities_for_policy(PolicyArn=item.id)
    for role in entities.get("PolicyRoles", []):
        _ignore_gone(lambda r=role: iam.detach_role_policy(RoleName=r["RoleName"], PolicyArn=item.id))
    for user in entities.get("PolicyUsers", []):
        _ignore_gone(lambda u=user: iam.detach_user_policy(UserName=u["UserName"], PolicyArn=item.id))
    for group in entities.get("PolicyGroups", []):
        _ignore_gone(lambda g=group: iam.detach_group_policy(GroupName=g["GroupName"], PolicyArn=item.id))
    for version in iam.list_policy_versions(PolicyArn=item.id).get("Versions", []):
        if not version.get("IsDefaultVersion"):
            _ignore_gone(lambda v=version: iam.delete_policy_version(PolicyArn=item.id, VersionId=v["VersionId"]))
    iam.delete_policy(PolicyArn=item.id)


def _alias(aws: Clients, item: Item) -> None:
    aws["kms"].delete_alias(AliasName=item.id)


def _key(aws: Clients, item: Item) -> None:
    # by key id (the scan's keys are the account's own): moto answers the ARN form with a server error
    aws["kms"].schedule_key_deletion(KeyId=item.id.rsplit("/", 1)[-1], PendingWindowInDays=KMS_PENDING_WINDOW_DAYS)


def _log_group(aws: Clients, item: Item) -> None:
    aws["logs"].delete_log_group(logGroupName=item.id)


def _certificate(aws: Clients, item: Item) -> None:
    aws["acm"].delete_certificate(CertificateArn=item.id)


# A deleter asks AWS to delete one resource (None), or says why it waits instead ("deleting").
DELETERS: dict[tuple[str, str], Callable[[Clients, Item], str | None]] = {
    ("ec2", "instance"): _instance,
    ("eks", "nodegroup"): _nodegroup,
    ("eks", "addon"): _addon,
    ("eks", "cluster"): _cluster,
    ("elbv2", "load-balancer"): _load_balancer,
    ("elbv2", "target-group"): _target_group,
    ("efs", "access-point"): _access_point,
    ("efs", "mount-target"): _mount_target,
    ("efs", "file-system"): _file_system,
    ("ec2", "nat-gateway"): _nat_gateway,
    ("ec2", "elastic-ip"): _elastic_ip,
    ("ec2", "network-interface"): _network_interface,
    ("ec2", "volume"): _volume,
    ("ec2", "launch-template"): _launch_template,
    ("ec2", "internet-gateway"): _internet_gateway,
    ("ec2", "route-table"): _route_table,
    ("ec2", "security-group"): _security_group,
    ("ec2", "subnet"): _subnet,
    ("ec2", "vpc"): _vpc,
    ("cognito-idp", "user-pool-domain"): _user_pool_domain,
    ("cognito-idp", "user-pool"): _user_pool,
    ("events", "rule"): _rule,
    ("sqs", "queue"): _queue,
    ("iam", "instance-profile"): _instance_profile,
    ("iam", "role"): _role,
    ("iam", "policy"): _policy,
    ("kms", "alias"): _alias,
    ("kms", "key"): _key,
    ("logs", "log-group"): _log_group,
    ("acm", "certificate"): _certificate,
}


def children(aws: Clients, rows: Iterable[Row]) -> list[Row]:
    """Rows for what must go before its parent but carries no tag of its own: an EKS cluster's node
    groups and add-ons, an EFS file system's mount targets and access points."""
    found: list[Row] = []
    for row in rows:
        if (row["service"], row["type"]) == ("eks", "cluster"):
            eks, cluster = aws["eks"], row["id"]
            for name in leftovers._pages(eks, "list_nodegroups", "nodegroups", clusterName=cluster):
                status = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"].get("status", "")
                found.append({"service": "eks", "type": "nodegroup", "id": f"{cluster}/{name}", "name": name,
                              "state": status, "parent": cluster})
            for name in leftovers._pages(eks, "list_addons", "addons", clusterName=cluster):
                found.append({"service": "eks", "type": "addon", "id": f"{cluster}/{name}", "name": name,
                              "state": "", "parent": cluster})
        elif (row["service"], row["type"]) == ("efs", "file-system"):
            efs, fs = aws["efs"], row["id"]
            for target in efs.describe_mount_targets(FileSystemId=fs).get("MountTargets", []):
                found.append({"service": "efs", "type": "mount-target", "id": target["MountTargetId"],
                              "name": target.get("SubnetId", ""), "state": target.get("LifeCycleState", ""), "parent": fs})
            for point in efs.describe_access_points(FileSystemId=fs).get("AccessPoints", []):
                found.append({"service": "efs", "type": "access-point", "id": point["AccessPointId"],
                              "name": point.get("Name", ""), "state": point.get("LifeCycleState", ""), "parent": fs})
    return found


def delete(aws: Clients, item: Item) -> str:
    """Delete one resource: ``deleted`` (asked), ``gone`` (not found: done), ``deleting`` (AWS is at it),
    ``retry: <code>`` (a dependency is still there) or ``failed: <code>: <message>``."""
    if item.state in DELETING_STATES:
        return "deleting"
    try:
        waits = DELETERS[(item.service, item.kind)](aws, item)
    except ClientError as exc:
        code = _code(exc)
        verdict = classify(code)
        if verdict == "gone":
            return "gone"
        if verdict == "retry":
            return f"retry: {code}"
        return f"failed: {code}: {exc.response.get('Error', {}).get('Message', '')}"
    return waits or "deleted"


ProgressCallback = Callable[[str, str, str], None]


def _narrow(rows: list[Row], only: Callable[[list[Row]], list[Row]] | None) -> list[Row]:
    return rows if only is None else [row for row in rows if row["type"] == "scan-error"] + only(rows)


# ---- strays: what a killed apply created and the resume created again ---------------------------

# Kinds only Terraform creates (no controller does) that have no unique name: an apply killed
# between AWS creating one and Terraform recording it leaves a copy the state does not know, which
# cannot be adopted by name (:mod:`..terraform.adopt`), and the resume creates another. Services
# to scan for them: STRAY_SERVICES.
STRAY_KINDS = frozenset({
    ("ec2", "vpc"), ("ec2", "subnet"), ("ec2", "route-table"), ("ec2", "internet-gateway"),
    ("ec2", "nat-gateway"), ("ec2", "elastic-ip"), ("kms", "key"),
})
STRAY_SERVICES = ("ec2", "kms")


def strays(rows: Iterable[Row], tracked: Iterable[str]) -> list[Row]:
    """The scan's rows of :data:`STRAY_KINDS` that carry the deployment's own tag (not a
    controller's) and whose id Terraform's state does not hold (``tracked``: every ``id`` and
    ``arn`` in the state)."""
    known = set(tracked)
    return [row for row in rows if (row["service"], row["type"]) in STRAY_KINDS
            and row.get("match") == f"tag {leftovers.DEPLOYMENT_TAG}" and row["id"] not in known]


def sweep_strays(deployment: str, target: str, region: str, tracked: Iterable[str], passes: int = 10,
                 delay: float = 5.0) -> list[Row]:
    """Delete the :func:`strays` of a deployment whose apply just succeeded (so the state holds
    Terraform's own copy of each): the rows of :func:`sweep`, empty when there were none.
    Only call it with a complete state: a resource missing from it would count as a stray."""
    known = frozenset(tracked)
    if not known:
        raise ValueError("sweep_strays needs the ids of a complete Terraform state; got none")
    return sweep(deployment, target, region, passes=passes, delay=delay,
                 only=lambda rows: strays(rows, known), services=STRAY_SERVICES)


def sweep(deployment: str, target: str, region: str, keep: Iterable[str] = (), passes: int = 60,
          delay: float = 20.0, progress: ProgressCallback | None = None,
          only: Callable[[list[Row]], list[Row]] | None = None, services: Iterable[str] | None = None) -> list[Row]:
    """Delete every resource of ``deployment`` the leftovers scan finds, in :data:`ORDER`. Idempotent.

    Each pass scans (and lists the children of clusters and file systems), then deletes what it
    found in order. A pass that deleted something is followed by the next at once; one that only
    waited (dependencies still there, AWS still deleting) waits ``delay`` seconds first. It stops
    when a scan finds nothing, every remaining resource failed for good, or after ``passes`` passes.
    ``keep`` holds ids not to delete (a certificate kept for the next deployment); ``only`` narrows
    each scan's rows (e.g. :func:`strays`), ``services`` the services scanned.

    Returns one row per resource (``service``, ``kind``, ``id``, ``action``, ``result``), in
    deletion order: ``deleted`` or ``gone`` (done), ``still deleting`` / ``still in use (<code>)``
    after the last pass, ``failed: ...``; a service that could not be listed gives a row of kind
    ``scan-error``. Empty when there was nothing to sweep.
    """
    report = progress or (lambda *_: None)
    step = "sweep what is still tagged"
    aws = Clients(target, region)
    results: dict[tuple[str, str, str], tuple[Item, str]] = {}
    scan_errors: dict[str, Row] = {}
    failed: set[tuple[str, str, str]] = set()
    for number in range(1, passes + 1):
        report(step, "running", f"pass {number}: scanning")
        rows = _narrow(leftovers.scan(deployment, target, region, services, strict=False), only)
        scan_errors.update({row["service"]: row for row in rows if row["type"] == "scan-error"})
        items = [item for item in plan(rows + children(aws, rows), keep) if item.key not in failed]
        if not items:
            break
        progressed = False
        for item in items:
            outcome = delete(aws, item)
            results[item.key] = (item, outcome)
            progressed |= outcome in ("deleted", "gone")
            if outcome.startswith("failed"):
                failed.add(item.key)
        report(step, "running", f"pass {number}: {len(items)} resource(s) left")
        if number < passes and not progressed:
            time.sleep(delay)
    else:
        rows = _narrow(leftovers.scan(deployment, target, region, services, strict=False), only)
    remaining = {item.key for item in plan(rows + children(aws, rows), keep)}
    table = []
    for key, (item, outcome) in sorted(results.items(), key=lambda kv: RANK[(kv[1][0].service, kv[1][0].kind)]):
        if outcome.startswith("failed"):
            pass
        elif key in remaining:
            outcome = f"still in use ({outcome.removeprefix('retry: ')})" if outcome.startswith("retry") else "still deleting"
        elif outcome != "gone":
            outcome = "deleted"  # asked in an earlier pass, or AWS finished deleting it meanwhile
        table.append(item.row(outcome))
    table += [{"service": service, "kind": "scan-error", "id": "", "action": "list", "result": f"failed: {row['name']}"}
              for service, row in scan_errors.items()]
    report(step, "done", f"{len(table)} resource(s)")
    return table

"""Find AWS resources that belong to a deployment: after a destroy there should be none.

Terraform tags everything it creates with ``runbook:deployment = <name>`` (provider
``default_tags``), and the runbook tags the ACM certificate it imports the same way;
controllers in the cluster tag what they create for the cluster (``elbv2.k8s.aws/cluster``,
``kubernetes.io/cluster/<name>``, ``karpenter.sh/discovery``).

- ``scan``: every resource of a deployment, one scanner per service, as rows (``service``,
  ``type``, ``id``, ``name``, ``state``, ``match``) ready for a DataFrame. KMS keys already
  scheduled for deletion are reported only on request (AWS keeps them for the waiting period).
- ``karpenter_instances``, ``load_balancers``, ``target_groups``, ``load_balancer_security_groups``,
  ``pvc_volumes``, ``cni_network_interfaces``: what Kubernetes created in AWS for a cluster,
  one lookup per kind, as :class:`Resource` (05_cleanup deletes them before the destroy; after it,
  :mod:`.sweep` deletes whatever ``scan`` still finds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import RunbookError
from . import acm, session
from .tags import DEPLOYMENT_TAG, tag_dict

Row = dict[str, str]

# Tags the controllers in the cluster put on what they create in AWS.
LB_CLUSTER_TAG = "elbv2.k8s.aws/cluster"  # AWS Load Balancer Controller
EBS_CSI_TAG = "ebs.csi.aws.com/cluster"  # EBS CSI driver
KARPENTER_NODEPOOL_TAG = "karpenter.sh/nodepool"  # Karpenter
CNI_CLUSTER_TAG = "cluster.k8s.amazonaws.com/name"  # VPC CNI


def cluster_owned_tag(cluster: str) -> str:
    """The tag key Kubernetes controllers put on what they create for ``cluster``."""
    return f"kubernetes.io/cluster/{cluster}"


@dataclass(frozen=True)
class Resource:
    """An AWS resource a lookup found: its id (the ARN for load balancers and target groups)
    and what a person recognises it by (each lookup says what)."""

    id: str
    name: str = ""


def _row(service: str, kind: str, ident: str, name: str = "", state: str = "", match: str = "") -> Row:
    return {"service": service, "type": kind, "id": ident, "name": name, "state": state, "match": match}


def _cluster_match(tags: dict[str, str], name: str) -> str:
    """Why a tag set belongs to deployment ``name`` ('' when it does not)."""
    if tags.get(DEPLOYMENT_TAG) == name:
        return f"tag {DEPLOYMENT_TAG}"
    if tags.get(LB_CLUSTER_TAG) == name:
        return f"tag {LB_CLUSTER_TAG}"
    if cluster_owned_tag(name) in tags:
        return f"tag {cluster_owned_tag(name)}"
    if tags.get("karpenter.sh/discovery") == name:
        return "tag karpenter.sh/discovery"
    if tags.get("karpenter.k8s.aws/cluster") == name:  # Karpenter's launch templates
        return "tag karpenter.k8s.aws/cluster"
    if name in (tags.get("aws:eks:cluster-name"), tags.get("eks:cluster-name"), tags.get("eks:eks-cluster-name")):
        return "tag eks:cluster-name"
    if tags.get("KubernetesCluster") == name:
        return "tag KubernetesCluster"
    return ""


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    paginator = client.get_paginator(operation)
    return [item for page in paginator.paginate(**kwargs) for item in page.get(key, [])]


# Load balancers and target groups: the listing operation, its result key, the ARN and name fields.
_ELBV2_KINDS = {
    "load-balancer": ("describe_load_balancers", "LoadBalancers", "LoadBalancerArn", "LoadBalancerName"),
    "target-group": ("describe_target_groups", "TargetGroups", "TargetGroupArn", "TargetGroupName"),
}


def _elbv2_with_tags(elbv2: Any, kind: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Every load balancer or target group (``kind``) with its tags, in listing order."""
    operation, key, arn_key, _ = _ELBV2_KINDS[kind]
    items = _pages(elbv2, operation, key)
    arns = [item[arn_key] for item in items]
    tags: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), 20):  # DescribeTags takes at most 20 ARNs
        for description in elbv2.describe_tags(ResourceArns=arns[start:start + 20]).get("TagDescriptions", []):
            tags[description["ResourceArn"]] = tag_dict(description.get("Tags"))
    return [(item, tags.get(item[arn_key], {})) for item in items]


# ---- scanners, one per service -------------------------------------------------------------


def _ec2(name: str, target: str, region: str) -> list[Row]:
    ec2 = session.client("ec2", target, region)
    rows: list[Row] = []
    vpcs = _pages(ec2, "describe_vpcs", "Vpcs")
    ours = {v["VpcId"]: _cluster_match(tag_dict(v.get("Tags")), name) for v in vpcs}
    vpc_ids = {vpc_id for vpc_id, why in ours.items() if why}
    for vpc_id in sorted(vpc_ids):
        rows.append(_row("ec2", "vpc", vpc_id, state="", match=ours[vpc_id]))

    def owned(item: dict, id_key: str, kind: str, state: str = "") -> None:
        why = _cluster_match(tag_dict(item.get("Tags") or item.get("TagSet")), name)
        if not why and item.get("VpcId") in vpc_ids:
            why = "in the deployment's VPC"
        if why:
            rows.append(_row("ec2", kind, item[id_key], tag_dict(item.get("Tags")).get("Name", ""), state, why))

    for subnet in _pages(ec2, "describe_subnets", "Subnets"):
        owned(subnet, "SubnetId", "subnet", subnet.get("State", ""))
    for group in _pages(ec2, "describe_security_groups", "SecurityGroups"):
        if group.get("GroupName") == "default" and group.get("VpcId") in vpc_ids:
            continue  # deleted with its VPC
        owned(group, "GroupId", "security-group")
    for table in _pages(ec2, "describe_route_tables", "RouteTables"):
        if any(a.get("Main") for a in table.get("Associations", [])):
            continue  # the VPC's main table goes with the VPC
        owned(table, "RouteTableId", "route-table")
    for gateway in _pages(ec2, "describe_internet_gateways", "InternetGateways"):
        attached = [a.get("VpcId") for a in gateway.get("Attachments", [])]
        why = _cluster_match(tag_dict(gateway.get("Tags")), name) or ("attached to the deployment's VPC" if set(attached) & vpc_ids else "")
        if why:
            rows.append(_row("ec2", "internet-gateway", gateway["InternetGatewayId"], "", "", why))
    for nat in _pages(ec2, "describe_nat_gateways", "NatGateways"):
        if nat.get("State") in ("deleted", "failed"):
            continue
        owned(nat, "NatGatewayId", "nat-gateway", nat.get("State", ""))
    for address in ec2.describe_addresses().get("Addresses", []):
        why = _cluster_match(tag_dict(address.get("Tags")), name)
        if why:
            rows.append(_row("ec2", "elastic-ip", address.get("AllocationId", address.get("PublicIp", "")), address.get("PublicIp", ""), "", why))
    for eni in _pages(ec2, "describe_network_interfaces", "NetworkInterfaces"):
        why = _cluster_match(tag_dict(eni.get("TagSet")), name) or ("in the deployment's VPC" if eni.get("VpcId") in vpc_ids else "")
        if why:
            rows.append(_row("ec2", "network-interface", eni["NetworkInterfaceId"], eni.get("Description", ""), eni.get("Status", ""), why))
    for volume in _pages(ec2, "describe_volumes", "Volumes"):
        if volume.get("State") == "deleted":
            continue
        why = _cluster_match(tag_dict(volume.get("Tags")), name)
        if why:
            rows.append(_row("ec2", "volume", volume["VolumeId"], tag_dict(volume.get("Tags")).get("Name", ""), volume.get("State", ""), why))
    for reservation in _pages(ec2, "describe_instances", "Reservations"):
        for instance in reservation.get("Instances", []):
            state = instance.get("State", {}).get("Name", "")
            if state in ("terminated", "shutting-down"):
                continue
            why = _cluster_match(tag_dict(instance.get("Tags")), name) or ("in the deployment's VPC" if instance.get("VpcId") in vpc_ids else "")
            if why:
                rows.append(_row("ec2", "instance", instance["InstanceId"], tag_dict(instance.get("Tags")).get("Name", ""), state, why))
    for template in _pages(ec2, "describe_launch_templates", "LaunchTemplates"):
        why = _cluster_match(tag_dict(template.get("Tags")), name)
        if why:
            rows.append(_row("ec2", "launch-template", template["LaunchTemplateId"], template.get("LaunchTemplateName", ""), "", why))
    return rows


def _eks(name: str, target: str, region: str) -> list[Row]:
    eks = session.client("eks", target, region)
    rows = []
    for cluster in _pages(eks, "list_clusters", "clusters"):
        if cluster == name:
            status = eks.describe_cluster(name=cluster)["cluster"].get("status", "")
            rows.append(_row("eks", "cluster", cluster, cluster, status, "cluster name"))
    return rows


def _efs(name: str, target: str, region: str) -> list[Row]:
    efs = session.client("efs", target, region)
    rows = []
    for fs in _pages(efs, "describe_file_systems", "FileSystems"):
        why = _cluster_match(tag_dict(fs.get("Tags")), name)
        if why:
            rows.append(_row("efs", "file-system", fs["FileSystemId"], fs.get("Name", ""), fs.get("LifeCycleState", ""), why))
    return rows


def _iam(name: str, target: str, region: str) -> list[Row]:
    iam = session.client("iam", target, region)
    rows = []
    for role in _pages(iam, "list_roles", "Roles"):
        if not role["RoleName"].startswith(f"{name}-"):
            continue
        tags = tag_dict(iam.list_role_tags(RoleName=role["RoleName"]).get("Tags"))
        why = _cluster_match(tags, name)
        if why:
            rows.append(_row("iam", "role", role["Arn"], role["RoleName"], "", why))
    for policy in _pages(iam, "list_policies", "Policies", Scope="Local"):
        if not policy["PolicyName"].startswith(f"{name}-"):
            continue
        tags = tag_dict(iam.list_policy_tags(PolicyArn=policy["Arn"]).get("Tags"))
        why = _cluster_match(tags, name)
        if why:
            rows.append(_row("iam", "policy", policy["Arn"], policy["PolicyName"], "", why))
    role_names = {r["name"] for r in rows if r["type"] == "role"}
    for profile in _pages(iam, "list_instance_profiles", "InstanceProfiles"):
        why = _cluster_match(tag_dict(profile.get("Tags")), name)
        if not why and {r["RoleName"] for r in profile.get("Roles", [])} & role_names:
            why = "holds a deployment role"
        if why:
            rows.append(_row("iam", "instance-profile", profile["Arn"], profile["InstanceProfileName"], "", why))
    return rows


def _cognito(name: str, target: str, region: str) -> list[Row]:
    cognito = session.client("cognito-idp", target, region)
    rows = []
    for pool in _pages(cognito, "list_user_pools", "UserPools", MaxResults=60):
        described = cognito.describe_user_pool(UserPoolId=pool["Id"])["UserPool"]
        why = _cluster_match(described.get("UserPoolTags") or {}, name)
        if why:
            rows.append(_row("cognito-idp", "user-pool", pool["Id"], pool.get("Name", ""), described.get("Status", ""), why))
            if described.get("Domain"):
                rows.append(_row("cognito-idp", "user-pool-domain", described["Domain"], described["Domain"], "", "domain of the user pool"))
    return rows


def _sqs(name: str, target: str, region: str) -> list[Row]:
    sqs = session.client("sqs", target, region)
    rows = []
    for url in sqs.list_queues(QueueNamePrefix=name).get("QueueUrls", []):
        why = _cluster_match(sqs.list_queue_tags(QueueUrl=url).get("Tags") or {}, name)
        if why:
            rows.append(_row("sqs", "queue", url, url.rsplit("/", 1)[-1], "", why))
    return rows


def _events(name: str, target: str, region: str) -> list[Row]:
    events = session.client("events", target, region)
    rows = []
    for rule in _pages(events, "list_rules", "Rules", NamePrefix=name):
        tags = tag_dict(events.list_tags_for_resource(ResourceARN=rule["Arn"]).get("Tags"))
        why = _cluster_match(tags, name)
        if why:
            rows.append(_row("events", "rule", rule["Arn"], rule["Name"], rule.get("State", ""), why))
    return rows


def _elbv2(name: str, target: str, region: str) -> list[Row]:
    elbv2 = session.client("elbv2", target, region)
    rows = []
    for kind, (_, _, arn_key, name_key) in _ELBV2_KINDS.items():
        for item, tags in _elbv2_with_tags(elbv2, kind):
            why = _cluster_match(tags, name)
            if why:
                state = (item.get("State") or {}).get("Code", "")
                rows.append(_row("elbv2", kind, item[arn_key], item.get(name_key, ""), state, why))
    return rows


def _acm(name: str, target: str, region: str) -> list[Row]:
    rows = []
    for arn, summary, tags in acm.certificates(target, region):
        why = _cluster_match(tags, name) or acm.imported_match(tags, name)
        if why:
            rows.append(_row("acm", "certificate", arn, summary.get("DomainName", ""), summary.get("Status", ""), why))
    return rows


def _kms(name: str, target: str, region: str, include_pending_deletion: bool = False) -> list[Row]:
    kms = session.client("kms", target, region)
    secrets_alias = f"alias/{name}-eks-secrets"  # the root module's alias for the EKS secrets key
    rows = []
    aliases = {a.get("TargetKeyId"): a["AliasName"] for a in _pages(kms, "list_aliases", "Aliases") if a.get("TargetKeyId")}
    for key in _pages(kms, "list_keys", "Keys"):
        metadata = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
        if metadata.get("KeyManager") == "AWS":
            continue
        state = metadata.get("KeyState", "")
        if state == "PendingDeletion" and not include_pending_deletion:
            continue
        tags = {t["TagKey"]: t.get("TagValue", "") for t in kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])}
        why = _cluster_match(tags, name)
        alias = aliases.get(key["KeyId"], "")
        if not why and alias == secrets_alias:
            why = "alias name"
        if why:
            rows.append(_row("kms", "key", metadata["Arn"], alias, state, why))
    for key_id, alias in aliases.items():
        if alias == secrets_alias and not any(r["name"] == alias for r in rows):
            state = kms.describe_key(KeyId=key_id)["KeyMetadata"].get("KeyState", "")
            if state != "PendingDeletion" or include_pending_deletion:
                rows.append(_row("kms", "alias", alias, alias, state, "alias name"))
    return rows


# The log groups of a deployment, by name: the control plane's (EKS), the VPC's flow logs.
LOG_GROUP_PREFIXES = {"/aws/eks/{name}/": "EKS log group name", "/aws/vpc/{name}/": "VPC flow log group name"}


def _logs(name: str, target: str, region: str) -> list[Row]:
    logs = session.client("logs", target, region)
    return [
        _row("logs", "log-group", group["logGroupName"], group["logGroupName"], "", why)
        for prefix, why in LOG_GROUP_PREFIXES.items()
        for group in _pages(logs, "describe_log_groups", "logGroups", logGroupNamePrefix=prefix.format(name=name))
    ]


SCANNERS: dict[str, Callable[[str, str, str], list[Row]]] = {
    "ec2": _ec2,
    "eks": _eks,
    "efs": _efs,
    "iam": _iam,
    "cognito-idp": _cognito,
    "sqs": _sqs,
    "events": _events,
    "elbv2": _elbv2,
    "acm": _acm,
    "kms": _kms,
    "logs": _logs,
}


def scan(deployment: str, target: str, region: str, services: Iterable[str] | None = None,
         include_pending_deletion: bool = False, strict: bool = True) -> list[Row]:
    """Resources of ``deployment`` that still exist on ``target`` in ``region``.

    Returns rows with ``service``, ``type``, ``id``, ``name``, ``state`` and ``match`` (why the
    resource counts as the deployment's). With ``strict=False`` a service that cannot be
    scanned (e.g. access denied) adds a ``scan-error`` row instead of raising.
    """
    wanted = list(services) if services is not None else list(SCANNERS)
    unknown = sorted(set(wanted) - set(SCANNERS))
    if unknown:
        raise ValueError(f"unknown services {unknown}; use some of {sorted(SCANNERS)}")
    rows: list[Row] = []
    for service in wanted:
        try:
            if service == "kms":
                rows += _kms(deployment, target, region, include_pending_deletion)
            else:
                rows += SCANNERS[service](deployment, target, region)
        except Exception as exc:  # noqa: BLE001 - reported per service
            if strict:
                raise RunbookError(f"could not scan {service} in {region} for leftovers of {deployment!r}: {exc}") from exc
            rows.append(_row(service, "scan-error", "", str(exc)[:200], "", ""))
    return rows


# ---- what Kubernetes created in AWS for a cluster, one lookup per kind --------------------------


def karpenter_instances(cluster: str, target: str, region: str) -> list[Resource]:
    """EC2 instances Karpenter launched for ``cluster`` that are not terminated (name: NodePool and instance type)."""
    ec2 = session.client("ec2", target, region)
    filters = [
        {"Name": f"tag:{cluster_owned_tag(cluster)}", "Values": ["owned"]},
        {"Name": "tag-key", "Values": [KARPENTER_NODEPOOL_TAG]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ]
    return [
        Resource(instance["InstanceId"],
                 f"{tag_dict(instance.get('Tags')).get(KARPENTER_NODEPOOL_TAG, '')} {instance.get('InstanceType', '')}".strip())
        for reservation in _pages(ec2, "describe_instances", "Reservations", Filters=filters)
        for instance in reservation.get("Instances", [])
    ]


def _tagged_for_cluster(kind: str, cluster: str, target: str, region: str) -> list[dict[str, Any]]:
    """Load balancers or target groups (``kind``) tagged ``elbv2.k8s.aws/cluster=<cluster>``."""
    elbv2 = session.client("elbv2", target, region)
    return [item for item, tags in _elbv2_with_tags(elbv2, kind) if tags.get(LB_CLUSTER_TAG) == cluster]


def load_balancers(cluster: str, target: str, region: str) -> list[Resource]:
    """Load balancers the load balancer controller created for ``cluster`` (id: ARN; name: DNS name)."""
    return [Resource(lb["LoadBalancerArn"], lb.get("DNSName", ""))
            for lb in _tagged_for_cluster("load-balancer", cluster, target, region)]


def target_groups(cluster: str, target: str, region: str) -> list[Resource]:
    """Target groups the load balancer controller created for ``cluster`` (id: ARN; name: its name)."""
    return [Resource(tg["TargetGroupArn"], tg.get("TargetGroupName", ""))
            for tg in _tagged_for_cluster("target-group", cluster, target, region)]


def load_balancer_security_groups(cluster: str, target: str, region: str) -> list[Resource]:
    """Security groups the load balancer controller created for ``cluster`` (name: group name)."""
    ec2 = session.client("ec2", target, region)
    groups = _pages(ec2, "describe_security_groups", "SecurityGroups",
                    Filters=[{"Name": f"tag:{LB_CLUSTER_TAG}", "Values": [cluster]}])
    return [Resource(g["GroupId"], g.get("GroupName", "")) for g in groups]


def pvc_volumes(cluster: str, target: str, region: str) -> list[Resource]:
    """EBS volumes the EBS CSI driver created for ``cluster``'s PVCs (name: ``<namespace>/<pvc>``)."""
    ec2 = session.client("ec2", target, region)
    found: dict[str, Resource] = {}
    for filters in (
        [{"Name": f"tag:{cluster_owned_tag(cluster)}", "Values": ["owned"]}, {"Name": "tag-key", "Values": [EBS_CSI_TAG]}],
        [{"Name": "tag:KubernetesCluster", "Values": [cluster]}, {"Name": "tag-key", "Values": [EBS_CSI_TAG]}],
    ):
        for volume in _pages(ec2, "describe_volumes", "Volumes", Filters=filters):
            tags = tag_dict(volume.get("Tags"))
            pvc = tags.get("kubernetes.io/created-for/pvc/name", "")
            namespace = tags.get("kubernetes.io/created-for/pvc/namespace", "")
            found[volume["VolumeId"]] = Resource(volume["VolumeId"], f"{namespace}/{pvc}".strip("/"))
    return list(found.values())


def cni_network_interfaces(cluster: str, target: str, region: str) -> list[Resource]:
    """Detached network interfaces the VPC CNI left for ``cluster`` (name: description)."""
    ec2 = session.client("ec2", target, region)
    interfaces = _pages(ec2, "describe_network_interfaces", "NetworkInterfaces", Filters=[
        {"Name": f"tag:{CNI_CLUSTER_TAG}", "Values": [cluster]},
        {"Name": "status", "Values": ["available"]},
    ])
    return [Resource(n["NetworkInterfaceId"], n.get("Description", "")) for n in interfaces]

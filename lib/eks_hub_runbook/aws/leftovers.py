"""Find AWS resources that belong to a deployment: after a destroy there should be none.

Terraform tags everything it creates with ``runbook:deployment = <name>`` (provider
``default_tags``); controllers in the cluster tag what they create for the cluster
(``elbv2.k8s.aws/cluster``, ``kubernetes.io/cluster/<name>``, ``karpenter.sh/discovery``).
Each scanner looks at one service and returns rows (``service``, ``type``, ``id``,
``name``, ``state``, ``match``), ready for a DataFrame. KMS keys already scheduled for
deletion are reported only on request (AWS keeps them for the waiting period).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..errors import RunbookError
from . import session

DEPLOYMENT_TAG = "runbook:deployment"
Row = dict[str, str]


def _row(service: str, kind: str, ident: str, name: str = "", state: str = "", match: str = "") -> Row:
    return {"service": service, "type": kind, "id": ident, "name": name, "state": state, "match": match}


def _tag_dict(tags: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    return {t.get("Key", t.get("key", "")): t.get("Value", t.get("value", "")) for t in tags or []}


def _cluster_match(tags: dict[str, str], name: str) -> str:
    """Why a tag set belongs to deployment ``name`` ('' when it does not)."""
    if tags.get(DEPLOYMENT_TAG) == name:
        return f"tag {DEPLOYMENT_TAG}"
    if tags.get("elbv2.k8s.aws/cluster") == name:
        return "tag elbv2.k8s.aws/cluster"
    if f"kubernetes.io/cluster/{name}" in tags:
        return f"tag kubernetes.io/cluster/{name}"
    if tags.get("karpenter.sh/discovery") == name:
        return "tag karpenter.sh/discovery"
    if tags.get("aws:eks:cluster-name") == name or tags.get("eks:cluster-name") == name:
        return "tag eks:cluster-name"
    if tags.get("KubernetesCluster") == name:
        return "tag KubernetesCluster"
    return ""


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    paginator = client.get_paginator(operation)
    return [item for page in paginator.paginate(**kwargs) for item in page.get(key, [])]


# ---- scanners, one per service -------------------------------------------------------------


def _ec2(name: str, target: str, region: str) -> list[Row]:
    ec2 = session.client("ec2", target, region)
    rows: list[Row] = []
    vpcs = _pages(ec2, "describe_vpcs", "Vpcs")
    ours = {v["VpcId"]: _cluster_match(_tag_dict(v.get("Tags")), name) for v in vpcs}
    vpc_ids = {vpc_id for vpc_id, why in ours.items() if why}
    for vpc_id in sorted(vpc_ids):
        rows.append(_row("ec2", "vpc", vpc_id, state="", match=ours[vpc_id]))

    def owned(item: dict, id_key: str, kind: str, state: str = "") -> None:
        why = _cluster_match(_tag_dict(item.get("Tags") or item.get("TagSet")), name)
        if not why and item.get("VpcId") in vpc_ids:
            why = "in the deployment's VPC"
        if why:
            rows.append(_row("ec2", kind, item[id_key], _tag_dict(item.get("Tags")).get("Name", ""), state, why))

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
        why = _cluster_match(_tag_dict(gateway.get("Tags")), name) or ("attached to the deployment's VPC" if set(attached) & vpc_ids else "")
        if why:
            rows.append(_row("ec2", "internet-gateway", gateway["InternetGatewayId"], "", "", why))
    for nat in _pages(ec2, "describe_nat_gateways", "NatGateways"):
        if nat.get("State") in ("deleted", "failed"):
            continue
        owned(nat, "NatGatewayId", "nat-gateway", nat.get("State", ""))
    for address in ec2.describe_addresses().get("Addresses", []):
        why = _cluster_match(_tag_dict(address.get("Tags")), name)
        if why:
            rows.append(_row("ec2", "elastic-ip", address.get("AllocationId", address.get("PublicIp", "")), address.get("PublicIp", ""), "", why))
    for eni in _pages(ec2, "describe_network_interfaces", "NetworkInterfaces"):
        why = _cluster_match(_tag_dict(eni.get("TagSet")), name) or ("in the deployment's VPC" if eni.get("VpcId") in vpc_ids else "")
        if why:
            rows.append(_row("ec2", "network-interface", eni["NetworkInterfaceId"], eni.get("Description", ""), eni.get("Status", ""), why))
    for volume in _pages(ec2, "describe_volumes", "Volumes"):
        if volume.get("State") == "deleted":
            continue
        why = _cluster_match(_tag_dict(volume.get("Tags")), name)
        if why:
            rows.append(_row("ec2", "volume", volume["VolumeId"], _tag_dict(volume.get("Tags")).get("Name", ""), volume.get("State", ""), why))
    for reservation in _pages(ec2, "describe_instances", "Reservations"):
        for instance in reservation.get("Instances", []):
            state = instance.get("State", {}).get("Name", "")
            if state in ("terminated", "shutting-down"):
                continue
            why = _cluster_match(_tag_dict(instance.get("Tags")), name) or ("in the deployment's VPC" if instance.get("VpcId") in vpc_ids else "")
            if why:
                rows.append(_row("ec2", "instance", instance["InstanceId"], _tag_dict(instance.get("Tags")).get("Name", ""), state, why))
    for template in _pages(ec2, "describe_launch_templates", "LaunchTemplates"):
        why = _cluster_match(_tag_dict(template.get("Tags")), name)
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
        why = _cluster_match(_tag_dict(fs.get("Tags")), name)
        if why:
            rows.append(_row("efs", "file-system", fs["FileSystemId"], fs.get("Name", ""), fs.get("LifeCycleState", ""), why))
    return rows


def _iam(name: str, target: str, region: str) -> list[Row]:
    iam = session.client("iam", target, region)
    rows = []
    for role in _pages(iam, "list_roles", "Roles"):
        if not role["RoleName"].startswith(f"{name}-"):
            continue
        tags = _tag_dict(iam.list_role_tags(RoleName=role["RoleName"]).get("Tags"))
        why = _cluster_match(tags, name)
        if why:
            rows.append(_row("iam", "role", role["Arn"], role["RoleName"], "", why))
    for policy in _pages(iam, "list_policies", "Policies", Scope="Local"):
        if not policy["PolicyName"].startswith(f"{name}-"):
            continue
        tags = _tag_dict(iam.list_policy_tags(PolicyArn=policy["Arn"]).get("Tags"))
        why = _cluster_match(tags, name)
        if why:
            rows.append(_row("iam", "policy", policy["Arn"], policy["PolicyName"], "", why))
    role_names = {r["name"] for r in rows if r["type"] == "role"}
    for profile in _pages(iam, "list_instance_profiles", "InstanceProfiles"):
        why = _cluster_match(_tag_dict(profile.get("Tags")), name)
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
        tags = _tag_dict(events.list_tags_for_resource(ResourceARN=rule["Arn"]).get("Tags"))
        why = _cluster_match(tags, name)
        if why:
            rows.append(_row("events", "rule", rule["Arn"], rule["Name"], rule.get("State", ""), why))
    return rows


def _elbv2(name: str, target: str, region: str) -> list[Row]:
    elbv2 = session.client("elbv2", target, region)
    rows = []
    for kind, operation, key, arn_key, name_key in (
        ("load-balancer", "describe_load_balancers", "LoadBalancers", "LoadBalancerArn", "LoadBalancerName"),
        ("target-group", "describe_target_groups", "TargetGroups", "TargetGroupArn", "TargetGroupName"),
    ):
        items = {item[arn_key]: item for item in _pages(elbv2, operation, key)}
        arns = list(items)
        for start in range(0, len(arns), 20):
            for description in elbv2.describe_tags(ResourceArns=arns[start:start + 20]).get("TagDescriptions", []):
                why = _cluster_match(_tag_dict(description.get("Tags")), name)
                if why:
                    item = items[description["ResourceArn"]]
                    state = (item.get("State") or {}).get("Code", "")
                    rows.append(_row("elbv2", kind, description["ResourceArn"], item.get(name_key, ""), state, why))
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


def _logs(name: str, target: str, region: str) -> list[Row]:
    logs = session.client("logs", target, region)
    prefix = f"/aws/eks/{name}/"
    return [
        _row("logs", "log-group", group["logGroupName"], group["logGroupName"], "", "EKS log group name")
        for group in _pages(logs, "describe_log_groups", "logGroups", logGroupNamePrefix=prefix)
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

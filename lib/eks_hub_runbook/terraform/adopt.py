"""Adopt resources that exist in AWS but are missing from the state.

An apply that dies between AWS creating a resource and Terraform recording it (the process
killed, a response lost and the request retried by the AWS SDK) leaves a resource that every
later apply fails to create: "EntityAlreadyExists". For resource types whose names are
unique and carry the deployment's name, such a resource is ours: the apply imports it into the
state (``terraform import``, in ``commands``) and runs again, instead of failing forever.

Only names that start with the deployment's name are adopted (or, for :data:`TAGGED_LOOKUPS`,
resources found by the deployment's tag), so a resource someone else created is never taken over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import TerraformError
from .events import Diagnostic

# How ``terraform import`` identifies each adoptable type, from the name in the error.
IMPORT_IDS = {
    "aws_iam_policy": "arn:{partition}:iam::{account_id}:policy/{name}",
    "aws_iam_role": "{name}",
    "aws_cloudwatch_log_group": "{name}",
    # EKS: the provider's error names them by their import id ("<cluster>", "<cluster>:<node group>",
    # "<cluster>:<add-on>"); the cluster is named after the deployment.
    "aws_eks_cluster": "{name}",
    "aws_eks_node_group": "{name}",
    "aws_eks_addon": "{name}",
}
# Types whose import id AWS must be asked for (an id, not the name): see :func:`_lookup`.
LOOKUPS = ("aws_efs_file_system", "aws_security_group", "aws_subnet", "aws_eks_pod_identity_association")
# Of those, the types whose lookup only finds the deployment's own (by its tag, or in its cluster):
# their "name" in the error is not the deployment's (a subnet's CIDR block, an association's id).
TAGGED_LOOKUPS = ("aws_security_group", "aws_subnet", "aws_eks_pod_identity_association")
# The provider's "creating <what> (<name>): ... <code>" errors for a name that is taken (EKS says
# "ResourceInUseException: Cluster/NodeGroup/Addon already exists", a code it also uses for other
# conflicts: only with "already exists"), and EFS's
# idempotency token error ("FileSystemAlreadyExists: File system with <token> already exists").
_ALREADY_EXISTS = (
    re.compile(r"creating [^(]*\((?P<name>[^)]+)\).*(EntityAlreadyExists|ResourceAlreadyExists)", re.IGNORECASE | re.DOTALL),
    # a pod identity association (one per service account): "ResourceInUseException: Association already exists: <id>"
    # (the provider says "creating AWS EKS (Elastic Kubernetes) Pod Identity Association (<unknown>): ...")
    re.compile(r"creating (AWS )?EKS\b.*Pod Identity Association.*ResourceInUseException:[^\n]*Association already exists: "
               r"(?P<name>a-[0-9a-z]+)", re.IGNORECASE | re.DOTALL),
    re.compile(r"creating EKS [^(]*\((?P<name>[^)]+)\).*ResourceInUseException:[^\n]*already exists", re.IGNORECASE | re.DOTALL),
    re.compile(r"FileSystemAlreadyExists: File system with (?P<name>\S+) already exists", re.DOTALL),
    # a security group's name is unique in its VPC: "creating Security Group (<name>): ... InvalidGroup.Duplicate"
    re.compile(r"creating Security Group \((?P<name>[^)]+)\).*InvalidGroup\.Duplicate", re.DOTALL),
    # a subnet's CIDR block is unique in its VPC: "creating EC2 Subnet: ... InvalidSubnet.Conflict: The CIDR '<cidr>' conflicts"
    re.compile(r"creating EC2 Subnet\b.*InvalidSubnet\.Conflict: The CIDR '(?P<name>[^']+)' conflicts", re.DOTALL),
)


@dataclass(frozen=True)
class Orphan:
    """A resource of ``address`` that exists in AWS under ``name`` but not in the state."""

    address: str
    name: str

    @property
    def resource_type(self) -> str:
        return self.address.split("[")[0].split(".")[-2]

    def import_id(self, identity: dict[str, str], target: str = "", region: str = "", deployment: str = "") -> str:
        """How ``terraform import`` names it (``identity`` from :func:`identity`); for the types in
        :data:`LOOKUPS`, asked of AWS on ``target`` in ``region`` (among ``deployment``'s resources)."""
        if self.resource_type == "aws_efs_file_system":
            return _efs_file_system_id(self.name, target, region)
        if self.resource_type == "aws_security_group":
            return _security_group_id(self.name, deployment, target, region)
        if self.resource_type == "aws_subnet":
            return _subnet_id(self.name, deployment, target, region)
        if self.resource_type == "aws_eks_pod_identity_association":
            return _pod_identity_association_id(self.name, deployment, target, region)
        return IMPORT_IDS[self.resource_type].format(name=self.name, **identity)


def _efs_file_system_id(creation_token: str, target: str, region: str) -> str:
    """The id of the file system created with ``creation_token`` (EFS's idempotency token)."""
    from ..aws.session import client

    systems = client("efs", target, region).describe_file_systems(CreationToken=creation_token)["FileSystems"]
    if len(systems) != 1:
        raise TerraformError(f"cannot adopt the EFS file system {creation_token!r}: AWS has {len(systems)} with that token")
    return systems[0]["FileSystemId"]


def _security_group_id(name: str, deployment: str, target: str, region: str) -> str:
    """The id of the security group ``name`` that carries ``deployment``'s tag."""
    from ..aws.session import client
    from ..aws.tags import DEPLOYMENT_TAG

    groups = client("ec2", target, region).describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [name]}, {"Name": f"tag:{DEPLOYMENT_TAG}", "Values": [deployment]}])["SecurityGroups"]
    if len(groups) != 1:
        raise TerraformError(f"cannot adopt the security group {name!r}: AWS has {len(groups)} of {deployment!r} with that name")
    return groups[0]["GroupId"]


def _subnet_id(cidr: str, deployment: str, target: str, region: str) -> str:
    """The id of ``deployment``'s subnet with the CIDR block ``cidr``."""
    from ..aws.session import client
    from ..aws.tags import DEPLOYMENT_TAG

    subnets = client("ec2", target, region).describe_subnets(Filters=[
        {"Name": "cidr-block", "Values": [cidr]}, {"Name": f"tag:{DEPLOYMENT_TAG}", "Values": [deployment]}])["Subnets"]
    if len(subnets) != 1:
        raise TerraformError(f"cannot adopt the subnet {cidr}: AWS has {len(subnets)} of {deployment!r} with that CIDR block")
    return subnets[0]["SubnetId"]


def _pod_identity_association_id(association_id: str, cluster: str, target: str, region: str) -> str:
    """``<cluster>,<association id>`` once the association is found in ``cluster`` (named after the
    deployment); an association elsewhere raises (EKS's NotFound)."""
    from ..aws.session import client

    client("eks", target, region).describe_pod_identity_association(clusterName=cluster, associationId=association_id)
    return f"{cluster},{association_id}"


def orphans(diagnostics: list[Diagnostic], deployment: str) -> list[Orphan]:
    """The "already exists" errors of an apply as orphans to adopt; empty unless *every* error
    is one (anything else must be fixed, not retried) and every name is the deployment's."""
    errors = [d for d in diagnostics if d.severity == "error"]
    found = []
    for diagnostic in errors:
        text = f"{diagnostic.summary} {diagnostic.detail}"
        match = next((m for m in (p.search(text) for p in _ALREADY_EXISTS) if m), None)
        if not (match and diagnostic.address):
            return []
        orphan = Orphan(diagnostic.address, match["name"])
        # the deployment's names start with it; its log groups hold it as a path part (/aws/eks/<name>/cluster)
        ours = (orphan.resource_type in TAGGED_LOOKUPS or orphan.name.startswith(deployment)
                or f"/{deployment}/" in orphan.name)
        if orphan.resource_type not in (*IMPORT_IDS, *LOOKUPS) or not ours:
            return []
        found.append(orphan)
    return found


def identity(state: dict) -> dict[str, str]:
    """Account id and partition, from the data sources the module reads into the state
    (``terraform state pull``), to build import ids with."""
    values: dict[str, str] = {}
    for resource in state.get("resources", []):
        attributes = (resource.get("instances") or [{}])[0].get("attributes") or {}
        if resource.get("type") == "aws_caller_identity":
            values["account_id"] = attributes.get("account_id", "")
        elif resource.get("type") == "aws_partition":
            values["partition"] = attributes.get("partition", "")
    if not (values.get("account_id") and values.get("partition")):
        raise TerraformError("cannot adopt: the state has no aws_caller_identity/aws_partition data to build import ids from")
    return values

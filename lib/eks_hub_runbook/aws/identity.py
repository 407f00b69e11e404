"""Who the runbook acts as and where: caller identity, region, availability zones.

EKS needs subnets in at least two availability zones, and the GPU and accelerator
NodePools only help if their instance types are offered in those zones, so both are
checked here before anything is created.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ..errors import IdentityError
from ..params import DeploymentParameters
from .session import AwsCallError, client

MIN_AZS = 2


@dataclass(frozen=True)
class CallerIdentity:
    account: str
    arn: str
    user_id: str

    @property
    def principal(self) -> str:
        """The last part of the ARN (user or assumed-role/session), for display."""
        return self.arn.split(":", 5)[-1]


def caller_identity(target: str, region: str) -> CallerIdentity:
    """``sts get-caller-identity`` for the target; ``IdentityError`` if credentials are missing."""
    try:
        reply = client("sts", target, region).get_caller_identity()
    except AwsCallError:
        raise  # throttled or unavailable past its retries: not a credentials problem
    except NoCredentialsError:
        raise IdentityError("no AWS credentials found: run `aws configure` or `aws sso login`, "
                            "or set AWS_PROFILE (for the local sandbox use -p target sandbox)") from None
    except ClientError as exc:
        raise IdentityError(f"AWS rejected the credentials: {exc.response['Error'].get('Message', exc)}") from None
    except BotoCoreError as exc:
        raise IdentityError(f"could not reach AWS STS in {region}: {exc}") from None
    return CallerIdentity(reply["Account"], reply["Arn"], reply["UserId"])


def availability_zones(target: str, region: str) -> list[str]:
    """Names of the zones in ``region`` that are available to the account, sorted."""
    reply = client("ec2", target, region).describe_availability_zones(
        Filters=[{"Name": "state", "Values": ["available"]}, {"Name": "zone-type", "Values": ["availability-zone"]}]
    )
    return sorted(z["ZoneName"] for z in reply.get("AvailabilityZones", []))


def instance_type_zones(target: str, region: str, instance_types: list[str]) -> dict[str, list[str]]:
    """For each instance type, the availability zones of ``region`` that offer it."""
    if not instance_types:
        return {}
    ec2 = client("ec2", target, region)
    zones: dict[str, set[str]] = {t: set() for t in instance_types}
    paginator = ec2.get_paginator("describe_instance_type_offerings")
    for page in paginator.paginate(LocationType="availability-zone",
                                   Filters=[{"Name": "instance-type", "Values": list(instance_types)}]):
        for offer in page.get("InstanceTypeOfferings", []):
            zones.setdefault(offer["InstanceType"], set()).add(offer["Location"])
    return {t: sorted(z) for t, z in zones.items()}


def rows(params: DeploymentParameters, instance_types: list[str] | None = None) -> list[dict[str, str]]:
    """Identity and placement checks as rows: ``check``, ``status``, ``detail``.

    The account id is shown (it is not a secret; it appears in every ARN), the access
    key is not.
    """
    result: list[dict[str, str]] = []
    try:
        who = caller_identity(params.target, params.region)
    except IdentityError as exc:
        return [{"check": "AWS credentials", "status": "fail", "detail": str(exc)}]
    result.append({"check": "AWS credentials", "status": "pass", "detail": f"account {who.account}, {who.principal}"})
    zones = availability_zones(params.target, params.region)
    result.append({
        "check": f"availability zones in {params.region}",
        "status": "pass" if len(zones) >= MIN_AZS else "fail",
        "detail": ", ".join(zones) if zones else "none available",
    })
    for instance_type, offered in instance_type_zones(params.target, params.region, instance_types or []).items():
        result.append({
            "check": f"{instance_type} offered",
            "status": "pass" if offered else "warn",
            "detail": ", ".join(offered) if offered else f"not offered in {params.region}: profiles needing it cannot start",
        })
    return result

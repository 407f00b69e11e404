"""EC2 vCPU quotas for the instance families the hub's profiles need.

On-Demand EC2 capacity is limited per instance family by a vCPU quota. A new
account's quota for G, P, Trn and Inf instances is 0, so a GPU profile would sit
pending forever: Karpenter cannot launch the node. This module compares each
family's quota with what the deployment needs to start one user of each chosen
profile (plus the core node group), before anything is deployed.

Quotas are read with Service Quotas (applied value, else the AWS default). Where
no quota data is available (the sandbox's moto has EC2 quotas for nothing, or the
caller may not read Service Quotas) the documented AWS default is shown with a
note, and the row is informational rather than a failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..instance_types import CATALOG
from ..platform import facts
from ..params import DeploymentParameters
from . import session

# Three attempts, not session's nine: a missing quota API (the sandbox answers 500) must not cost
# minutes of backoff, and a quota only informs (the documented default is the fallback).
_QUICK = Config(retries={"total_max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=20)


def client(service: str, target: str, region: str):
    """A boto3 client with quick retries (Service Quotas only informs; it never blocks)."""
    return session.client(service, target, region, config=_QUICK)


@dataclass(frozen=True)
class Quota:
    """One EC2 On-Demand vCPU quota."""

    family: str
    code: str
    name: str
    aws_default: float  # the documented default for a new account


QUOTAS: dict[str, Quota] = {
    "standard": Quota("standard", "L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", 5),
    "g": Quota("g", "L-DB2E81BA", "Running On-Demand G and VT instances", 0),
    "p": Quota("p", "L-417A185B", "Running On-Demand P instances", 0),
    "trn": Quota("trn", "L-2C3B7624", "Running On-Demand Trn instances", 0),
    "inf": Quota("inf", "L-1945791B", "Running On-Demand Inf instances", 0),
}


@dataclass(frozen=True)
class NodeNeed:
    """The smallest node a profile's pod fits on, and its quota family."""

    instance_type: str
    family: str

    @property
    def vcpus(self) -> int:
        return CATALOG[self.instance_type].vcpu


# Core managed node group: m5.xlarge (4 vCPUs), desired size 2.
CORE_NODE = NodeNeed("m5.xlarge", "standard")
CORE_NODES = 2

# Profile slug -> the node Karpenter launches for its first user. Slugs match the
# profiles in terraform/helm-values (z2jh singleuser.profileList).
PROFILE_NODES: dict[str, NodeNeed] = {
    "data-engineering": NodeNeed("m5.xlarge", "standard"),
    "elyra": NodeNeed("m5.xlarge", "standard"),
    "trainium": NodeNeed("trn1.2xlarge", "trn"),
    "inferentia": NodeNeed("inf2.8xlarge", "inf"),
    "gpu-time-slicing": NodeNeed("g5.2xlarge", "g"),
    "gpu-mig": NodeNeed("p4d.24xlarge", "p"),
    "gpu-p4d": NodeNeed("p4d.24xlarge", "p"),
}
# The profile 04_gpu_sharing starts: its family must have quota or the demo fails.
DEMO_PROFILE = facts.default_profile()  # 04_gpu_sharing's profile: the one the hub preselects


def chosen_profiles(params: DeploymentParameters) -> list[str]:
    """The profiles a deployment offers: ``params.profiles``, or every known profile."""
    return list(params.profiles) if params.profiles else list(PROFILE_NODES)


def instance_types(params: DeploymentParameters) -> list[str]:
    """Instance types the deployment may launch (core group + chosen profiles), sorted."""
    types = {CORE_NODE.instance_type}
    types.update(PROFILE_NODES[p].instance_type for p in chosen_profiles(params) if p in PROFILE_NODES)
    return sorted(types)


def needs(params: DeploymentParameters) -> dict[str, tuple[int, list[str]]]:
    """Per family: vCPUs needed to start one user of each chosen profile, and which profiles.

    Profiles of one family share a node size here, so the need is the largest node of
    the family (a second profile of the same family would add another node; the table
    states the minimum, not a capacity plan). Standard adds the core node group.
    """
    result: dict[str, tuple[int, list[str]]] = {}
    for profile in chosen_profiles(params):
        node = PROFILE_NODES.get(profile)
        if node is None:
            continue
        vcpus, profiles = result.get(node.family, (0, []))
        result[node.family] = (max(vcpus, node.vcpus), [*profiles, profile])
    vcpus, profiles = result.get("standard", (0, []))
    result["standard"] = (vcpus + CORE_NODE.vcpus * CORE_NODES, ["core node group", *profiles])
    return result


def _read(params: DeploymentParameters, quota: Quota) -> tuple[float, str]:
    """The quota's value and where it came from ('applied', 'AWS default', or the fallback note)."""
    try:
        sq = client("service-quotas", params.target, params.region)
    except BotoCoreError:
        return quota.aws_default, "documented AWS default (no Service Quotas endpoint)"
    for call, source in ((sq.get_service_quota, "applied"), (sq.get_aws_default_service_quota, "AWS default")):
        try:
            value = call(ServiceCode="ec2", QuotaCode=quota.code)["Quota"]["Value"]
            return float(value), source
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("AccessDeniedException", "AccessDenied"):
                return quota.aws_default, "documented AWS default (not allowed to read Service Quotas)"
            continue
        except BotoCoreError:
            break
    return quota.aws_default, f"documented AWS default ({params.target} has no quota data)"


def rows(params: DeploymentParameters) -> list[dict[str, str | int | float]]:
    """One row per quota family the deployment needs.

    Columns: ``family``, ``quota`` (code and name), ``limit`` (vCPUs), ``source``,
    ``needed`` (vCPUs), ``for`` (profiles), ``status``: ``pass``, ``fail`` (core
    or demo profile cannot start), ``warn`` (another profile cannot start), or
    ``info`` (no real quota data: the documented default is shown).
    """
    result = []
    for family, (needed, profiles) in sorted(needs(params).items(), key=lambda kv: list(QUOTAS).index(kv[0])):
        quota = QUOTAS[family]
        limit, source = _read(params, quota)
        if source.startswith("documented"):
            status = "info"
        elif limit >= needed:
            status = "pass"
        elif family == "standard" or DEMO_PROFILE in profiles:
            status = "fail"
        else:
            status = "warn"
        result.append({
            "family": family,
            "quota": f"{quota.code} {quota.name}",
            "limit (vCPU)": int(limit) if float(limit).is_integer() else limit,
            "source": source,
            "needed (vCPU)": needed,
            "for": ", ".join(profiles),
            "status": status,
        })
    return result


def increase_hint(row: dict) -> str:
    """The CLI command that asks AWS for the needed quota (shown for failing rows)."""
    code = str(row["quota"]).split(" ", 1)[0]
    return (f"aws service-quotas request-service-quota-increase --service-code ec2 "
            f"--quota-code {code} --desired-value {row['needed (vCPU)']}")

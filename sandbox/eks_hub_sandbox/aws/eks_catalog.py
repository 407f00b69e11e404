"""Static data real EKS serves and the sandbox mirrors: add-on versions and access policies.

Versions are plausible current ``eksbuild`` strings; the sandbox only needs them to be
stable (so a second plan shows no changes) and well-formed.
"""

from __future__ import annotations

KUBERNETES_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33")

# add-on name -> (type, publisher, default version, older versions)
ADDONS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "vpc-cni": ("networking", "eks", "v1.19.5-eksbuild.1", ("v1.19.2-eksbuild.1",)),
    "coredns": ("networking", "eks", "v1.11.4-eksbuild.14", ("v1.11.4-eksbuild.2",)),
    "kube-proxy": ("networking", "eks", "v1.33.0-eksbuild.2", ("v1.32.3-eksbuild.7",)),
    "eks-pod-identity-agent": ("security", "eks", "v1.3.7-eksbuild.2", ("v1.3.4-eksbuild.1",)),
    "aws-ebs-csi-driver": ("storage", "eks", "v1.44.0-eksbuild.1", ("v1.41.0-eksbuild.1",)),
    "aws-efs-csi-driver": ("storage", "eks", "v2.1.8-eksbuild.1", ("v2.1.6-eksbuild.1",)),
    "snapshot-controller": ("storage", "eks", "v8.2.0-eksbuild.1", ()),
    "amazon-cloudwatch-observability": ("observability", "eks", "v4.0.1-eksbuild.1", ()),
}

ACCESS_POLICY_PREFIX = "arn:aws:eks::aws:cluster-access-policy/"
ACCESS_POLICIES = (
    "AmazonEKSAdminPolicy",
    "AmazonEKSAdminViewPolicy",
    "AmazonEKSClusterAdminPolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSViewPolicy",
    "AmazonEKSAutoNodePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
)

ACCESS_ENTRY_TYPES = ("STANDARD", "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "EC2", "HYBRID_LINUX", "HYPERPOD_LINUX")
# Node-type entries get a fixed username and may not carry Kubernetes groups.
NODE_ENTRY_USERNAMES = {
    "EC2_LINUX": "system:node:{{EC2PrivateDNSName}}",
    "EC2_WINDOWS": "system:node:{{EC2PrivateDNSName}}",
    "FARGATE_LINUX": "system:node:{{SessionName}}",
    "EC2": "system:node:{{EC2PrivateDNSName}}",
    "HYBRID_LINUX": "system:node:{{SessionName}}",
    "HYPERPOD_LINUX": "system:node:{{SessionName}}",
}


def default_addon_version(name: str) -> str:
    """The version EKS picks when CreateAddon names none (unknown add-ons get a generic one)."""
    return ADDONS[name][2] if name in ADDONS else "v1.0.0-eksbuild.1"


def addon_versions(name: str | None = None, kubernetes_version: str | None = None) -> list[dict]:
    """DescribeAddonVersions ``addons`` entries, optionally filtered by add-on name."""
    clusters = [kubernetes_version] if kubernetes_version else list(KUBERNETES_VERSIONS)
    rows = []
    for addon, (kind, publisher, default, older) in sorted(ADDONS.items()):
        if name and addon != name:
            continue
        versions = [
            {
                "addonVersion": version,
                "architecture": ["amd64", "arm64"],
                "computeTypes": ["ec2"],
                "compatibilities": [
                    {"clusterVersion": cv, "platformVersions": ["*"], "defaultVersion": version == default}
                    for cv in clusters
                ],
                "requiresConfiguration": False,
                "requiresIamPermissions": addon in ("aws-ebs-csi-driver", "aws-efs-csi-driver", "vpc-cni"),
            }
            for version in (default, *older)
        ]
        rows.append({"addonName": addon, "type": kind, "owner": "aws", "publisher": publisher, "addonVersions": versions})
    return rows


def access_policies() -> list[dict]:
    """ListAccessPolicies ``accessPolicies`` entries."""
    return [{"name": name, "arn": ACCESS_POLICY_PREFIX + name} for name in ACCESS_POLICIES]

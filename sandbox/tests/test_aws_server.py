"""The sandbox's local AWS: moto plus the EKS layer, through boto3 and the real awscli."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.sandbox

REGION = "us-west-2"
AWS_CLI = Path(sys.executable).parent / "aws"


@pytest.fixture(scope="module")
def clients(private_aws_sandbox):
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    return {name: session.client(name, endpoint_url=private_aws_sandbox) for name in ("eks", "ec2", "iam")}


@pytest.fixture(scope="module")
def network(clients):
    vpc = clients["ec2"].create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = clients["ec2"].create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    role = clients["iam"].create_role(RoleName=f"shim-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    return {"subnet": subnet, "role": role}


@pytest.fixture
def cluster(clients, network):
    """A fresh API-mode cluster per test (unique name), deleted afterwards."""
    name = f"c-{uuid.uuid4().hex[:8]}"
    clients["eks"].create_cluster(
        name=name, roleArn=network["role"], resourcesVpcConfig={"subnetIds": [network["subnet"]]},
        accessConfig={"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False},
    )
    yield name
    try:
        for group in clients["eks"].list_nodegroups(clusterName=name)["nodegroups"]:
            clients["eks"].delete_nodegroup(clusterName=name, nodegroupName=group)
        clients["eks"].delete_cluster(name=name)
    except ClientError:
        pass


def _code(error: pytest.ExceptionInfo) -> tuple[int, str]:
    response = error.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_cluster_reports_access_config_and_points_at_the_sandbox_api(clients, cluster):
    import eks_hub_sandbox as sandbox

    described = clients["eks"].describe_cluster(name=cluster)["cluster"]
    assert described["accessConfig"] == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
    assert described["endpoint"] == sandbox.kube_url()

    pem = b"-----BEGIN CERTIFICATE-----\nTUlJQ2Zha2U=\n-----END CERTIFICATE-----\n"
    ca_path = sandbox.kube_ca_path()
    previous = ca_path.read_bytes() if ca_path.exists() else None
    ca_path.write_bytes(pem)  # the kube service writes it when it starts; read per request
    try:
        described = clients["eks"].describe_cluster(name=cluster)["cluster"]
        assert base64.b64decode(described["certificateAuthority"]["data"]) == pem
    finally:
        if previous is None:
            ca_path.unlink()
        else:
            ca_path.write_bytes(previous)


def test_cluster_creator_gets_an_admin_entry_when_bootstrapped(clients, network):
    name = f"c-{uuid.uuid4().hex[:8]}"
    clients["eks"].create_cluster(name=name, roleArn=network["role"], resourcesVpcConfig={"subnetIds": [network["subnet"]]},
                                  accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"})
    try:
        entries = clients["eks"].list_access_entries(clusterName=name)["accessEntries"]
        assert len(entries) == 1 and ":iam::123456789012:" in entries[0]
        policies = clients["eks"].list_associated_access_policies(clusterName=name, principalArn=entries[0])
        assert [p["policyArn"].rsplit("/", 1)[-1] for p in policies["associatedAccessPolicies"]] == ["AmazonEKSClusterAdminPolicy"]
    finally:
        clients["eks"].delete_cluster(name=name)


def test_addons_lifecycle_and_errors(clients, cluster):
    eks = clients["eks"]
    addon = eks.create_addon(clusterName=cluster, addonName="coredns", tags={"team": "hub"})["addon"]
    assert addon["status"] == "ACTIVE"
    assert addon["addonVersion"] == "v1.11.4-eksbuild.14"
    with pytest.raises(ClientError) as error:
        eks.create_addon(clusterName=cluster, addonName="coredns")
    assert _code(error) == (409, "ResourceInUseException")
    with pytest.raises(ClientError) as error:
        eks.describe_addon(clusterName="no-such-cluster", addonName="coredns")
    assert _code(error) == (404, "ResourceNotFoundException")

    update = eks.update_addon(clusterName=cluster, addonName="coredns", addonVersion="v1.11.4-eksbuild.2")["update"]
    assert eks.describe_update(name=cluster, updateId=update["id"], addonName="coredns")["update"]["status"] == "Successful"
    assert eks.describe_addon(clusterName=cluster, addonName="coredns")["addon"]["addonVersion"] == "v1.11.4-eksbuild.2"
    assert eks.list_addons(clusterName=cluster)["addons"] == ["coredns"]

    eks.tag_resource(resourceArn=addon["addonArn"], tags={"extra": "1"})
    eks.untag_resource(resourceArn=addon["addonArn"], tagKeys=["team"])
    assert eks.list_tags_for_resource(resourceArn=addon["addonArn"])["tags"] == {"extra": "1"}

    eks.delete_addon(clusterName=cluster, addonName="coredns")
    with pytest.raises(ClientError) as error:
        eks.describe_addon(clusterName=cluster, addonName="coredns")
    assert _code(error) == (404, "ResourceNotFoundException")


def test_addon_versions_catalog(clients):
    addons = clients["eks"].describe_addon_versions(addonName="aws-efs-csi-driver", kubernetesVersion="1.33")["addons"]
    assert [a["addonName"] for a in addons] == ["aws-efs-csi-driver"]
    defaults = [v["addonVersion"] for v in addons[0]["addonVersions"] if v["compatibilities"][0]["defaultVersion"]]
    assert defaults == ["v2.1.8-eksbuild.1"]


def test_access_entries_and_policies(clients, cluster, network):
    eks = clients["eks"]
    role = network["role"]
    entry = eks.create_access_entry(clusterName=cluster, principalArn=role, kubernetesGroups=["viewers"])["accessEntry"]
    assert entry["type"] == "STANDARD" and entry["username"] == role
    with pytest.raises(ClientError) as error:
        eks.create_access_entry(clusterName=cluster, principalArn=role)
    assert _code(error) == (409, "ResourceInUseException")

    policy = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
    eks.associate_access_policy(clusterName=cluster, principalArn=role, policyArn=policy,
                                accessScope={"type": "namespace", "namespaces": ["jupyterhub"]})
    listed = eks.list_associated_access_policies(clusterName=cluster, principalArn=role)["associatedAccessPolicies"]
    assert listed[0]["accessScope"] == {"type": "namespace", "namespaces": ["jupyterhub"]}
    with pytest.raises(ClientError) as error:
        eks.associate_access_policy(clusterName=cluster, principalArn=role, policyArn="arn:aws:eks::aws:cluster-access-policy/Nope",
                                    accessScope={"type": "cluster"})
    assert _code(error) == (400, "InvalidParameterException")

    eks.disassociate_access_policy(clusterName=cluster, principalArn=role, policyArn=policy)
    assert eks.list_associated_access_policies(clusterName=cluster, principalArn=role)["associatedAccessPolicies"] == []
    eks.delete_access_entry(clusterName=cluster, principalArn=role)
    with pytest.raises(ClientError) as error:
        eks.describe_access_entry(clusterName=cluster, principalArn=role)
    assert _code(error) == (404, "ResourceNotFoundException")


def test_node_access_entry_gets_node_username_and_refuses_groups(clients, cluster, network):
    eks = clients["eks"]
    entry = eks.create_access_entry(clusterName=cluster, principalArn=network["role"], type="EC2_LINUX")["accessEntry"]
    assert entry["username"] == "system:node:{{EC2PrivateDNSName}}"
    with pytest.raises(ClientError) as error:
        eks.update_access_entry(clusterName=cluster, principalArn=network["role"], kubernetesGroups=["x"])
    assert _code(error) == (400, "InvalidParameterException")


def test_access_entries_need_api_authentication(clients, network):
    name = f"c-{uuid.uuid4().hex[:8]}"
    clients["eks"].create_cluster(name=name, roleArn=network["role"], resourcesVpcConfig={"subnetIds": [network["subnet"]]})
    try:
        assert clients["eks"].describe_cluster(name=name)["cluster"]["accessConfig"]["authenticationMode"] == "CONFIG_MAP"
        with pytest.raises(ClientError) as error:
            clients["eks"].create_access_entry(clusterName=name, principalArn=network["role"])
        assert _code(error) == (400, "InvalidParameterException")
    finally:
        clients["eks"].delete_cluster(name=name)


def test_pod_identity_associations(clients, cluster, network):
    eks = clients["eks"]
    created = eks.create_pod_identity_association(clusterName=cluster, namespace="jupyterhub",
                                                  serviceAccount="jupyterhub-singleuser", roleArn=network["role"])["association"]
    with pytest.raises(ClientError) as error:
        eks.create_pod_identity_association(clusterName=cluster, namespace="jupyterhub",
                                            serviceAccount="jupyterhub-singleuser", roleArn=network["role"])
    assert _code(error) == (409, "ResourceInUseException")
    eks.create_pod_identity_association(clusterName=cluster, namespace="kube-system", serviceAccount="karpenter",
                                        roleArn=network["role"])
    only_hub = eks.list_pod_identity_associations(clusterName=cluster, namespace="jupyterhub")["associations"]
    assert [a["associationId"] for a in only_hub] == [created["associationId"]]
    page = eks.list_pod_identity_associations(clusterName=cluster, maxResults=1)
    assert len(page["associations"]) == 1 and page["nextToken"]
    eks.delete_pod_identity_association(clusterName=cluster, associationId=created["associationId"])
    with pytest.raises(ClientError) as error:
        eks.describe_pod_identity_association(clusterName=cluster, associationId=created["associationId"])
    assert _code(error) == (404, "ResourceNotFoundException")


def test_node_groups_keep_what_was_asked(clients, cluster, network):
    eks = clients["eks"]
    plain = eks.create_nodegroup(clusterName=cluster, nodegroupName="core", subnets=[network["subnet"]],
                                 nodeRole=network["role"], updateConfig={"maxUnavailable": 2})["nodegroup"]
    assert "remoteAccess" not in plain
    described = eks.describe_nodegroup(clusterName=cluster, nodegroupName="core")["nodegroup"]
    assert "remoteAccess" not in described
    assert described["updateConfig"] == {"maxUnavailable": 2}
    remote = eks.create_nodegroup(clusterName=cluster, nodegroupName="ssh", subnets=[network["subnet"]],
                                  nodeRole=network["role"], remoteAccess={"ec2SshKey": "key"})["nodegroup"]
    assert remote["remoteAccess"]["ec2SshKey"] == "key"
    assert eks.describe_nodegroup(clusterName=cluster, nodegroupName="ssh")["nodegroup"]["updateConfig"] == {"maxUnavailable": 1}

    eks.tag_resource(resourceArn=plain["nodegroupArn"], tags={"owner": "hub"})
    assert eks.list_tags_for_resource(resourceArn=plain["nodegroupArn"])["tags"]["owner"] == "hub"


def test_deleting_a_cluster_deletes_what_the_layer_kept(clients, network):
    eks = clients["eks"]
    name = f"c-{uuid.uuid4().hex[:8]}"
    eks.create_cluster(name=name, roleArn=network["role"], resourcesVpcConfig={"subnetIds": [network["subnet"]]},
                       accessConfig={"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False})
    eks.create_addon(clusterName=name, addonName="vpc-cni")
    eks.delete_cluster(name=name)
    eks.create_cluster(name=name, roleArn=network["role"], resourcesVpcConfig={"subnetIds": [network["subnet"]]},
                       accessConfig={"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False})
    try:
        assert eks.list_addons(clusterName=name)["addons"] == []
    finally:
        eks.delete_cluster(name=name)


def _aws(endpoint: str, *args: str) -> dict:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    result = subprocess.run([str(AWS_CLI), "--endpoint-url", endpoint, "--output", "json", *args],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else {}


def test_real_awscli_talks_to_the_layer(private_aws_sandbox, cluster, network):
    assert AWS_CLI.exists(), "awscli is a pinned dependency; run make setup"
    described = _aws(private_aws_sandbox, "eks", "describe-cluster", "--name", cluster)
    assert described["cluster"]["accessConfig"]["authenticationMode"] == "API"
    _aws(private_aws_sandbox, "eks", "create-addon", "--cluster-name", cluster, "--addon-name", "aws-ebs-csi-driver")
    assert _aws(private_aws_sandbox, "eks", "list-addons", "--cluster-name", cluster)["addons"] == ["aws-ebs-csi-driver"]
    _aws(private_aws_sandbox, "eks", "create-access-entry", "--cluster-name", cluster, "--principal-arn", network["role"])
    entries = _aws(private_aws_sandbox, "eks", "list-access-entries", "--cluster-name", cluster)["accessEntries"]
    assert entries == [network["role"]]
    associations = _aws(private_aws_sandbox, "eks", "list-pod-identity-associations", "--cluster-name", cluster)
    assert associations["associations"] == []
    identity = _aws(private_aws_sandbox, "sts", "get-caller-identity")
    assert identity["Account"] == "123456789012"


def test_a_retried_create_with_the_same_client_token_gets_the_same_answer(clients, cluster):
    """The SDK retries a timed-out POST with the same clientRequestToken; EKS answers it again
    instead of 'already exists' (seen in CI under load: CreateAddon 409 after a client retry)."""
    eks = clients["eks"]
    first = eks.create_addon(clusterName=cluster, addonName="coredns", clientRequestToken="retry-token-1")
    again = eks.create_addon(clusterName=cluster, addonName="coredns", clientRequestToken="retry-token-1")
    assert again["addon"]["addonArn"] == first["addon"]["addonArn"]
    with pytest.raises(eks.exceptions.ResourceInUseException):
        eks.create_addon(clusterName=cluster, addonName="coredns", clientRequestToken="another-token")
    eks.delete_addon(clusterName=cluster, addonName="coredns")


def test_a_log_group_takes_a_kms_key_after_creation_and_gives_it_up(private_aws_sandbox):
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    logs, kms = (session.client(name, endpoint_url=private_aws_sandbox) for name in ("logs", "kms"))
    key = kms.create_key()["KeyMetadata"]["Arn"]
    name = f"/adopted/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=name)
    logs.associate_kms_key(logGroupName=name, kmsKeyId=key)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["kmsKeyId"] == key
    logs.disassociate_kms_key(logGroupName=name)
    assert "kmsKeyId" not in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.associate_kms_key(logGroupName="/no/such/group", kmsKeyId=key)

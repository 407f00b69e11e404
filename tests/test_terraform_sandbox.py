"""Integration: the root module applied for real against the sandbox's AWS.

For each login type: a staged apply (after a provoked failure, to prove a re-run resumes),
checks of what exists, a plan with no changes, a staged destroy, and a leftovers scan that
must come back empty (KMS keys pending deletion are allowed). Durations are printed and
written to ``<state>/terraform-durations.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from eks_hub_runbook import params, paths, terraform
from eks_hub_runbook.aws import leftovers
from eks_hub_runbook.errors import TerraformError

pytestmark = [pytest.mark.terraform, pytest.mark.sandbox, pytest.mark.slow]

REGION = "us-west-2"
FAST_RETRY = terraform.RetryPolicy(attempts=3, base_delay=1, factor=2)


def _client(endpoint: str, service: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _import_self_signed(endpoint: str, wildcard: str) -> str:
    """A self-signed certificate for ``wildcard`` imported into the sandbox's ACM; returns its ARN."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wildcard)])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(wildcard)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _client(endpoint, "acm").import_certificate(
        Certificate=certificate.public_bytes(serialization.Encoding.PEM),
        PrivateKey=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )["CertificateArn"]


def _record(name: str, durations: dict[str, float]) -> None:
    path = paths.state_dir() / "terraform-durations.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = {k: round(v, 1) for k, v in durations.items()}
    path.write_text(json.dumps(data, indent=2))
    print(f"\n{name} durations (s): {data[name]}")


def _check_common(endpoint: str, outputs: terraform.Outputs, name: str) -> None:
    eks, efs, ec2 = (_client(endpoint, s) for s in ("eks", "efs", "ec2"))
    assert outputs["cluster_name"] == name
    import eks_hub_sandbox as sandbox

    assert outputs["cluster_endpoint"] == sandbox.kube_url()
    assert outputs["configure_kubectl"] == f"aws eks --region {REGION} update-kubeconfig --name {name}"

    cluster = eks.describe_cluster(name=name)["cluster"]
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    assert cluster["encryptionConfig"][0]["resources"] == ["secrets"]
    assert cluster["resourcesVpcConfig"]["publicAccessCidrs"] == ["0.0.0.0/0"]
    assert sorted(eks.list_addons(clusterName=name)["addons"]) == sorted(
        ["vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver", "aws-efs-csi-driver"])
    # The VPC CNI enforces the hub's NetworkPolicies (its network policy agent is on).
    cni = eks.describe_addon(clusterName=name, addonName="vpc-cni")["addon"]
    assert json.loads(cni["configurationValues"]) == {"enableNetworkPolicy": "true"}
    core = eks.describe_nodegroup(clusterName=name, nodegroupName="core")["nodegroup"]
    assert core["labels"] == {"NodeGroupType": "core"} and core["instanceTypes"] == ["m5.xlarge"]
    assert core["scalingConfig"] == {"minSize": 2, "maxSize": 8, "desiredSize": 2}

    # The notebook role trusts (the blueprint's trusted another name) exactly the service account the platform creates.
    associations = eks.list_pod_identity_associations(clusterName=name)["associations"]
    bound = {(a["namespace"], a["serviceAccount"]) for a in associations}
    assert (outputs["singleuser_namespace"], outputs["singleuser_service_account"]) == ("jupyterhub", "jupyterhub-singleuser")
    assert {("jupyterhub", "jupyterhub-singleuser"), ("kube-system", "karpenter"), ("kube-system", "ebs-csi-controller-sa"),
            ("kube-system", "efs-csi-controller-sa"), ("kube-system", "aws-load-balancer-controller")} <= bound
    entries = eks.list_access_entries(clusterName=name)["accessEntries"]
    assert any(e.endswith(f":role/{outputs['karpenter_node_role_name']}") for e in entries)

    # Shared storage is its own tree (the blueprint's was the root), not the file-system root above the homes.
    points = {p["AccessPointId"]: p["RootDirectory"]["Path"]
              for p in efs.describe_access_points(FileSystemId=outputs["efs_file_system_id"])["AccessPoints"]}
    assert points[outputs["efs_home_access_point_id"]] == "/home"
    assert points[outputs["efs_shared_access_point_id"]] == "/shared"
    assert efs.describe_file_systems(FileSystemId=outputs["efs_file_system_id"])["FileSystems"][0]["Encrypted"]

    subnets = ec2.describe_subnets(SubnetIds=outputs["private_subnet_ids"] + outputs["public_subnet_ids"])["Subnets"]
    tags = {s["SubnetId"]: {t["Key"]: t["Value"] for t in s["Tags"]} for s in subnets}
    assert all(tags[s]["karpenter.sh/discovery"] == name and tags[s]["kubernetes.io/role/internal-elb"] == "1"
               for s in outputs["private_subnet_ids"])
    assert all(tags[s]["kubernetes.io/role/elb"] == "1" for s in outputs["public_subnet_ids"])
    assert len({s["AvailabilityZone"] for s in subnets}) == 2


def _destroy_and_check_nothing_is_left(workspace: terraform.Workspace, name: str, durations: dict[str, float]) -> None:
    started = time.monotonic()
    terraform.teardown(workspace, log=None, bar=False, retry=FAST_RETRY)
    durations["destroy"] = time.monotonic() - started
    assert terraform.state_list(workspace) == []
    assert leftovers.scan(name, "sandbox", "us-west-2") == []
    pending = leftovers.scan(name, "sandbox", "us-west-2", services=["kms"], include_pending_deletion=True)
    assert pending and all(row["state"] == "PendingDeletion" for row in pending)


def test_type_1_dummy_apply_resumes_plans_clean_and_destroys_everything(private_aws_sandbox):
    name = "hub-type1"
    workspace = terraform.prepare(params.resolve(deployment=name))
    durations: dict[str, float] = {}
    lines: list[str] = []

    # Provoke a failure in the first stage: a queue with the interruption queue's name and
    # other attributes already exists. The error is not transient, so it is raised at once.
    sqs = _client(private_aws_sandbox, "sqs")
    squatter = sqs.create_queue(QueueName=f"{name}-karpenter", Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    started = time.monotonic()
    with pytest.raises(TerraformError, match="apply: network failed"):
        terraform.deploy(workspace, log=lines.append, bar=False, retry=FAST_RETRY)
    durations["failed apply"] = time.monotonic() - started
    assert terraform.state_list(workspace), "the stage applied what it could before failing"
    assert (workspace.log_dir / "terraform.log").read_text().count("FAILED") >= 1

    # Re-running after the cause is gone resumes from the saved state and converges. A policy an
    # interrupted apply created but never recorded (same name, older document) is adopted.
    sqs.delete_queue(QueueUrl=squatter)
    _client(private_aws_sandbox, "iam").create_policy(
        PolicyName=f"{name}-karpenter-controller",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}]}))
    started = time.monotonic()
    stages = terraform.deploy(workspace, log=lines.append, bar=False, retry=FAST_RETRY)
    durations["apply (resumed)"] = time.monotonic() - started
    assert [s.stage for s in stages] == ["network", "cluster", "everything"]
    assert any(line.startswith("aws_eks_cluster.this: created") for line in lines)
    assert any(line.startswith("adopted aws_iam_policy.karpenter_controller") for line in lines), lines[-20:]

    outputs = terraform.output(workspace)
    _check_common(private_aws_sandbox, outputs, name)
    assert outputs["certificate_arn"] == "" and outputs["cognito_user_pool_id"] == ""
    assert leftovers.scan(name, "sandbox", "us-west-2", services=["cognito-idp"]) == []

    # A terraform SIGKILLed while writing its state loses what that run created (the resume restores
    # the backup): here the cluster, its node group and its add-ons. The resume adopts them, one level
    # per run, without replacing the cluster (bootstrap_self_managed_addons reads back false).
    created_at = _client(private_aws_sandbox, "eks").describe_cluster(name=name)["cluster"]["createdAt"]
    cluster_stage = terraform.APPLY_STAGES[1]
    unrecorded = [a for a in terraform.state_list(workspace) if a.split("[")[0] in cluster_stage.targets]
    assert len(unrecorded) == 8, unrecorded
    subprocess.run(["terraform", f"-chdir={workspace.directory}", "state", "rm", *unrecorded], env=workspace.env(),
                   check=True, capture_output=True)
    started, lines = time.monotonic(), []
    terraform.deploy(workspace, log=lines.append, bar=False, retry=FAST_RETRY, stages=(cluster_stage,))
    durations["apply adopting the cluster stage"] = time.monotonic() - started
    assert sorted(line.split(" (")[0] for line in lines if line.startswith("adopted ")) == sorted(
        f"adopted {address}" for address in unrecorded), lines[-20:]
    assert _client(private_aws_sandbox, "eks").describe_cluster(name=name)["cluster"]["createdAt"] == created_at

    started = time.monotonic()
    assert terraform.plan_after_apply_is_empty(workspace)
    durations["plan"] = time.monotonic() - started

    _destroy_and_check_nothing_is_left(workspace, name, durations)
    _record(name, durations)


def test_type_2_cognito_apply_plans_clean_and_destroys_everything(private_aws_sandbox):
    name = "hub-type2"
    arn = _import_self_signed(private_aws_sandbox, "*.example.com")
    p = params.resolve(deployment=name, auth="cognito", domain="hub.example.com")
    workspace = terraform.prepare(p, certificate_arn=arn)
    durations: dict[str, float] = {}
    # This deployment also applies the module's optional VPC flow logs (off by default).
    tfvars = workspace.directory / "terraform.tfvars.json"
    tfvars.write_text(json.dumps({**json.loads(tfvars.read_text()), "vpc_flow_logs": "REJECT"}))

    started = time.monotonic()
    terraform.deploy(workspace, log=None, bar=False, retry=FAST_RETRY)
    durations["apply"] = time.monotonic() - started

    outputs = terraform.output(workspace)
    _check_common(private_aws_sandbox, outputs, name)
    assert outputs["certificate_arn"] == arn
    assert "cognito_client_secret" in outputs.sensitive and outputs["cognito_client_secret"]
    assert outputs["cognito_client_secret"] not in repr(outputs)
    prefix = outputs["cognito_domain"]
    assert prefix.startswith(f"{name}-") and len(prefix) == len(name) + 11  # name + '-' + 10 hex of sha1(account/region/name)
    base = f"https://{prefix}.auth.{REGION}.amazoncognito.com/oauth2"
    assert (outputs["cognito_authorize_url"], outputs["cognito_token_url"], outputs["cognito_userinfo_url"]) == (
        f"{base}/authorize", f"{base}/token", f"{base}/userInfo")

    cognito = _client(private_aws_sandbox, "cognito-idp")
    pool = cognito.describe_user_pool(UserPoolId=outputs["cognito_user_pool_id"])["UserPool"]
    assert pool["UsernameAttributes"] == ["email"]
    client = cognito.describe_user_pool_client(UserPoolId=outputs["cognito_user_pool_id"],
                                               ClientId=outputs["cognito_client_id"])["UserPoolClient"]
    assert client["CallbackURLs"] == ["https://hub.example.com/hub/oauth_callback"]
    assert client["AllowedOAuthFlows"] == ["code"] and client["ClientSecret"] == outputs["cognito_client_secret"]
    assert outputs["hub_callback_url"] == "https://hub.example.com/hub/oauth_callback"

    # Tenants' fences and logs: hop limit 1, a default security group that allows nothing,
    # flow logs into a log group encrypted with the module's logs key.
    ec2, logs = _client(private_aws_sandbox, "ec2"), _client(private_aws_sandbox, "logs")
    [template] = ec2.describe_launch_templates(Filters=[{"Name": "tag:runbook:deployment", "Values": [name]}])["LaunchTemplates"]
    version = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])["LaunchTemplateVersions"][0]
    assert version["LaunchTemplateData"]["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    vpc_id = outputs["vpc_id"]
    [default] = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                      {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    assert default["IpPermissions"] == [] and default["IpPermissionsEgress"] == []
    [flow] = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc_id]}])["FlowLogs"]
    assert flow["TrafficType"] == "REJECT" and flow["LogDestination"].endswith(f":log-group:/aws/vpc/{name}/flow-logs")
    groups = {g["logGroupName"]: g for g in logs.describe_log_groups(logGroupNamePrefix="/aws/")["logGroups"]}
    for group in (f"/aws/vpc/{name}/flow-logs", f"/aws/eks/{name}/cluster"):
        assert groups[group]["kmsKeyId"].startswith("arn:aws:kms:"), group

    started = time.monotonic()
    assert terraform.plan_after_apply_is_empty(workspace)
    durations["plan"] = time.monotonic() - started

    _destroy_and_check_nothing_is_left(workspace, name, durations)
    assert leftovers.scan(name, "sandbox", "us-west-2", services=["cognito-idp"]) == []
    _record(name, durations)

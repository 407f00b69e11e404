"""Which failures are retried, how often, and that a retried run resumes."""

from __future__ import annotations

import stat
import textwrap

import pytest

from eks_hub_runbook.errors import TerraformError
from eks_hub_runbook import terraform
from eks_hub_runbook.terraform import RetryPolicy, all_transient, is_transient
from eks_hub_runbook.terraform import commands
from eks_hub_runbook.terraform.workspace import Workspace

TRANSIENT = [
    "error (aws_vpc.this): creating EC2 VPC: api error Throttling: Rate exceeded",
    "error: RequestError: send request failed caused by: Post https://eks.us-west-2.amazonaws.com: dial tcp: connection refused",
    "error: read tcp 10.0.0.1:443: connection reset by peer",
    "error: waiting for EKS Add-On create: timeout while waiting for state to become 'ACTIVE'",
    "error: api error RequestLimitExceeded: Request limit exceeded.",
    "error: StatusCode: 503, api error ServiceUnavailable",
    # the AWS provider's own words once its retries are spent (RequestLimitExceeded injected by the local AWS)
    "error (aws_subnet.this): creating EC2 Subnet: operation error EC2: CreateSubnet, exceeded maximum number of "
    "attempts, 2, https response error StatusCode: 503, RequestID: 4434b284-4253-4739-944d-0d6bd3b06d6c, api error "
    "RequestLimitExceeded: Request limit exceeded.",
    "error: creating ACM Certificate: operation error ACM: ImportCertificate, exceeded maximum number of attempts, "
    "25, https response error StatusCode: 400, RequestID: x, api error ThrottlingException: Rate exceeded",
    "error: creating Cognito User Pool: operation error Cognito Identity Provider: CreateUserPool, https response "
    "error StatusCode: 429, RequestID: x, TooManyRequestsException: Too many requests",
    "error: reading EKS Cluster (demo): operation error EKS: DescribeCluster, https response error StatusCode: 503, "
    "RequestID: x, ServiceUnavailableException: Service is unavailable. Please try again later.",
    "error: creating IAM Role (demo-x): operation error IAM: CreateRole, https response error StatusCode: 500, "
    "RequestID: x, api error InternalFailure: An internal error occurred.",
    "error: deleting EC2 Subnet: DependencyViolation: The subnet has dependencies and cannot be deleted.",
    "error: deleting EC2 Launch Template (lt-2819601167cc20963): operation error EC2: DeleteLaunchTemplate, https "
    "response error StatusCode: 400, api error InvalidLaunchTemplateName.NotFoundException: At least one of the "
    "launch templates specified in the request does not exist.",
    "error: deleting EC2 VPC IPv4 CIDR Block Association (vpc-cidr-assoc-0495e302576b00c08): operation error EC2: "
    "DisassociateVpcCidrBlock, https response error StatusCode: 400, api error InvalidRoute.NotFound: no route with "
    "destination-cidr-block 100.64.0.0/16 in route table rtb-7ec8373319474d33e",
]
FATAL = [
    "error: Invalid value for variable: Variable 'region' must be an AWS commercial region name such as us-west-2.",
    "error: Unsupported argument: An argument named \"foo\" is not expected here.",
    "error: creating IAM Role: api error AccessDenied: User is not authorized to perform iam:CreateRole",
    "error: creating EKS Cluster: InvalidParameterException: unsupported Kubernetes version 1.12",
    "error: api error ValidationException: 1 validation error detected",
    "error: creating EKS Node Group: api error ResourceNotFoundException: No cluster found for name: nope.",
]


@pytest.mark.parametrize("message", TRANSIENT)
def test_transient_errors(message):
    assert is_transient(message)


@pytest.mark.parametrize("message", FATAL)
def test_fatal_errors(message):
    assert not is_transient(message)


def test_one_fatal_error_makes_the_failure_fatal():
    assert all_transient(TRANSIENT)
    assert not all_transient([TRANSIENT[0], FATAL[0]])
    assert not all_transient([])


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(attempts=5, base_delay=2, factor=3, max_delay=30)
    assert [policy.delay(n) for n in range(1, 5)] == [2, 6, 18, 30]


def _fake_terraform(tmp_path, fail_times: int, message: str):
    """A stand-in terraform that fails ``fail_times`` times with ``message`` then succeeds."""
    counter = tmp_path / "calls"
    script = tmp_path / "terraform"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}
        if [ $n -le {fail_times} ]; then
          echo '{{"type":"diagnostic","@message":"x","diagnostic":{{"severity":"error","summary":"{message}","detail":""}}}}'
          exit 1
        fi
        echo '{{"type":"apply_complete","@message":"ok","hook":{{"resource":{{"addr":"aws_vpc.this"}},"action":"create","elapsed_seconds":1}}}}'
        exit 0
        """))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, counter


@pytest.fixture
def workspace(tmp_path):
    directory = tmp_path / "ws"
    directory.mkdir()
    return Workspace("demo", "aws", "us-west-2", directory, tmp_path, tmp_path / "cli.tfrc", {})


def test_transient_failures_are_retried_then_succeed(tmp_path, workspace, monkeypatch):
    script, counter = _fake_terraform(tmp_path, 2, "api error Throttling: Rate exceeded")
    monkeypatch.setattr(commands, "TERRAFORM", str(script))
    result, attempts = commands._run_retrying(workspace, ["apply"], "apply", None, False, RetryPolicy(3, 0.01, 1))
    assert attempts == 3 and result.done == 1
    assert counter.read_text().strip() == "3"


def test_retries_are_bounded(tmp_path, workspace, monkeypatch):
    script, counter = _fake_terraform(tmp_path, 10, "dial tcp: connection refused")
    monkeypatch.setattr(commands, "TERRAFORM", str(script))
    with pytest.raises(TerraformError, match="after 2 attempts") as error:
        commands._run_retrying(workspace, ["apply"], "apply", None, False, RetryPolicy(2, 0.01, 1))
    assert "connection refused" in str(error.value)
    assert counter.read_text().strip() == "2"


def test_validation_errors_fail_at_once(tmp_path, workspace, monkeypatch):
    script, counter = _fake_terraform(tmp_path, 10, "Invalid value for variable: Variable name is wrong")
    monkeypatch.setattr(commands, "TERRAFORM", str(script))
    with pytest.raises(TerraformError, match="Invalid value for variable"):
        commands._run_retrying(workspace, ["apply"], "apply", None, False, RetryPolicy(5, 0.01, 1))
    assert counter.read_text().strip() == "1"
    assert (workspace.directory / "logs" / "terraform.log").exists()


# ---- adopting what an interrupted apply left unrecorded ----------------------------------------

TAKEN = ("creating IAM Policy (demo-karpenter-controller): operation error IAM: CreatePolicy, https response error "
         "StatusCode: 409, RequestID: x, EntityAlreadyExists: A policy called demo-karpenter-controller already exists.")


def test_already_exists_errors_of_the_deployment_are_orphans_to_adopt():
    from eks_hub_runbook.terraform import adopt

    found = adopt.orphans([terraform.Diagnostic("error", TAKEN, address="aws_iam_policy.karpenter_controller"),
                           terraform.Diagnostic("warning", "deprecated argument")], "demo")
    assert found == [adopt.Orphan("aws_iam_policy.karpenter_controller", "demo-karpenter-controller")]
    assert found[0].resource_type == "aws_iam_policy"
    assert adopt.Orphan('module.x.aws_iam_role.this["a"]', "demo-a").resource_type == "aws_iam_role"


def test_the_deployments_log_groups_are_orphans_with_its_roles():
    """Found by the fault matrix in CI: a resume failed on the roles and the cluster's log group at once, and
    the log group's name (/aws/eks/<name>/cluster) did not start with the deployment's, so nothing was adopted."""
    from eks_hub_runbook.terraform import adopt

    log_group = ("creating CloudWatch Logs Log Group (/aws/eks/demo/cluster): operation error CloudWatch Logs: CreateLogGroup, "
                 "https response error StatusCode: 400, RequestID: x, ResourceAlreadyExistsException: The specified log group "
                 "already exists")
    found = adopt.orphans([terraform.Diagnostic("error", TAKEN, address="aws_iam_policy.karpenter_controller"),
                           terraform.Diagnostic("error", log_group, address="aws_cloudwatch_log_group.cluster")], "demo")
    assert [o.name for o in found] == ["demo-karpenter-controller", "/aws/eks/demo/cluster"]
    assert adopt.orphans([terraform.Diagnostic("error", log_group.replace("/demo/", "/other/"),
                                               address="aws_cloudwatch_log_group.cluster")], "demo") == []


def test_an_efs_file_system_created_before_terraform_was_killed_is_an_orphan_found_by_its_token():
    """The fault matrix's first finding: terraform SIGKILLed in the network stage left the EFS file
    system unrecorded; every resume then failed with FileSystemAlreadyExists (its creation token)."""
    from eks_hub_runbook.terraform import adopt

    text = ("creating EFS File System: operation error EFS: CreateFileSystem, https response error StatusCode: 409, "
            "RequestID: x, FileSystemAlreadyExists: File system with demo-users already exists.")
    found = adopt.orphans([terraform.Diagnostic("error", text, address="aws_efs_file_system.this")], "demo")
    assert found == [adopt.Orphan("aws_efs_file_system.this", "demo-users")]
    assert adopt.orphans([terraform.Diagnostic("error", text.replace("demo-", "other-"), address="aws_efs_file_system.this")],
                         "demo") == []


@pytest.mark.parametrize("address, text, name", [
    ("aws_eks_cluster.this", "creating EKS Cluster (demo): operation error EKS: CreateCluster, https response error "
     "StatusCode: 409, RequestID: x, ResourceInUseException: Cluster already exists with name: demo", "demo"),
    ("aws_eks_node_group.core", "creating EKS Node Group (demo:core): operation error EKS: CreateNodegroup, https response "
     "error StatusCode: 409, RequestID: x, ResourceInUseException: NodeGroup already exists with name core and cluster "
     "name demo", "demo:core"),
    ('aws_eks_addon.this["vpc-cni"]', "creating EKS Add-On (demo:vpc-cni): operation error EKS: CreateAddon, https response "
     "error StatusCode: 409, RequestID: x, ResourceInUseException: Addon already exists: vpc-cni", "demo:vpc-cni"),
    ("aws_security_group.efs", "creating Security Group (demo-efs): operation error EC2: CreateSecurityGroup, https "
     "response error StatusCode: 400, RequestID: x, api error InvalidGroup.Duplicate: The security group 'demo-efs' "
     "already exists", "demo-efs"),
    ("aws_subnet.private[0]", "creating EC2 Subnet: operation error EC2: CreateSubnet, https response error StatusCode: "
     "400, RequestID: x, api error InvalidSubnet.Conflict: The CIDR '10.1.0.0/24' conflicts with another subnet",
     "10.1.0.0/24"),
    ('aws_eks_pod_identity_association.this["karpenter"]', "creating AWS EKS (Elastic Kubernetes) Pod Identity "
     "Association (<unknown>): operation "
     "error EKS: CreatePodIdentityAssociation, https response error StatusCode: 409, RequestID: x, "
     "ResourceInUseException: Association already exists: a-0123abcd", "a-0123abcd"),
], ids=["cluster", "node-group", "add-on", "security-group", "subnet", "pod-identity-association"])
def test_what_terraform_killed_mid_create_left_in_eks_and_ec2_is_adopted(address, text, name):
    """The fault matrix's findings: terraform SIGKILLed while the node group, an add-on or the EFS
    security group was being created left it in AWS only; every resume then failed on its name."""
    from eks_hub_runbook.terraform import adopt

    found = adopt.orphans([terraform.Diagnostic("error", text, address=address)], "demo")
    assert found == [adopt.Orphan(address, name)]
    if address.startswith("aws_eks") and "pod_identity" not in address:
        assert found[0].import_id({"account_id": "1", "partition": "aws"}) == name
        # EKS's ResourceInUseException without "already exists" (a cluster being deleted) is not adopted
        busy = text.split("ResourceInUseException")[0] + "ResourceInUseException: Cluster is being deleted"
        assert adopt.orphans([terraform.Diagnostic("error", busy, address=address)], "demo") == []


def _terraform_failing_with(tmp_path, failures: list[tuple[str, str]]):
    """A stand-in terraform whose n-th run fails with the n-th (address, error), and which then succeeds."""
    import json
    import sys

    counter, script = tmp_path / "calls", tmp_path / "terraform"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, pathlib
        counter = pathlib.Path({str(counter)!r})
        n = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(n + 1))
        failures = json.loads({json.dumps(json.dumps(failures))})
        if n < len(failures):
            address, summary = failures[n]
            print(json.dumps({{"type": "diagnostic", "@message": "x", "diagnostic": {{
                "severity": "error", "summary": summary, "detail": "", "address": address}}}}))
            raise SystemExit(1)
        print(json.dumps({{"type": "apply_complete", "@message": "ok", "hook": {{
            "resource": {{"addr": "aws_vpc.this"}}, "action": "create", "elapsed_seconds": 1}}}}))
        """))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, counter


CLUSTER_TAKEN = ("aws_eks_cluster.this", "creating EKS Cluster (demo): operation error EKS: CreateCluster, https "
                 "response error StatusCode: 409, ResourceInUseException: Cluster already exists with name: demo")
NODE_GROUP_TAKEN = ("aws_eks_node_group.core", "creating EKS Node Group (demo:core): operation error EKS: CreateNodegroup, "
                    "https response error StatusCode: 409, ResourceInUseException: NodeGroup already exists with name core")
ADDON_TAKEN = ('aws_eks_addon.this["vpc-cni"]', "creating EKS Add-On (demo:vpc-cni): operation error EKS: CreateAddon, "
               "https response error StatusCode: 409, ResourceInUseException: Addon already exists: vpc-cni")


def test_adopting_a_chain_of_orphans_spends_no_retries(tmp_path, workspace, monkeypatch):
    """CI's fault matrix: terraform killed while the state was written left the cluster, its node group
    and its add-ons unrecorded. Each apply stops at the first of the chain, so the resume adopted one
    level per run, and with adoptions counted as retries it gave up at the add-ons after 3 runs."""
    script, counter = _terraform_failing_with(tmp_path, [CLUSTER_TAKEN, NODE_GROUP_TAKEN, ADDON_TAKEN])
    monkeypatch.setattr(commands, "TERRAFORM", str(script))
    adopted: list[str] = []
    monkeypatch.setattr(commands, "_adopt", lambda ws, found, log: adopted.extend(o.address for o in found))
    result, runs = commands._run_retrying(workspace, ["apply"], "apply", None, False, RetryPolicy(1, 0.01, 1),
                                          adopt_orphans=True)
    assert result.returncode == 0 and runs == 4 and counter.read_text() == "4"
    assert adopted == [CLUSTER_TAKEN[0], NODE_GROUP_TAKEN[0], ADDON_TAKEN[0]]


def test_an_orphan_is_adopted_once_then_its_error_is_raised(tmp_path, workspace, monkeypatch):
    script, counter = _terraform_failing_with(tmp_path, [CLUSTER_TAKEN, CLUSTER_TAKEN, CLUSTER_TAKEN])
    monkeypatch.setattr(commands, "TERRAFORM", str(script))
    adopted: list[str] = []
    monkeypatch.setattr(commands, "_adopt", lambda ws, found, log: adopted.extend(o.address for o in found))
    with pytest.raises(TerraformError, match="Cluster already exists"):
        commands._run_retrying(workspace, ["apply"], "apply", None, False, RetryPolicy(3, 0.01, 1), adopt_orphans=True)
    assert adopted == [CLUSTER_TAKEN[0]] and counter.read_text() == "2"


@pytest.mark.parametrize("diagnostics", [
    [terraform.Diagnostic("error", TAKEN, address="aws_iam_policy.karpenter_controller"),
     terraform.Diagnostic("error", "creating EKS Cluster (demo): InvalidParameterException", address="aws_eks_cluster.this")],
    [terraform.Diagnostic("error", TAKEN.replace("demo-", "someone-else-"), address="aws_iam_policy.karpenter_controller")],
    [terraform.Diagnostic("error", TAKEN.replace("IAM Policy", "SQS Queue"), address="aws_sqs_queue.karpenter")],
    [terraform.Diagnostic("error", TAKEN, address="")],
], ids=["another-error-too", "not-the-deployments-name", "type-without-import-id", "no-address"])
def test_nothing_is_adopted_unless_every_error_is_an_adoptable_name_of_ours(diagnostics):
    from eks_hub_runbook.terraform import adopt

    assert adopt.orphans(diagnostics, "demo") == []


def test_import_ids_come_from_the_identity_the_state_holds():
    from eks_hub_runbook.terraform import adopt

    state = {"resources": [
        {"mode": "data", "type": "aws_caller_identity", "instances": [{"attributes": {"account_id": "123456789012"}}]},
        {"mode": "data", "type": "aws_partition", "instances": [{"attributes": {"partition": "aws"}}]}]}
    identity = adopt.identity(state)
    assert adopt.Orphan("aws_iam_policy.x", "demo-x").import_id(identity) == "arn:aws:iam::123456789012:policy/demo-x"
    assert adopt.Orphan("aws_iam_role.x", "demo-x").import_id(identity) == "demo-x"
    with pytest.raises(TerraformError, match="aws_caller_identity"):
        adopt.identity({"resources": []})


# ---- the real AWS provider against throttling injected by the local AWS -----------------------

THROTTLED_MODULE = """
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 5.100" }
  }
}

provider "aws" {
  region      = "%(region)s"
  max_retries = 2 # the provider retries once (2 attempts): a third throttle in a row reaches the runbook
}

resource "aws_vpc" "this" {
  cidr_block = "10.51.0.0/16"
}

resource "aws_subnet" "this" {
  vpc_id     = aws_vpc.this.id
  cidr_block = "10.51.1.0/24"
}
"""


@pytest.mark.sandbox
@pytest.mark.terraform
def test_the_provider_retries_request_limit_exceeded_and_retry_py_knows_its_message(aws_sandbox, tmp_path):
    """The real AWS provider against throttles injected by the local AWS, in one apply (each
    terraform run costs ~10 s here): one throttle on CreateVpc is absorbed by the provider's own
    retries; two on CreateSubnet outlast them (``max_retries = 2``: 2 attempts), and the message
    the provider then reports is one retry.py classifies as transient, so the runbook's apply
    would run again (that loop is tested above with a stand-in terraform)."""
    import boto3

    from eks_hub_sandbox.aws.faults import FaultClient

    from eks_hub_runbook import targets
    from eks_hub_runbook.aws import session
    from eks_hub_runbook.terraform import workspace as workspaces

    region = "eu-north-1"  # only this test uses it
    directory = tmp_path / "throttled"
    directory.mkdir()
    (directory / "main.tf").write_text(THROTTLED_MODULE % {"region": region})
    (directory / workspaces.OVERRIDE_FILE).write_text(targets.get("sandbox").terraform_override())
    ws = Workspace("throttled", "sandbox", region, directory, directory, workspaces.write_cli_config(),
                   session.subprocess_env("sandbox", region))
    faults = FaultClient(aws_sandbox)
    vpc = faults.inject("ec2", "CreateVpc", "RequestLimitExceeded", status=503, count=1, region=region)
    subnet = faults.inject("ec2", "CreateSubnet", "RequestLimitExceeded", status=503, count=2, region=region)
    ec2 = boto3.client("ec2", endpoint_url=aws_sandbox, region_name=region, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    try:
        with pytest.raises(TerraformError) as failed:
            terraform.apply(ws, log=None, bar=False, retry=RetryPolicy(attempts=1))
        assert (faults.get(vpc["id"])["hits"], faults.get(subnet["id"])["hits"]) == (1, 2)
        assert commands.state_list(ws) == ["aws_vpc.this"]  # the provider retried CreateVpc: created
        errors = failed.value.errors
        assert len(errors) == 1 and "CreateSubnet" in errors[0] and "RequestLimitExceeded" in errors[0]
        assert all_transient(errors), errors
    finally:
        faults.clear(vpc["id"])
        faults.clear(subnet["id"])
        for found in ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.51.0.0/16"]}])["Vpcs"]:
            ec2.delete_vpc(VpcId=found["VpcId"])  # the throwaway module's only leftover; no second terraform run

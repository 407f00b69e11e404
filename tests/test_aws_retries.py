"""The product's AWS calls survive throttling, 503s and NotFound right after a create, injected
by the sandbox's local AWS (``/_sandbox/faults``); past the retry budget the error is a clear
RunbookError naming the operation.

Faults are scoped to a region only these tests use, so background callers of the shared local
AWS never consume them. Waits are shortened (botocore's backoff to zero, the after-create
policy to milliseconds): what is tested is what is retried and how often, not how long.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from eks_hub_runbook import tls
from eks_hub_runbook.aws import acm, cognito, consistency, eks, identity, leftovers, quotas, session
from eks_hub_runbook.errors import RunbookError
from eks_hub_runbook.params import resolve

pytestmark = pytest.mark.sandbox

REGION = "eu-west-3"  # only these tests use it


@pytest.fixture
def faults(aws_sandbox, monkeypatch):
    """The fault endpoint of the session's local AWS; quick waits; every fault cleared after."""
    from botocore.retries import standard

    from eks_hub_sandbox.aws.faults import FaultClient

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    monkeypatch.setattr(consistency, "AFTER_CREATE", consistency.SettlePolicy(attempts=4, base_delay=0.01, factor=1))
    client = FaultClient(aws_sandbox)
    client.clear()
    yield client
    client.clear()


def _hits(faults, fault: dict) -> int:
    return faults.get(fault["id"])["hits"]


@pytest.fixture
def certificate_params(state_dir, request):
    name = "retry-" + request.node.name.replace("_", "-").replace("cognito", "idp")[5:25].strip("-")
    return resolve(target="sandbox", deployment=name, region=REGION, auth="cognito", domain="hub.example.com")


@pytest.fixture
def material(tmp_path):
    return tls.generate_self_signed("hub.example.com", tmp_path, wildcard_domain="*.example.com")


def test_acm_import_survives_throttling_and_not_found_right_after(faults, certificate_params, material):
    throttled = faults.inject("acm", "ImportCertificate", "ThrottlingException", count=2, region=REGION)
    not_yet = faults.inject("acm", "DescribeCertificate", "ResourceNotFoundException", count=2,
                            after="ImportCertificate", region=REGION)
    arn = acm.import_certificate(certificate_params, material)
    assert (_hits(faults, throttled), _hits(faults, not_yet)) == (2, 2)  # botocore retried; the runbook read again
    described = {row["field"]: row["value"] for row in acm.describe(certificate_params, arn)}
    assert described["status"] == "ISSUED" and described["domain"] == "hub.example.com"
    assert acm.find_imported(certificate_params) == [arn]  # one certificate: a throttled import did not run twice
    assert acm.delete(certificate_params) == [arn]


def test_a_certificate_that_never_becomes_readable_is_a_clear_error(faults, certificate_params, material):
    never = faults.inject("acm", "DescribeCertificate", "ResourceNotFoundException", count=50,
                          after="ImportCertificate", region=REGION)
    with pytest.raises(RunbookError) as error:
        acm.import_certificate(certificate_params, material)
    message = str(error.value)
    assert "ACM DescribeCertificate" in message and "ResourceNotFoundException" in message and "Fix:" in message
    assert isinstance(error.value, ClientError)  # code that handles a ClientError still can
    assert _hits(faults, never) == consistency.AFTER_CREATE.attempts
    faults.clear()
    assert len(acm.delete(certificate_params)) == 1


def test_cognito_sets_the_password_of_a_user_it_just_created(faults, certificate_params):
    idp = session.client("cognito-idp", "sandbox", REGION)
    pool = idp.create_user_pool(PoolName=f"{certificate_params.deployment}-pool")["UserPool"]["Id"]
    not_yet = faults.inject("cognito-idp", "AdminSetUserPassword", "UserNotFoundException", count=2,
                            after="AdminCreateUser", region=REGION)
    try:
        passwords = cognito.ensure_users(certificate_params, pool, ["user-1"])
        assert list(passwords) == ["user-1@example.com"]
        assert _hits(faults, not_yet) == 2
        assert idp.admin_get_user(UserPoolId=pool, Username="user-1@example.com")["UserStatus"] == "CONFIRMED"
    finally:
        idp.delete_user_pool(UserPoolId=pool)


def test_the_leftovers_scan_survives_throttling_in_every_protocol(faults):
    injected = [
        faults.inject("ec2", "DescribeVpcs", "RequestLimitExceeded", status=503, count=2, region=REGION),
        faults.inject("iam", "ListRoles", "Throttling", count=2, region=REGION),
        faults.inject("elbv2", "DescribeLoadBalancers", "Throttling", count=1, region=REGION),
        faults.inject("acm", "ListCertificates", "ThrottlingException", count=1, region=REGION),
        faults.inject("eks", "ListClusters", "ServiceUnavailableException", status=503, count=1, region=REGION),
        faults.inject("logs", "DescribeLogGroups", "ThrottlingException", count=1, region=REGION),
    ]
    assert leftovers.scan("retry-scan-nothing", "sandbox", REGION) == []
    assert [_hits(faults, fault) for fault in injected] == [fault["count"] for fault in injected]


def test_identity_and_quotas_survive_service_unavailable(faults):
    sts = faults.inject("sts", "GetCallerIdentity", "ServiceUnavailable", status=503, count=2, region=REGION)
    zones = faults.inject("ec2", "DescribeAvailabilityZones", "ServiceUnavailable", status=503, count=2, region=REGION)
    rows = identity.rows(resolve(target="sandbox", region=REGION))
    assert [row["status"] for row in rows[:2]] == ["pass", "pass"]
    assert (_hits(faults, sts), _hits(faults, zones)) == (2, 2)

    # Service Quotas only informs: its lighter policy (3 attempts, not 9) gives up quickly and falls back.
    unavailable = faults.inject("service-quotas", "GetServiceQuota", "ServiceUnavailable", status=503, count=100,
                                region=REGION)
    rows = quotas.rows(resolve(target="sandbox", region=REGION))
    assert rows and all("documented AWS default" in row["source"] for row in rows)
    assert _hits(faults, unavailable) == 3 * len(rows)


def test_throttling_past_the_retry_budget_is_a_runbook_error_naming_the_operation(faults):
    fault = faults.inject("ec2", "DescribeAvailabilityZones", "RequestLimitExceeded", status=503, count=100,
                          region=REGION)
    with pytest.raises(RunbookError) as error:
        identity.availability_zones("sandbox", REGION)
    message = str(error.value)
    assert message.startswith(f"AWS EC2 DescribeAvailabilityZones still failed after {session.MAX_ATTEMPTS} attempts: "
                              "RequestLimitExceeded (HTTP 503)")
    assert "Fix: wait a minute" in message
    assert _hits(faults, fault) == session.MAX_ATTEMPTS

    faults.inject("sts", "GetCallerIdentity", "Throttling", count=100, region=REGION)
    with pytest.raises(RunbookError, match="AWS STS GetCallerIdentity still failed after .* Throttling") as error:
        identity.caller_identity("sandbox", REGION)
    assert "credentials" not in str(error.value)  # not mistaken for rejected credentials


def test_a_not_found_is_not_retried_when_nothing_was_just_created(faults):
    fault = faults.inject("eks", "DescribeCluster", "ResourceNotFoundException", count=10, region=REGION)
    with pytest.raises(RunbookError, match="deploy it first"):
        eks.describe("retry-no-such-cluster", "sandbox", REGION)
    assert _hits(faults, fault) == 1


def test_eks_describe_after_terraform_created_the_cluster_reads_again(faults):
    ec2, iam = session.client("ec2", "sandbox", REGION), session.client("iam", "sandbox", REGION)
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    role = iam.create_role(RoleName="retry-eks-cluster", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client = session.client("eks", "sandbox", REGION)
    client.create_cluster(name="retry-eks", roleArn=role, resourcesVpcConfig={"subnetIds": [subnet]})
    try:
        fault = faults.inject("eks", "DescribeCluster", "ResourceNotFoundException", count=2, region=REGION)
        described = eks.describe("retry-eks", "sandbox", REGION, just_created=True)
        assert described["name"] == "retry-eks" and described["endpoint"]
        assert _hits(faults, fault) == 2
    finally:
        faults.clear()
        client.delete_cluster(name="retry-eks")
        iam.delete_role(RoleName="retry-eks-cluster")
        ec2.delete_subnet(SubnetId=subnet)
        ec2.delete_vpc(VpcId=vpc)

"""Fault injection in the sandbox's local AWS: errors in each protocol, as botocore classifies AWS's own.

Faults are scoped to a region no other test uses, so background callers of the shared local
AWS never consume them; each test clears what it injected. botocore's backoff is set to zero
here (what is tested is which errors it retries, not how long it waits).
"""

from __future__ import annotations

import io
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from eks_hub_sandbox.aws import faults
from eks_hub_sandbox.aws.faults import FaultClient, FaultError, FaultInjector

pytestmark = pytest.mark.sandbox

REGION = "eu-central-1"  # only these tests use it
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
RETRIES = Config(retries={"total_max_attempts": 3, "mode": "standard"})


@pytest.fixture
def admin(aws_sandbox):
    client = FaultClient(aws_sandbox)
    client.clear()
    yield client
    client.clear()


@pytest.fixture
def no_backoff(monkeypatch):
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)


def _client(endpoint: str, service: str, config: Config, region: str = REGION):
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
    return session.client(service, endpoint_url=endpoint, config=config)


# service, operation, how to call it, error code, HTTP status: one per protocol the product talks
CASES = [
    ("ec2", "DescribeVpcs", lambda c: c.describe_vpcs(), "RequestLimitExceeded", 503),  # ec2
    ("iam", "ListRoles", lambda c: c.list_roles(), "Throttling", 400),  # query
    ("elbv2", "DescribeLoadBalancers", lambda c: c.describe_load_balancers(), "Throttling", 400),  # query
    ("sts", "GetCallerIdentity", lambda c: c.get_caller_identity(), "Throttling", 400),  # query
    ("acm", "ListCertificates", lambda c: c.list_certificates(), "ThrottlingException", 400),  # json
    ("cognito-idp", "ListUserPools", lambda c: c.list_user_pools(MaxResults=5), "TooManyRequestsException", 429),
    ("eks", "ListClusters", lambda c: c.list_clusters(), "ServiceUnavailableException", 503),  # rest-json
    ("efs", "DescribeFileSystems", lambda c: c.describe_file_systems(), "ThrottlingException", 429),  # rest-json
    ("ec2", "DescribeSubnets", lambda c: c.describe_subnets(), "ServiceUnavailable", 503),
]
IDS = [f"{service}-{operation}-{code}" for service, operation, _, code, _ in CASES]


@pytest.mark.parametrize(("service", "operation", "call", "code", "status"), CASES, ids=IDS)
def test_the_error_reaches_botocore_with_its_code_and_status_and_is_retried(admin, aws_sandbox, no_backoff, service,
                                                                            operation, call, code, status):
    fault = admin.inject(service, operation, code, status=status, count=1, region=REGION)
    with pytest.raises(ClientError) as error:
        call(_client(aws_sandbox, service, NO_RETRIES))
    assert error.value.response["Error"]["Code"] == code
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert admin.get(fault["id"])["remaining"] == 0

    # The same error twice: botocore's standard mode retries it (throttling or transient) and succeeds.
    fault = admin.inject(service, operation, code, status=status, count=2, region=REGION)
    reply = call(_client(aws_sandbox, service, RETRIES))
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert reply["ResponseMetadata"]["RetryAttempts"] == 2
    assert admin.get(fault["id"])["hits"] == 2


def test_a_not_found_is_not_retried_by_botocore(admin, aws_sandbox, no_backoff):
    fault = admin.inject("acm", "ListCertificates", "ResourceNotFoundException", count=3, region=REGION)
    with pytest.raises(ClientError) as error:
        _client(aws_sandbox, "acm", RETRIES).list_certificates()
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert error.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert admin.get(fault["id"])["hits"] == 1


def test_a_fault_after_a_create_arms_only_when_the_create_succeeds(admin, aws_sandbox):
    iam = _client(aws_sandbox, "iam", NO_RETRIES)
    old, new = f"faults-old-{uuid.uuid4().hex[:8]}", f"faults-new-{uuid.uuid4().hex[:8]}"
    iam.create_role(RoleName=old, AssumeRolePolicyDocument="{}")
    fault = admin.inject("iam", "GetRole", "NoSuchEntity", status=404, after="CreateRole", region=REGION)
    assert fault["armed"] is False
    assert iam.get_role(RoleName=old)["Role"]["RoleName"] == old  # not armed yet
    with pytest.raises(ClientError, match="EntityAlreadyExists"):
        iam.create_role(RoleName=old, AssumeRolePolicyDocument="{}")  # a failed create does not arm it
    assert admin.get(fault["id"])["armed"] is False
    iam.create_role(RoleName=new, AssumeRolePolicyDocument="{}")
    with pytest.raises(ClientError) as error:
        iam.get_role(RoleName=new)  # right after the create: not found yet, as on AWS
    assert error.value.response["Error"]["Code"] == "NoSuchEntity"
    assert iam.get_role(RoleName=new)["Role"]["RoleName"] == new
    assert admin.get(fault["id"]) | {"hits": 1, "armed": True, "remaining": 0} == admin.get(fault["id"])
    for name in (old, new):
        iam.delete_role(RoleName=name)


def test_count_region_and_operation_limit_what_fails(admin, aws_sandbox):
    fault = admin.inject("ec2", "DescribeVpcs", "RequestLimitExceeded", status=503, count=2, region=REGION)
    elsewhere = _client(aws_sandbox, "ec2", NO_RETRIES, region="us-east-2")
    here = _client(aws_sandbox, "ec2", NO_RETRIES)
    elsewhere.describe_vpcs()  # another region
    here.describe_subnets()  # another operation
    for _ in range(2):
        with pytest.raises(ClientError, match="RequestLimitExceeded"):
            here.describe_vpcs()
    here.describe_vpcs()  # the count is spent
    assert admin.get(fault["id"])["hits"] == 2


def test_rest_calls_are_told_apart_by_method_and_path(admin, aws_sandbox):
    admin.inject("eks", "DescribeCluster", "ServiceUnavailableException", status=503, region=REGION)
    eks = _client(aws_sandbox, "eks", NO_RETRIES)
    assert isinstance(eks.list_clusters()["clusters"], list)  # GET /clusters is ListClusters
    with pytest.raises(ClientError) as error:
        eks.describe_cluster(name="no-such-cluster")
    assert error.value.response["Error"]["Code"] == "ServiceUnavailableException"
    with pytest.raises(ClientError) as error:
        eks.describe_cluster(name="no-such-cluster")  # moto's own answer again
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_an_arn_in_a_rest_path_is_one_label():
    injector = FaultInjector(lambda environ, start_response: [])
    arn = "arn%3Aaws%3Aeks%3Aus-west-2%3A123456789012%3Acluster%2Fdemo"
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": f"/tags/{arn}", "PATH_INFO": "/tags/arn:aws:eks:x/demo"}
    assert injector._operation(environ, "eks") == "TagResource"
    assert injector._operation({**environ, "REQUEST_METHOD": "GET"}, "eks") == "ListTagsForResource"


@pytest.mark.parametrize(("document", "problem"), [
    ({"service": "nope", "operation": "X", "code": "Throttling"}, "not a boto3 service name"),
    ({"service": "ec2", "operation": "DescribeVpc", "code": "Throttling"}, "not an operation of ec2"),
    ({"service": "ec2", "operation": "DescribeVpcs", "code": "Throttling", "after": "MakeVpc"}, "'after'"),
    ({"service": "ec2", "operation": "DescribeVpcs", "code": "Throttling", "status": 200}, "status"),
    ({"service": "ec2", "operation": "DescribeVpcs", "code": "Throttling", "count": 0}, "count"),
    ({"service": "ec2", "operation": "DescribeVpcs"}, "'code' is required"),
    ({"service": "ec2", "operation": "DescribeVpcs", "code": "X", "when": "now"}, "unknown field"),
])
def test_a_bad_fault_is_refused_naming_the_field(admin, document, problem):
    with pytest.raises(FaultError, match=problem) as error:
        admin._send("POST", "", document)
    assert "400" in str(error.value)
    assert admin.list() == []


def test_faults_are_listed_and_removed_one_by_one(admin):
    first = admin.inject("ec2", "DescribeVpcs", "Throttling", region=REGION)
    second = admin.inject("iam", "ListRoles", "Throttling", region=REGION)
    assert [f["id"] for f in admin.list()] == [first["id"], second["id"]]
    assert admin.clear(first["id"]) == 1
    assert [f["id"] for f in admin.list()] == [second["id"]]
    with pytest.raises(FaultError, match="404"):
        admin.clear(first["id"])
    with pytest.raises(FaultError, match="405"):
        admin._send("PUT")


def test_the_admin_endpoint_answers_loopback_clients_only():
    replies = []
    injector = FaultInjector(lambda environ, start_response: [])
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": faults.ADMIN_PATH, "REMOTE_ADDR": "10.1.2.3",
               "CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"{}")}
    body = b"".join(injector(environ, lambda status, headers: replies.append(status)))
    assert replies == ["403 Forbidden"] and b"loopback" in body
    assert injector.faults() == []

"""aws/identity.py: who the runbook acts as (STS), the region's availability zones and where the
profiles' instance types are offered, as check rows for 00_prerequisites.

Unit tests stub real boto3 clients (botocore's Stubber checks every request against the
service's API); the sandbox test asks the local AWS.
"""

from __future__ import annotations

import os

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber

from eks_hub_runbook.aws import identity
from eks_hub_runbook.params import resolve

ACCOUNT = "123456789012"
ZONE_FILTERS = [{"Name": "state", "Values": ["available"]}, {"Name": "zone-type", "Values": ["availability-zone"]}]


class Clients:
    """``identity.client`` answered by stubbed boto3 clients; records (service, target, region)."""

    def __init__(self):
        self.stubs: dict[str, Stubber] = {}
        self.clients: dict[str, object] = {}
        self.asked: list[tuple[str, str, str]] = []

    def __call__(self, service, target, region, config=None):
        self.asked.append((service, target, region))
        return self.clients[service]

    def stub(self, service: str, region: str = "eu-west-1") -> Stubber:
        if service not in self.stubs:
            made = boto3.client(service, region_name=region, aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")
            self.clients[service], self.stubs[service] = made, Stubber(made)
            self.stubs[service].activate()
        return self.stubs[service]


@pytest.fixture
def clients(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith("AWS_")]:  # no profile or endpoint override reaches the stubs
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    fake = Clients()
    monkeypatch.setattr(identity, "client", fake)
    yield fake
    for stubber in fake.stubs.values():
        stubber.assert_no_pending_responses()


def _caller(stubber, arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice"):
    stubber.add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": arn, "UserId": "AROAEXAMPLE:alice"}, {})


def _zones(stubber, names):
    stubber.add_response("describe_availability_zones", {"AvailabilityZones": [
        {"ZoneName": name, "State": "available", "ZoneType": "availability-zone"} for name in names]},
        {"Filters": ZONE_FILTERS})


def test_caller_identity_and_its_principal(clients):
    _caller(clients.stub("sts"))
    who = identity.caller_identity("aws", "eu-west-1")
    assert who == identity.CallerIdentity(ACCOUNT, f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice", "AROAEXAMPLE:alice")
    assert who.principal == "assumed-role/Admin/alice"
    assert clients.asked == [("sts", "aws", "eu-west-1")]
    assert identity.CallerIdentity(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/ops/bob", "AIDA").principal == "user/ops/bob"
    assert identity.CallerIdentity(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", "1").principal == "root"


def test_missing_rejected_or_unreachable_credentials_raise_identity_error(clients):
    stubber = clients.stub("sts")
    stubber.add_client_error("get_caller_identity", "InvalidClientTokenId",
                             "The security token included in the request is invalid.", 403)
    with pytest.raises(identity.IdentityError, match="^AWS rejected the credentials: The security token included"):
        identity.caller_identity("aws", "eu-west-1")

    class Failing:
        def __init__(self, error):
            self.error = error

        def get_caller_identity(self):
            raise self.error

    clients.clients["sts"] = Failing(NoCredentialsError())
    with pytest.raises(identity.IdentityError, match="no AWS credentials found: run `aws configure`.*-p target sandbox"):
        identity.caller_identity("aws", "eu-west-1")
    clients.clients["sts"] = Failing(EndpointConnectionError(endpoint_url="https://sts.eu-west-1.amazonaws.com/"))
    with pytest.raises(identity.IdentityError, match="could not reach AWS STS in eu-west-1"):
        identity.caller_identity("aws", "eu-west-1")


def test_availability_zones_are_the_available_ones_sorted(clients):
    _zones(clients.stub("ec2"), ["eu-west-1c", "eu-west-1a", "eu-west-1b"])
    assert identity.availability_zones("aws", "eu-west-1") == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]


def test_instance_type_zones_read_every_page(clients):
    stubber = clients.stub("ec2")
    expected = {"LocationType": "availability-zone", "Filters": [{"Name": "instance-type", "Values": ["g5.2xlarge", "trn1.32xlarge"]}]}
    stubber.add_response("describe_instance_type_offerings", {"NextToken": "page-2", "InstanceTypeOfferings": [
        {"InstanceType": "g5.2xlarge", "LocationType": "availability-zone", "Location": "eu-west-1b"}]}, expected)
    stubber.add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": [
        {"InstanceType": "g5.2xlarge", "LocationType": "availability-zone", "Location": "eu-west-1a"},
        {"InstanceType": "g5.2xlarge", "LocationType": "availability-zone", "Location": "eu-west-1b"}]},
        {**expected, "NextToken": "page-2"})
    assert identity.instance_type_zones("aws", "eu-west-1", ["g5.2xlarge", "trn1.32xlarge"]) == {
        "g5.2xlarge": ["eu-west-1a", "eu-west-1b"], "trn1.32xlarge": []}
    assert identity.instance_type_zones("aws", "eu-west-1", []) == {}
    assert [service for service, *_ in clients.asked] == ["ec2"]  # no call for an empty list


def test_rows_pass_warn_and_fail(clients):
    params = resolve(target="aws", region="eu-west-1")
    _caller(clients.stub("sts"))
    ec2 = clients.stub("ec2")
    _zones(ec2, ["eu-west-1b", "eu-west-1a"])
    ec2.add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": [
        {"InstanceType": "g5.2xlarge", "LocationType": "availability-zone", "Location": "eu-west-1a"}]},
        {"LocationType": "availability-zone", "Filters": [{"Name": "instance-type", "Values": ["g5.2xlarge", "inf2.xlarge"]}]})
    rows = identity.rows(params, ["g5.2xlarge", "inf2.xlarge"])
    assert rows == [
        {"check": "AWS credentials", "status": "pass", "detail": f"account {ACCOUNT}, assumed-role/Admin/alice"},
        {"check": "availability zones in eu-west-1", "status": "pass", "detail": "eu-west-1a, eu-west-1b"},
        {"check": "g5.2xlarge offered", "status": "pass", "detail": "eu-west-1a"},
        {"check": "inf2.xlarge offered", "status": "warn",
         "detail": "not offered in eu-west-1: profiles needing it cannot start"},
    ]
    assert all("AKIA" not in str(row) for row in rows)  # the access key is never shown

    _caller(clients.stub("sts"))
    _zones(ec2, ["eu-west-1a"])
    assert identity.rows(params)[1] == {"check": "availability zones in eu-west-1", "status": "fail", "detail": "eu-west-1a"}


def test_rows_stop_at_missing_credentials(clients):
    clients.stub("ec2")  # nothing may be asked of EC2

    class NoCredentials:
        def get_caller_identity(self):
            raise NoCredentialsError()

    clients.clients["sts"] = NoCredentials()
    rows = identity.rows(resolve(target="aws"), ["g5.2xlarge"])
    assert len(rows) == 1 and rows[0]["check"] == "AWS credentials" and rows[0]["status"] == "fail"
    assert "aws configure" in rows[0]["detail"]


@pytest.mark.sandbox
def test_rows_on_the_sandbox(aws_sandbox):
    rows = {r["check"]: r for r in identity.rows(resolve(target="sandbox"), ["m5.xlarge"])}
    assert rows["AWS credentials"]["status"] == "pass" and f"account {ACCOUNT}" in rows["AWS credentials"]["detail"]
    zones = rows["availability zones in us-west-2"]
    assert zones["status"] == "pass" and zones["detail"].startswith("us-west-2a, us-west-2b")
    assert rows["m5.xlarge offered"]["status"] == "pass" and "us-west-2a" in rows["m5.xlarge offered"]["detail"]

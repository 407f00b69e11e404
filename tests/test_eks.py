"""aws/eks.py: cluster facts from DescribeCluster, EKS bearer tokens (``aws eks get-token``), the
kubeconfig with its exec plugin, and the plugin's command line.

Unit tests run on the ``aws`` target with botocore stubs and made-up credentials (a token is a
presigned URL: signing needs no network). The sandbox test builds a kubeconfig for an EKS
cluster of a private local AWS and uses it, through the python client and through kubectl.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from eks_hub_runbook.aws import eks
from eks_hub_runbook.params import resolve

FAKE_CREDENTIALS = {"aws_access_key_id": "AKIAEXAMPLEKEY123456", "aws_secret_access_key": "example/secret/key"}
CLUSTER_INFO = {"name": "hub", "arn": "arn:aws:eks:us-west-2:123456789012:cluster/hub",
                "endpoint": "https://ABCDEF.gr7.us-west-2.eks.amazonaws.com",
                "certificate_authority": base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode(),
                "version": "1.32", "status": "ACTIVE"}


class AwsClients:
    """``session.client`` as eks.py calls it, answered by real boto3 clients with made-up credentials;
    ``stub(service)`` puts a botocore Stubber on one. Calls are recorded as (service, target, region)."""

    def __init__(self):
        self.made: dict[str, object] = {}
        self.asked: list[tuple[str, str, str]] = []

    def client(self, service, target, region, config=None):
        self.asked.append((service, target, region))
        return self._make(service, region)

    def _make(self, service, region):
        if service not in self.made:
            self.made[service] = boto3.client(service, region_name=region, **FAKE_CREDENTIALS)
        return self.made[service]

    def stub(self, service: str, region: str = "us-west-2") -> Stubber:
        stubber = Stubber(self._make(service, region))
        stubber.activate()
        return stubber


@pytest.fixture
def aws_clients(monkeypatch, tmp_path):
    _plain_aws_environment(monkeypatch, tmp_path)
    clients = AwsClients()
    monkeypatch.setattr(eks.session, "client", clients.client)
    return clients


def _plain_aws_environment(monkeypatch, tmp_path):
    """No ambient AWS settings (profile, config files, endpoint overrides) reach the clients made here."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


def _decode(token: str) -> str:
    body = token.removeprefix(eks.TOKEN_PREFIX)
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


# --------------------------------------------------------------------------- tokens


def test_token_is_a_presigned_get_caller_identity_url_bound_to_the_cluster(aws_clients):
    token, expires = eks.get_token("team-hub", "aws", "eu-west-1")
    assert token.startswith("k8s-aws-v1.") and "=" not in token  # base64url, unpadded (as aws eks get-token)
    url = urlparse(_decode(token))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.scheme == "https" and url.netloc == "sts.eu-west-1.amazonaws.com"
    assert query["Action"] == "GetCallerIdentity" and query["Version"] == "2011-06-15"
    assert query["X-Amz-Expires"] == str(eks.PRESIGN_EXPIRES) == "60"
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"].split(";")  # the signature covers the cluster name
    assert query["X-Amz-Credential"].startswith("AKIAEXAMPLEKEY123456/") and "/eu-west-1/sts/" in query["X-Amz-Credential"]
    assert aws_clients.asked == [("sts", "aws", "eu-west-1")]
    assert timedelta(minutes=13) < expires - datetime.now(timezone.utc) <= timedelta(minutes=14)


def test_tokens_for_two_clusters_differ_in_their_signature(aws_clients):
    first = parse_qs(urlparse(_decode(eks.get_token("hub-a", "aws", "us-west-2")[0])).query)
    second = parse_qs(urlparse(_decode(eks.get_token("hub-b", "aws", "us-west-2")[0])).query)
    assert first["X-Amz-Signature"] != second["X-Amz-Signature"]


def test_exec_credential_is_what_a_kubeconfig_exec_plugin_prints(monkeypatch):
    expires = datetime(2026, 3, 1, 12, 30, 5, tzinfo=timezone.utc)
    monkeypatch.setattr(eks, "get_token", lambda cluster, target, region: (f"k8s-aws-v1.{cluster}-{region}", expires))
    assert eks.exec_credential("hub", "aws", "us-east-1") == {
        "kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1", "spec": {},
        "status": {"expirationTimestamp": "2026-03-01T12:30:05Z", "token": "k8s-aws-v1.hub-us-east-1"}}


def test_the_plugin_command_prints_an_exec_credential(monkeypatch, capsys):
    monkeypatch.setattr(eks, "exec_credential", lambda cluster, target, region: {"asked": [cluster, target, region]})
    assert eks._main(["token", "--cluster", "hub", "--target", "aws", "--region", "us-west-2"]) == 0
    assert json.loads(capsys.readouterr().out) == {"asked": ["hub", "aws", "us-west-2"]}
    with pytest.raises(SystemExit) as exit_:
        eks._main(["token", "--cluster", "hub", "--target", "mars", "--region", "us-west-2"])
    assert exit_.value.code == 2


def test_the_plugin_runs_as_kubectl_runs_it(tmp_path):
    """The exact command line a kubeconfig names, in a process of its own (only credentials from the environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=FAKE_CREDENTIALS["aws_access_key_id"],
               AWS_SECRET_ACCESS_KEY=FAKE_CREDENTIALS["aws_secret_access_key"],
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    result = subprocess.run([sys.executable, "-m", "eks_hub_runbook.aws.eks", "token", "--cluster", "hub",
                             "--target", "aws", "--region", "us-west-2"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    credential = json.loads(result.stdout)
    assert credential["kind"] == "ExecCredential" and credential["status"]["token"].startswith("k8s-aws-v1.")
    assert "sts.us-west-2.amazonaws.com" in _decode(credential["status"]["token"])


# --------------------------------------------------------------------------- describe


def test_describe_returns_the_clusters_endpoint_facts(aws_clients):
    stubber = aws_clients.stub("eks")
    stubber.add_response("describe_cluster", {"cluster": {
        "name": "hub", "arn": CLUSTER_INFO["arn"], "endpoint": CLUSTER_INFO["endpoint"], "version": "1.32",
        "status": "ACTIVE", "certificateAuthority": {"data": CLUSTER_INFO["certificate_authority"]}}}, {"name": "hub"})
    assert eks.describe("hub", "aws", "us-west-2") == CLUSTER_INFO
    stubber.assert_no_pending_responses()


def test_describe_says_what_to_do_when_the_cluster_cannot_be_used(aws_clients):
    from botocore.exceptions import EndpointConnectionError

    stubber = aws_clients.stub("eks")
    stubber.add_client_error("describe_cluster", "ResourceNotFoundException", "No cluster found for name: hub.")
    with pytest.raises(eks.ClusterAccessError, match=r"'hub' in us-west-2 \(aws\): No cluster found for name: hub\.+ "
                                                     r"Fix: deploy it first \(02_deploy\)"):
        eks.describe("hub", "aws", "us-west-2")
    stubber.add_response("describe_cluster", {"cluster": {"name": "hub", "status": "CREATING"}})
    with pytest.raises(eks.ClusterAccessError, match="has no endpoint yet \\(status CREATING\\).*wait until it is ACTIVE"):
        eks.describe("hub", "aws", "us-west-2")

    class Unreachable:
        def describe_cluster(self, name):
            raise EndpointConnectionError(endpoint_url="https://eks.us-west-2.amazonaws.com/clusters/hub")

    aws_clients.made["eks"] = Unreachable()
    with pytest.raises(eks.ClusterAccessError, match="cannot reach EKS in us-west-2 \\(aws\\).*check your credentials"):
        eks.describe("hub", "aws", "us-west-2")


def test_describe_error_has_no_doubled_full_stop(aws_clients):
    aws_clients.stub("eks").add_client_error("describe_cluster", "ResourceNotFoundException", "No cluster found for name: hub.")
    with pytest.raises(eks.ClusterAccessError) as error:
        eks.describe("hub", "aws", "us-west-2")
    assert ".." not in str(error.value)


# --------------------------------------------------------------------------- kubeconfig


def test_kubeconfig_names_the_cluster_by_arn_and_refreshes_tokens_with_the_exec_plugin(monkeypatch):
    monkeypatch.setattr(eks, "describe", lambda cluster, target, region, **_: CLUSTER_INFO)
    config = eks.build_kubeconfig("hub", "aws", "us-west-2")
    arn = CLUSTER_INFO["arn"]
    assert config["current-context"] == arn
    assert config["clusters"] == [{"name": arn, "cluster": {"server": CLUSTER_INFO["endpoint"],
                                                            "certificate-authority-data": CLUSTER_INFO["certificate_authority"]}}]
    assert config["contexts"] == [{"name": arn, "context": {"cluster": arn, "user": arn}}]
    plugin = config["users"][0]["user"]["exec"]
    assert plugin["command"] == sys.executable and plugin["apiVersion"] == eks.EXEC_API_VERSION
    assert plugin["args"] == ["-m", "eks_hub_runbook.aws.eks", "token", "--cluster", "hub", "--target", "aws",
                              "--region", "us-west-2"]
    assert plugin["interactiveMode"] == "Never"


def test_kubeconfig_with_an_embedded_token_and_without_an_arn(monkeypatch):
    monkeypatch.setattr(eks, "describe", lambda cluster, target, region, **_: {**CLUSTER_INFO, "arn": ""})
    monkeypatch.setattr(eks, "get_token", lambda cluster, target, region: ("k8s-aws-v1.abc", datetime.now(timezone.utc)))
    config = eks.build_kubeconfig("hub", "aws", "us-west-2", embed_token=True)
    assert config["users"] == [{"name": "aws:us-west-2:hub", "user": {"token": "k8s-aws-v1.abc"}}]
    assert config["current-context"] == "aws:us-west-2:hub"


def test_save_kubeconfig_writes_yaml_only_its_owner_can_read(tmp_path):
    path = eks.save_kubeconfig({"apiVersion": "v1", "kind": "Config", "users": [{"name": "u", "user": {"token": "t"}}]},
                               tmp_path / "new" / "folder" / "kubeconfig")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text())["users"][0]["user"]["token"] == "t"
    assert path.read_text().startswith("apiVersion: v1\nkind: Config\n")  # key order kept
    eks.save_kubeconfig({"kind": "Config"}, path)
    assert yaml.safe_load(path.read_text()) == {"kind": "Config"}  # replaced, not appended


def test_save_kubeconfig_narrows_an_existing_files_mode(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("old")
    path.chmod(0o644)
    eks.save_kubeconfig({"users": [{"name": "u", "user": {"token": "k8s-aws-v1.secret"}}]}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_kubeconfig_goes_to_the_deployments_state_folder(monkeypatch):
    from eks_hub_runbook.paths import deployment_dir

    asked = []
    monkeypatch.setattr(eks, "build_kubeconfig",
                        lambda *args, **kwargs: asked.append((args, kwargs)) or {"kind": "Config", "asked": list(args)})
    path = eks.write_kubeconfig(resolve(target="aws", deployment="kubeconfig-unit", region="eu-central-1"))
    assert path == deployment_dir("kubeconfig-unit") / "kubeconfig"
    assert asked == [(("kubeconfig-unit", "aws", "eu-central-1"), {"just_created": False})]
    assert yaml.safe_load(path.read_text())["asked"] == ["kubeconfig-unit", "aws", "eu-central-1"]


# --------------------------------------------------------------------------- against the sandbox

SANDBOX_CLUSTER = "eks-kubeconfig-test"


@pytest.fixture(scope="module")
def sandbox_eks_cluster(private_aws_sandbox):
    """An EKS cluster in a local AWS of the module's own, with the cluster emulator it points at
    (both in the module's state folder, so the session's cluster never follows this cluster)."""
    import eks_hub_sandbox as sandbox
    from eks_hub_runbook.aws import session
    from eks_hub_sandbox import services

    sandbox.up(only=("kube",))
    try:
        ec2, iam = session.client("ec2", "sandbox", "us-west-2"), session.client("iam", "sandbox", "us-west-2")
        vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.7.{i}.0/24", AvailabilityZone=f"us-west-2{z}")["Subnet"]["SubnetId"]
                   for i, z in enumerate("ab")]
        role = iam.create_role(RoleName=f"{SANDBOX_CLUSTER}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        session.client("eks", "sandbox", "us-west-2").create_cluster(
            name=SANDBOX_CLUSTER, roleArn=role, version="1.32", resourcesVpcConfig={"subnetIds": subnets})
        yield {"kube_url": sandbox.kube_url(), "ca": sandbox.kube_ca_path()}
    finally:
        services.stop("kube")


@pytest.mark.sandbox
@pytest.mark.slow
def test_kubeconfig_for_a_sandbox_eks_cluster_reaches_its_api_server(sandbox_eks_cluster, tmp_path):
    from kubernetes import client

    from eks_hub_runbook import kube

    config = eks.build_kubeconfig(SANDBOX_CLUSTER, "sandbox", "us-west-2")
    assert config["clusters"][0]["cluster"]["server"] == sandbox_eks_cluster["kube_url"]
    assert base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]) == \
        sandbox_eks_cluster["ca"].read_bytes()
    assert config["current-context"].startswith("arn:aws:eks:us-west-2:") and config["current-context"].endswith(
        f":cluster/{SANDBOX_CLUSTER}")
    names = {n.metadata.name for n in client.CoreV1Api(kube.load_client(config)).list_namespace().items}
    assert "kube-system" in names  # the exec plugin's token was accepted

    embedded = eks.build_kubeconfig(SANDBOX_CLUSTER, "sandbox", "us-west-2", embed_token=True)
    assert embedded["users"][0]["user"]["token"].startswith("k8s-aws-v1.")
    assert isinstance(kube.nodes(kube.load_client(embedded)), list)

    path = eks.write_kubeconfig(resolve(target="sandbox", deployment=SANDBOX_CLUSTER))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    result = subprocess.run(["kubectl", "--kubeconfig", str(path), "get", "namespaces", "-o", "name"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr  # kubectl itself runs the plugin
    assert "namespace/kube-system" in result.stdout.split()


@pytest.mark.sandbox
@pytest.mark.slow
def test_describe_a_cluster_the_sandbox_does_not_have(sandbox_eks_cluster):
    with pytest.raises(eks.ClusterAccessError, match="EKS cluster 'no-such-hub' in us-west-2 \\(sandbox\\): .*deploy it first"):
        eks.describe("no-such-hub", "sandbox", "us-west-2")
    assert eks.describe(SANDBOX_CLUSTER, "sandbox", "us-west-2")["status"] == "ACTIVE"

"""Bad inputs through papermill: each run stops in the notebook's validation cell with a message
naming the parameter and the fix, and nothing is created in the (local) AWS account."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import papermill as pm
import pytest

from eks_hub_runbook.aws import acm
from eks_hub_runbook.aws.session import client

RUNBOOKS = Path(__file__).resolve().parents[1] / "runbooks"
pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

COGNITO = {"auth": "cognito", "domain": "hub.example.com"}


@pytest.fixture(scope="module")
def pems(tmp_path_factory):
    """PEM files for the certificate cases: a good pair, a foreign key, an expired one, another domain."""
    root = tmp_path_factory.mktemp("pems")
    good = acm.generate_self_signed("hub.example.com", root / "good")
    other = acm.generate_self_signed("hub.example.com", root / "other")
    expired = acm.generate_self_signed("hub.example.com", root / "expired", validity_days=1,
                                       now=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    elsewhere = acm.generate_self_signed("hub.example.org", root / "elsewhere")
    return {
        "mismatch": {"certificate_file": str(good.certificate_path), "private_key_file": str(other.key_path)},
        "expired": {"certificate_file": str(expired.certificate_path), "private_key_file": str(expired.key_path)},
        "elsewhere": {"certificate_file": str(elsewhere.certificate_path), "private_key_file": str(elsewhere.key_path)},
        "half": {"certificate_file": str(good.certificate_path)},
        "missing": {"certificate_file": str(root / "nope.pem"), "private_key_file": str(good.key_path)},
    }


CASES = [
    # id, notebook, parameters (or a key into pems, merged over cognito), expected message
    ("wrong-auth", "00_prerequisites", {"auth": "github"}, "parameter 'auth': 'github' is not one of dummy, cognito, oauth"),
    ("cognito-without-domain", "00_prerequisites", {"auth": "cognito"}, "parameter 'domain': auth 'cognito'"),
    ("dummy-with-domain", "00_prerequisites", {"domain": "hub.example.com"}, "parameter 'domain': dummy login"),
    ("oauth-without-client-id", "00_prerequisites",
     {"auth": "oauth", "domain": "hub.example.com", "oauth_domain": "keycloak.example.com"}, "parameter 'oauth_client_id'"),
    ("oauth-without-provider", "00_prerequisites", {"auth": "oauth", "domain": "hub.example.com"}, "parameter 'oauth_domain'"),
    ("bad-region", "00_prerequisites", {"region": "mars-north-1"}, "parameter 'region': 'mars-north-1'"),
    ("bad-target", "00_prerequisites", {"target": "gcp"}, "parameter 'target'"),
    ("bad-deployment-name", "00_prerequisites", {"deployment": "My_Hub"}, "parameter 'deployment'"),
    ("bad-domain", "01_certificate", {"auth": "cognito", "domain": "hub_example"}, "parameter 'domain'"),
    ("certificate-domain-not-covering", "01_certificate", {**COGNITO, "certificate_domain": "*.example.org"},
     "parameter 'certificate_domain'"),
    ("key-not-matching", "01_certificate", "mismatch", "parameter 'private_key_file': the private key does not match"),
    ("expired-certificate", "01_certificate", "expired", "parameter 'certificate_file': the certificate is not valid now (expired on 2020-01-02)"),
    ("domain-not-covered", "01_certificate", "elsewhere", "do not cover the hub domain 'hub.example.com'"),
    ("key-file-missing", "01_certificate", "half", "parameter 'private_key_file': certificate_file and private_key_file go together"),
    ("certificate-file-missing", "01_certificate", "missing", "parameter 'certificate_file'"),
    ("bad-validity", "01_certificate", {**COGNITO, "validity_days": 0}, "parameter 'validity_days'"),
    ("bad-certificate-arn", "01_certificate", {**COGNITO, "certificate_arn": "arn:aws:iam::123:role/x"},
     "parameter 'certificate_arn'"),
]
LATER_CASES = [
    ("deploy-cognito-without-domain", "02_deploy", {"auth": "cognito"}, "parameter 'domain'"),
    ("deploy-wrong-auth", "02_deploy", {"auth": "ldap"}, "parameter 'auth'"),
    ("deploy-bad-kubernetes-version", "02_deploy", {"kubernetes_version": "1.20"}, "parameter 'kubernetes_version'"),
    ("deploy-bad-cidr", "02_deploy", {"public_access_cidrs": "10.0.0.0/33"}, "parameter 'public_access_cidrs'"),
    ("verify-bad-region", "03_verify", {"region": "nowhere"}, "parameter 'region'"),
    ("gpu-unknown-profile", "04_gpu_sharing", {"profile": "gpu-x"}, "parameter 'profile'"),
    ("cleanup-without-confirm", "05_cleanup", {}, "parameter 'confirm'"),
]


def _available_cases():
    return [c for c in CASES + LATER_CASES if (RUNBOOKS / f"{c[1]}.ipynb").exists()]


def _aws_inventory() -> dict:
    """What the local AWS holds that a deployment would create (the default VPC aside)."""
    ec2 = client("ec2")
    return {
        "certificates": [c["CertificateArn"] for c in client("acm").list_certificates()["CertificateSummaryList"]],
        "clusters": client("eks").list_clusters()["clusters"],
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")],
        "user_pools": [p["Id"] for p in client("cognito-idp").list_user_pools(MaxResults=60)["UserPools"]],
        "file_systems": [f["FileSystemId"] for f in client("efs").describe_file_systems()["FileSystems"]],
    }


@pytest.mark.parametrize("case", _available_cases(), ids=lambda c: c[0])
def test_bad_input_stops_in_validation_cell(case, pems, aws_sandbox, tmp_path):
    _, notebook, parameters, expected = case
    if isinstance(parameters, str):
        parameters = {**COGNITO, **pems[parameters]}
    before = _aws_inventory()
    with pytest.raises(pm.PapermillExecutionError) as failure:
        pm.execute_notebook(str(RUNBOOKS / f"{notebook}.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"deployment": "bad-inputs", **parameters}, kernel_name="python3",
                            progress_bar=False, cwd=str(RUNBOOKS))
    error = failure.value
    assert error.ename == "ParameterError", error.evalue
    assert expected in error.evalue
    assert "Fix:" in error.evalue
    assert "nb.resolve_from(form" in error.source, f"failed outside the validation cell:\n{error.source}"
    assert _aws_inventory() == before, "a bad input created something"

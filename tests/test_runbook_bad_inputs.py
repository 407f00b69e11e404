"""Bad inputs through papermill: each run stops in the notebook's validation cell with a message
naming the parameter and the fix, and nothing is created in the (local) AWS account."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import papermill as pm
import pytest

from eks_hub_runbook import tls
from eks_hub_runbook.aws.session import client

RUNBOOKS = Path(__file__).resolve().parents[1] / "runbooks"
pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

COGNITO = {"auth": "cognito", "domain": "hub.example.com"}


@pytest.fixture(scope="module")
def pems(tmp_path_factory):
    """PEM files for the certificate cases: a good pair, a foreign key, an expired one, another domain."""
    root = tmp_path_factory.mktemp("pems")
    good = tls.generate_self_signed("hub.example.com", root / "good")
    other = tls.generate_self_signed("hub.example.com", root / "other")
    expired = tls.generate_self_signed("hub.example.com", root / "expired", validity_days=1,
                                       now=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    elsewhere = tls.generate_self_signed("hub.example.org", root / "elsewhere")
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
    ("cognito-without-domain", "00_prerequisites", {"auth": "cognito", "target": "aws"}, "parameter 'domain': auth 'cognito'"),
    ("dummy-with-domain", "00_prerequisites", {"domain": "hub.example.com"}, "parameter 'domain': dummy login"),
    ("oauth-without-client-id", "00_prerequisites",
     {"auth": "oauth", "target": "aws", "domain": "hub.example.com", "oauth_domain": "keycloak.example.com"},
     "parameter 'oauth_client_id'"),
    ("oauth-without-provider", "00_prerequisites", {"auth": "oauth", "target": "aws", "domain": "hub.example.com"},
     "parameter 'oauth_domain'"),
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
    ("deploy-cognito-without-domain", "02_deploy", {"auth": "cognito", "target": "aws"}, "parameter 'domain'"),
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
    ec2 = client("ec2", "sandbox", "us-west-2")
    return {
        "certificates": [c["CertificateArn"] for c in client("acm", "sandbox", "us-west-2").list_certificates()["CertificateSummaryList"]],
        "clusters": client("eks", "sandbox", "us-west-2").list_clusters()["clusters"],
        "vpcs": [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")],
        "user_pools": [p["Id"] for p in client("cognito-idp", "sandbox", "us-west-2").list_user_pools(MaxResults=60)["UserPools"]],
        "file_systems": [f["FileSystemId"] for f in client("efs", "sandbox", "us-west-2").describe_file_systems()["FileSystems"]],
    }


def _refused(notebook: str, parameters: dict, out: Path) -> pm.PapermillExecutionError:
    """Run ``notebook`` with bad ``parameters``: it must stop in its validation cell, creating nothing."""
    before = _aws_inventory()
    with pytest.raises(pm.PapermillExecutionError) as failure:
        pm.execute_notebook(str(RUNBOOKS / f"{notebook}.ipynb"), str(out), parameters={"deployment": "bad-inputs", **parameters},
                            kernel_name="python3", progress_bar=False, cwd=str(RUNBOOKS))
    error = failure.value
    assert error.ename in ("ParameterError", "ParameterErrors"), error.evalue
    assert "Fix:" in error.evalue
    assert "nb.resolve_from(form" in error.source, f"failed outside the validation cell:\n{error.source}"
    assert _aws_inventory() == before, "a bad input created something"
    return error


@pytest.mark.parametrize("case", _available_cases(), ids=lambda c: c[0])
def test_bad_input_stops_in_validation_cell(case, pems, aws_sandbox, tmp_path):
    _, notebook, parameters, expected = case
    if isinstance(parameters, str):
        parameters = {**COGNITO, **pems[parameters]}
    assert expected in _refused(notebook, parameters, tmp_path / "out.ipynb").evalue


# Names papermill only warns about, refused by the validation cell (all of them at once).
INJECTED_CASES = [
    ("blueprint-name", "02_deploy", {"jupyterhub_domain": "hub.example.com"},
     ["parameter 'jupyterhub_domain': is the blueprint's variable for the runbook parameter `domain`", "-p domain"]),
    ("blueprint-auth-name", "00_prerequisites", {"jupyter_hub_auth_mechanism": "cognito"},
     ["parameter 'jupyter_hub_auth_mechanism'", "`auth`"]),
    ("misspelt", "02_deploy", {"domian": "hub.example.com"}, ["parameter 'domian'", "did you mean `domain`?"]),
    ("module-variable", "02_deploy", {"vpc_cidr": "10.1.0.0/33"}, ["parameter 'vpc_cidr'", "Terraform module"]),
    ("not-declared-here", "03_verify", {"domain": "hub.example.com"},
     ["parameter 'domain': is not a parameter of this notebook"]),
    ("several-at-once", "02_deploy", {"region": "mars-north-1", "kubernetes_version": "1.20", "colour": "red",
                                      "allow_all": "maybe"},
     ["4 parameters are invalid", "parameter 'colour'", "parameter 'region'", "parameter 'kubernetes_version'",
      "parameter 'allow_all'"]),
]


@pytest.mark.parametrize("case", INJECTED_CASES, ids=lambda c: c[0])
def test_names_papermill_only_warns_about_are_refused(case, aws_sandbox, tmp_path):
    _, notebook, parameters, expected = case
    error = _refused(notebook, parameters, tmp_path / "out.ipynb")
    for text in expected:
        assert text in error.evalue, (text, error.evalue)
    # the notebook shows the problems as a table too (parameter, problem, fix)
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    failed = next(c for c in executed["cells"] if c.get("metadata", {}).get("papermill", {}).get("exception"))
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for o in failed["outputs"])
    assert "<th>problem</th>" in html and "<th>fix</th>" in html


def test_a_secret_passed_to_papermill_is_refused_naming_the_output_to_delete(aws_sandbox, tmp_path):
    secret = "blueprint-client-secret-8c1e"
    out = tmp_path / "out.ipynb"
    env = {k: v for k, v in os.environ.items() if k != "RUNBOOK_OAUTH_CLIENT_SECRET"}
    result = subprocess.run([str(Path(sys.executable).parent / "papermill"), str(RUNBOOKS / "02_deploy.ipynb"), str(out),
                             "-p", "deployment", "bad-inputs", "-p", "auth", "oauth",
                             "-p", "oauth_jupyter_client_secret", secret],
                            capture_output=True, text=True, timeout=300, env=env, cwd=str(RUNBOOKS.parent))
    assert result.returncode != 0
    executed = json.loads(out.read_text())
    error = next(o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error")
    assert error["ename"] == "ParameterError"
    assert f"papermill has already written its value into {out}" in error["evalue"]
    assert f"delete {out} and rotate the secret" in error["evalue"] and "$RUNBOOK_OAUTH_CLIENT_SECRET" in error["evalue"]
    assert secret not in error["evalue"] and secret not in "".join(error["traceback"])
    # papermill did write it (which is why the message says so), and nothing under outputs/ has it
    assert secret in out.read_text()
    outputs = RUNBOOKS.parent / "outputs"
    assert not [p for p in outputs.rglob("*") if p.is_file() and secret in p.read_text(errors="replace")]

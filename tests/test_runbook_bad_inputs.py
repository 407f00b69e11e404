"""Bad inputs through papermill: each run stops in the notebook's validation cell with a message
naming the parameter and the fix, and nothing is created in the (local) AWS account."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import papermill as pm
import pytest
from cryptography.hazmat.primitives import serialization

from eks_hub_runbook import params as P, records, tls
from eks_hub_runbook.aws.session import client
from eks_hub_runbook.notebook import validation
from eks_hub_runbook.paths import deployment_dir

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
    text = root / "notes.txt"
    text.write_text("the certificate is on the wiki\n")
    der = root / "certificate.der"
    der.write_bytes(good.certificate.public_bytes(serialization.Encoding.DER))
    return {
        "text": {"certificate_file": str(text), "private_key_file": str(good.key_path)},
        "der": {"certificate_file": str(der), "private_key_file": str(good.key_path)},
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


# Beyond 02: each run holds several bad inputs of one notebook (a kernel costs ~5 s), all reported at once.
# "bad-inputs" was never deployed here; "bad-inputs-recorded" is a deployment 02_deploy recorded (offering one
# profile, on the sandbox); "bad-inputs-cleaned" is one 05_cleanup finished.
MORE_CASES = [
    ("prereq-unknown-profile-and-version", "00_prerequisites", {"profiles": "gpu-x", "kubernetes_version": 1.3},
     ["parameter 'profiles': 'gpu-x' is not a profile of the hub", "parameter 'kubernetes_version': '1.3' is not supported"]),
    ("certificate-text-file", "01_certificate", "text", ["parameter 'certificate_file'", "is not a PEM certificate"]),
    ("certificate-der-file", "01_certificate", "der", ["parameter 'certificate_file'", "is not a PEM certificate",
                                                      "-----BEGIN CERTIFICATE-----"]),
    ("validity-not-a-number", "01_certificate", {**COGNITO, "validity_days": "ten"},
     ["parameter 'validity_days': 'ten' is not a whole number"]),
    ("deploy-wrong-types", "02_deploy", {"cull_timeout_minutes": -1, "gpu_spot": "sometimes", "plan_only": "yes please"},
     ["3 parameters are invalid", "parameter 'cull_timeout_minutes': -1 minutes is out of range",
      "parameter 'gpu_spot': 'sometimes' is not a boolean", "parameter 'plan_only': 'yes please' is not a boolean"]),
    ("verify-never-deployed", "03_verify", {},
     ["parameter 'deployment': no deployment named 'bad-inputs'; deployments here: ", "run 02_deploy -p deployment bad-inputs"]),
    ("verify-other-target", "03_verify", {"deployment": "bad-inputs-recorded", "target": "aws"},
     ["parameter 'target': deployment 'bad-inputs-recorded' was deployed with target 'sandbox'"]),
    ("gpu-never-deployed-bad-options", "04_gpu_sharing", {"timeout_minutes": 0, "keep_servers": "maybe", "mig": "perhaps", "profile": ""},
     ["5 parameters are invalid", "parameter 'deployment': no deployment named 'bad-inputs'",
      "parameter 'timeout_minutes': 0 is out of range", "parameter 'keep_servers': 'maybe' is not a boolean",
      "parameter 'mig': 'perhaps' is not a boolean", "parameter 'profile': is empty"]),
    ("gpu-timeout-too-long-unknown-profile", "04_gpu_sharing", {"deployment": "bad-inputs-recorded", "timeout_minutes": 10000, "profile": "gpu-x"},
     ["parameter 'timeout_minutes': 10000 is out of range", "parameter 'profile': 'gpu-x' is not one of"]),
    ("gpu-timeout-soon-profile-not-offered", "04_gpu_sharing", {"deployment": "bad-inputs-recorded", "timeout_minutes": "soon", "profile": "gpu-mig"},
     ["parameter 'timeout_minutes': 'soon' is not a whole number",
      "parameter 'profile': deployment 'bad-inputs-recorded' does not offer 'gpu-mig'"]),
    ("gpu-cleaned-up", "04_gpu_sharing", {"deployment": "bad-inputs-cleaned"},
     ["parameter 'deployment': 02_deploy has no record of deployment 'bad-inputs-cleaned' here"]),
    ("cleanup-never-deployed", "05_cleanup", {"confirm": True, "delete_certificate": "sometimes"},
     ["parameter 'deployment': no deployment named 'bad-inputs'", "parameter 'delete_certificate': 'sometimes' is not a boolean"]),
]


@pytest.fixture(scope="module")
def deployments(state_dir):
    """A deployment 02_deploy recorded (sandbox, one profile) and one 05_cleanup finished (its records
    forgotten), in the session's state folder; removed afterwards."""
    recorded = P.resolve(deployment="bad-inputs-recorded", profiles="gpu-time-slicing").as_dict()
    records.remember("bad-inputs-recorded", "parameters", recorded)
    records.remember("bad-inputs-cleaned", "parameters", {**recorded, "deployment": "bad-inputs-cleaned"})
    records.forget("bad-inputs-cleaned")
    yield
    for name in ("bad-inputs-recorded", "bad-inputs-cleaned"):
        shutil.rmtree(deployment_dir(name, create=False), ignore_errors=True)


@pytest.mark.parametrize("case", MORE_CASES, ids=lambda c: c[0])
def test_bad_input_beyond_02_stops_in_validation_cell(case, pems, deployments, aws_sandbox, tmp_path):
    _, notebook, parameters, expected = case
    if isinstance(parameters, str):
        parameters = {**COGNITO, **pems[parameters]}
    error = _refused(notebook, parameters, tmp_path / "out.ipynb")
    for text in expected:
        assert text in error.evalue, (text, error.evalue)
    assert error.evalue.count("Fix:") == max(1, len([t for t in expected if t.startswith("parameter '")]))
    assert not validation.left_here("bad-inputs"), "a refused run left state for the deployment"


def test_cleanup_of_a_deployment_already_cleaned_up_is_a_harmless_no_op(deployments, aws_sandbox, tmp_path):
    before = _aws_inventory()
    pm.execute_notebook(str(RUNBOOKS / "05_cleanup.ipynb"), str(tmp_path / "out.ipynb"), progress_bar=False,
                        parameters={"deployment": "bad-inputs-cleaned", "confirm": True, "keep_sandbox": True},
                        kernel_name="python3", cwd=str(RUNBOOKS))
    assert _aws_inventory() == before
    assert records.recall("bad-inputs-cleaned", "parameters") is None, "a no-op records no deployment"


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

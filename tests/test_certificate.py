"""01_certificate's plan: what it decides, validates, generates and imports (local AWS)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from eks_hub_runbook import certificate, tls
from eks_hub_runbook.aws import acm
from eks_hub_runbook.errors import ParameterError
from eks_hub_runbook.params import resolve

GONE = "arn:aws:acm:us-west-2:123456789012:certificate/00000000-0000-4000-8000-000000000000"


@pytest.fixture
def cognito(state_dir, request):
    name = "cert-" + request.node.name.replace("_", "-")[:20].strip("-")
    return resolve(target="sandbox", deployment=name, auth="cognito", domain="hub.example.com")


def test_plan_for_type_1_skips(state_dir):
    plan = certificate.plan(resolve(target="aws", deployment="cert-dummy"))
    assert plan.action == "skip" and not plan.needed
    assert plan.checks()[0]["status"] == "skip"
    assert certificate.apply(plan) == ""


@pytest.mark.sandbox
def test_plan_validates_options_before_anything(cognito, tmp_path):
    with pytest.raises(ParameterError, match="private_key_file"):
        certificate.plan(cognito, SimpleNamespace(certificate_file=str(tmp_path / "x.pem")))
    with pytest.raises(ParameterError, match="validity_days"):
        certificate.plan(cognito, SimpleNamespace(validity_days=0))
    other = tls.generate_self_signed("other.example.org", tmp_path)
    with pytest.raises(ParameterError, match="do not cover"):
        certificate.plan(cognito, SimpleNamespace(certificate_file=str(other.certificate_path), private_key_file=str(other.key_path)))
    with pytest.raises(ParameterError, match="certificate_arn.*not both"):
        certificate.plan(resolve(target="sandbox", deployment=cognito.deployment, auth="cognito", domain="hub.example.com",
                                 certificate_arn=GONE),
                         SimpleNamespace(certificate_file=str(other.certificate_path), private_key_file=str(other.key_path)))


@pytest.mark.sandbox
def test_generate_plan_shows_names_and_paths_never_the_key(cognito):
    plan = certificate.plan(cognito, SimpleNamespace(validity_days=30))
    rows = {r["item"]: r["value"] for r in plan.as_rows()}
    assert rows["names (SANs)"] == "hub.example.com, *.example.com" and rows["validity"] == "30 days"
    assert "certificate file" not in rows  # not generated yet
    certificate.materialise(plan)
    rows = {r["item"]: r["value"] for r in plan.as_rows()}
    assert rows["certificate file"] == "<deployment>/certificate/tls.crt"
    assert rows["private key file (0600, never shown)"] == "<deployment>/certificate/tls.key"
    assert "PRIVATE KEY" not in repr(plan) and "PRIVATE KEY" not in str(rows)
    without = certificate.plan(cognito, SimpleNamespace(wildcard=False))
    assert without.material is None  # the generated one has the wildcard too: it does not fit
    assert {r["item"]: r["value"] for r in without.as_rows()}["names (SANs)"] == "hub.example.com"


@pytest.mark.sandbox
def test_rerunning_the_plan_reuses_the_generated_certificate_and_imports_once(aws_sandbox, cognito):
    plan = certificate.plan(cognito)
    assert plan.action == "generate"
    assert all(r["status"] != "fail" for r in plan.checks())
    arn = certificate.apply(plan)
    assert arn.startswith("arn:aws:acm:us-west-2:")
    # re-running the notebook: same certificate on disk, same ARN, no second import
    again = certificate.plan(cognito)
    assert again.material is not None and again.material.fingerprint == plan.material.fingerprint
    assert certificate.apply(again) == arn
    assert acm.find_imported(cognito) == [arn]
    assert acm.delete(cognito) == [arn]


@pytest.mark.sandbox
def test_renewed_certificate_reimported_into_same_arn(aws_sandbox, cognito):
    arn = certificate.apply(certificate.plan(cognito))
    directory = tls.certificate_dir(cognito.deployment)
    (directory / tls.CERTIFICATE_FILE).unlink()
    renewed = certificate.plan(cognito)
    assert renewed.material is None
    assert certificate.apply(renewed) == arn
    assert acm.find_imported(cognito) == [arn]
    acm.delete(cognito)


@pytest.mark.sandbox
def test_imported_pem_files_are_checked_then_imported(aws_sandbox, cognito, tmp_path):
    given = tls.generate_self_signed("hub.example.com", tmp_path)
    plan = certificate.plan(cognito, SimpleNamespace(certificate_file=str(given.certificate_path),
                                                     private_key_file=str(given.key_path)))
    assert plan.action == "import" and not plan.material.generated
    arn = certificate.apply(plan)
    assert acm.find_imported(cognito) == [arn]
    acm.delete(cognito)


@pytest.mark.sandbox
def test_reuse_arn_checked_against_acm(aws_sandbox, cognito):
    arn = certificate.apply(certificate.plan(cognito))
    reuse = resolve(target="sandbox", deployment=cognito.deployment, auth="cognito", domain="hub.example.com",
                    certificate_arn=arn)
    plan = certificate.plan(reuse)
    assert plan.action == "reuse-arn" and plan.checks()[0]["status"] == "pass"
    assert certificate.apply(plan) == arn
    elsewhere = resolve(target="sandbox", deployment=cognito.deployment, auth="cognito", domain="hub.example.org",
                        certificate_arn=arn)
    with pytest.raises(ParameterError, match="certificate_arn.*does not cover"):
        certificate.plan(elsewhere).checks()
    acm.delete(cognito)

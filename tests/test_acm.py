"""The hub certificate in ACM: import, tags, find, check, describe, delete (local AWS)."""

from __future__ import annotations

import pytest

from eks_hub_runbook import tls
from eks_hub_runbook.aws import acm
from eks_hub_runbook.aws.session import client
from eks_hub_runbook.aws.tags import DEPLOYMENT_TAG, MANAGED_BY_TAG, tag_dict
from eks_hub_runbook.errors import ParameterError
from eks_hub_runbook.params import resolve

pytestmark = pytest.mark.sandbox

GONE = "arn:aws:acm:us-west-2:123456789012:certificate/00000000-0000-4000-8000-000000000000"


@pytest.fixture
def cognito(state_dir, request):
    name = "acm-" + request.node.name.replace("_", "-")[:20].strip("-")
    return resolve(target="sandbox", deployment=name, auth="cognito", domain="hub.example.com")


@pytest.fixture
def material(tmp_path):
    return tls.generate_self_signed("hub.example.com", tmp_path, wildcard_domain="*.example.com")


def _tags(arn: str) -> dict[str, str]:
    return tag_dict(client("acm", "sandbox", "us-west-2").list_tags_for_certificate(CertificateArn=arn)["Tags"])


def test_import_is_idempotent_and_described(aws_sandbox, cognito, material):
    arn = acm.import_certificate(cognito, material)
    assert arn.startswith("arn:aws:acm:us-west-2:")
    assert acm.import_certificate(cognito, material) == arn  # the same certificate: no second import
    assert acm.find_imported(cognito) == [arn]
    described = {r["field"]: r["value"] for r in acm.describe(cognito, arn)}
    assert described["status"] == "ISSUED" and described["type"] == "IMPORTED"
    assert described["domain"] == "hub.example.com"
    assert "*.example.com" in described["subject alternative names"]
    assert acm.describe(cognito, "") == []
    assert acm.delete(cognito) == [arn]
    assert acm.delete(cognito) == []


def test_imported_certificates_carry_terraforms_tag_keys(aws_sandbox, cognito, material):
    arn = acm.import_certificate(cognito, material)
    tags = _tags(arn)
    assert tags[DEPLOYMENT_TAG] == cognito.deployment == tags["runbook:deployment"]
    assert tags[MANAGED_BY_TAG] == "runbook" and MANAGED_BY_TAG == "runbook:managed-by"
    assert tags["Name"] == f"{cognito.deployment}-hub"
    assert acm.imported_match(tags, cognito.deployment) == "tag runbook:deployment"
    assert acm.imported_match(tags, "another-deployment") == ""
    acm.delete(cognito)


def test_a_renewed_certificate_goes_into_the_same_arn_with_its_tags(aws_sandbox, cognito, material, tmp_path):
    arn = acm.import_certificate(cognito, material)
    renewed = tls.generate_self_signed("hub.example.com", tmp_path / "renewed")
    assert acm.import_certificate(cognito, renewed) == arn
    assert acm.find_imported(cognito) == [arn]
    assert _tags(arn)[DEPLOYMENT_TAG] == cognito.deployment
    acm.delete(cognito)


def test_certificates_imported_under_the_old_tags_are_found_retagged_and_deleted(aws_sandbox, cognito, material):
    """A deployment made before the tags changed still has its certificate found, re-tagged and cleaned up."""
    old = client("acm", "sandbox", "us-west-2").import_certificate(
        Certificate=material.certificate_pem, PrivateKey=material.key_pem,
        Tags=[{"Key": "eks-hub-runbook/deployment", "Value": cognito.deployment},
              {"Key": "managed-by", "Value": "eks-hub-runbook"}])["CertificateArn"]
    assert acm.find_imported(cognito) == [old]
    assert acm.imported_match(_tags(old), cognito.deployment).startswith("tag eks-hub-runbook/deployment")
    assert acm.import_certificate(cognito, material) == old  # re-running 01_certificate: no second import
    assert _tags(old)[DEPLOYMENT_TAG] == cognito.deployment and _tags(old)[MANAGED_BY_TAG] == "runbook"
    assert acm.delete(cognito) == [old]


def test_certificates_of_others_are_not_found(aws_sandbox, cognito, material):
    acm_client = client("acm", "sandbox", "us-west-2")
    untagged = acm_client.import_certificate(Certificate=material.certificate_pem, PrivateKey=material.key_pem)["CertificateArn"]
    terraform = acm_client.import_certificate(  # the deployment's tag, but not imported by the runbook
        Certificate=material.certificate_pem, PrivateKey=material.key_pem,
        Tags=[{"Key": DEPLOYMENT_TAG, "Value": cognito.deployment}, {"Key": MANAGED_BY_TAG, "Value": "terraform"}],
    )["CertificateArn"]
    assert {untagged, terraform} <= {arn for arn, _, _ in acm.certificates("sandbox", "us-west-2")}
    assert acm.find_imported(cognito) == []
    assert acm.delete(cognito) == []
    for arn in (untagged, terraform):
        acm.delete(cognito, arn)


def test_check_arn_names_what_is_wrong(aws_sandbox, cognito, material):
    arn = acm.import_certificate(cognito, material)
    acm.check_arn(cognito, arn)
    elsewhere = resolve(target="sandbox", deployment=cognito.deployment, auth="cognito", domain="hub.example.org")
    with pytest.raises(ParameterError, match="certificate_arn.*does not cover"):
        acm.check_arn(elsewhere, arn)
    with pytest.raises(ParameterError, match="certificate_arn.*not a certificate in ACM"):
        acm.check_arn(cognito, arn[:-12] + "000000000000")
    acm.delete(cognito)


def test_ensure_certificate_creates_one_on_sandbox_only(aws_sandbox, cognito):
    arn = acm.ensure_certificate(cognito)
    assert arn and acm.find_imported(cognito) == [arn]
    assert acm.ensure_certificate(cognito, recalled_arn=arn) == arn  # 02_deploy finds it through the recorded ARN
    acm.delete(cognito)
    on_aws = resolve(target="aws", deployment=cognito.deployment, auth="cognito", domain="hub.example.com")
    with pytest.raises(ParameterError, match="certificate_arn.*run 01_certificate"):
        acm.ensure_certificate(on_aws)
    assert acm.ensure_certificate(resolve(target="aws", deployment=cognito.deployment)) == ""  # type 1


def test_a_recorded_certificate_the_restarted_sandbox_lost_is_replaced(aws_sandbox, cognito):
    """The local AWS starts empty with every sandbox start, so the ARN 02 recorded before a
    05_cleanup is gone on the next deploy: the sandbox makes a new one; a given ARN stays an error."""
    arn = acm.ensure_certificate(cognito, recalled_arn=GONE)
    assert arn != GONE and acm.find_imported(cognito) == [arn]
    acm.delete(cognito)
    given = resolve(deployment=cognito.deployment, auth="cognito", domain="hub.example.com", certificate_arn=GONE)
    with pytest.raises(ParameterError, match="certificate_arn.*not a certificate in ACM"):
        acm.ensure_certificate(given)

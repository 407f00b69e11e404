"""The hub certificate: generation, loading, checks, ACM import/describe/delete (local AWS)."""

from __future__ import annotations

import datetime as dt
import stat
from types import SimpleNamespace

import pytest

from eks_hub_runbook.aws import acm
from eks_hub_runbook.errors import ParameterError
from eks_hub_runbook.params import resolve

UTC = dt.timezone.utc


@pytest.fixture
def cognito(state_dir, request):
    name = "acm-" + request.node.name.replace("_", "-")[:20].strip("-")
    return resolve(target="sandbox", deployment=name, auth="cognito", domain="hub.example.com")


def test_generate_writes_private_key_0600_and_covers_domain(tmp_path):
    material = acm.generate_self_signed("hub.example.com", tmp_path, wildcard_domain="*.example.com", validity_days=90)
    assert stat.S_IMODE(material.key_path.stat().st_mode) == 0o600
    assert material.names == ["hub.example.com", "*.example.com"]
    assert material.self_signed and acm.key_matches(material)
    assert "PRIVATE KEY" not in repr(material)
    statuses = {r["check"]: r["status"] for r in acm.checks(material, "hub.example.com")}
    assert statuses["private key matches certificate"] == "pass"
    assert statuses["covers hub.example.com"] == "pass"
    assert statuses["validity period"] == "pass"
    assert statuses["key type accepted by ACM and NLB"] == "pass"


def test_wildcard_san_covers_other_subdomains_only_one_level(tmp_path):
    material = acm.generate_self_signed("hub.example.com", tmp_path, wildcard_domain="*.example.com")
    rows = {r["check"]: r for r in acm.checks(material, "other.example.com")}
    assert rows["covers other.example.com"]["status"] == "pass"
    rows = {r["check"]: r for r in acm.checks(material, "a.b.example.com")}
    assert rows["covers a.b.example.com"]["status"] == "fail"


def test_mismatched_key_is_named(tmp_path):
    one = acm.generate_self_signed("hub.example.com", tmp_path / "one")
    two = acm.generate_self_signed("hub.example.com", tmp_path / "two")
    material = acm.load_pem(one.certificate_path, two.key_path)
    with pytest.raises(ParameterError, match="private_key_file.*does not match"):
        acm.validate(material, "hub.example.com")


def test_expired_and_not_yet_valid(tmp_path):
    old = acm.generate_self_signed("hub.example.com", tmp_path, validity_days=1, now=dt.datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(ParameterError, match=r"certificate_file.*expired on 2020-01-02"):
        acm.validate(old, "hub.example.com")
    future = acm.generate_self_signed("hub.example.com", tmp_path, now=dt.datetime.now(UTC) + dt.timedelta(days=10))
    with pytest.raises(ParameterError, match="not valid before"):
        acm.validate(future, "hub.example.com")


def test_expiring_soon_warns(tmp_path):
    material = acm.generate_self_signed("hub.example.com", tmp_path, validity_days=10)
    rows = {r["check"]: r["status"] for r in acm.checks(material, "hub.example.com")}
    assert rows["validity period"] == "warn"


def test_domain_not_covered(tmp_path):
    material = acm.generate_self_signed("other.example.org", tmp_path)
    with pytest.raises(ParameterError, match="do not cover the hub domain 'hub.example.com'"):
        acm.validate(material, "hub.example.com")


def test_load_pem_errors_name_the_parameter(tmp_path):
    good = acm.generate_self_signed("hub.example.com", tmp_path)
    with pytest.raises(ParameterError, match="certificate_file"):
        acm.load_pem(tmp_path / "missing.pem", good.key_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(ParameterError, match="certificate_file.*not a PEM certificate"):
        acm.load_pem(junk, good.key_path)
    with pytest.raises(ParameterError, match="private_key_file.*not a PEM private key"):
        acm.load_pem(good.certificate_path, junk)


def test_plan_for_type_1_skips(state_dir):
    plan = acm.plan(resolve(target="aws", deployment="acm-dummy"))
    assert plan.action == "skip" and not plan.needed
    assert plan.checks()[0]["status"] == "skip"
    assert acm.apply(plan) == ""


@pytest.mark.sandbox
def test_plan_validates_options_before_anything(cognito, tmp_path):
    with pytest.raises(ParameterError, match="private_key_file"):
        acm.plan(cognito, SimpleNamespace(certificate_file=str(tmp_path / "x.pem")))
    with pytest.raises(ParameterError, match="validity_days"):
        acm.plan(cognito, SimpleNamespace(validity_days=0))
    other = acm.generate_self_signed("other.example.org", tmp_path)
    with pytest.raises(ParameterError, match="do not cover"):
        acm.plan(cognito, SimpleNamespace(certificate_file=str(other.certificate_path), private_key_file=str(other.key_path)))


@pytest.mark.sandbox
def test_import_is_idempotent_and_described(aws_sandbox, cognito):
    plan = acm.plan(cognito)
    assert plan.action == "generate"
    assert all(r["status"] != "fail" for r in plan.checks())
    arn = acm.apply(plan)
    assert arn.startswith("arn:aws:acm:us-west-2:")
    # re-running the notebook: same certificate on disk, same ARN, no second import
    again = acm.plan(cognito)
    assert again.material is not None and again.material.fingerprint == plan.material.fingerprint
    assert acm.apply(again) == arn
    assert acm.find_imported(cognito) == [arn]
    described = {r["field"]: r["value"] for r in acm.describe(cognito, arn)}
    assert described["status"] == "ISSUED"
    assert described["domain"] == "hub.example.com"
    assert "*.example.com" in described["subject alternative names"]
    # 02_deploy finds it through the recorded ARN
    assert acm.ensure_certificate(cognito, recalled_arn=arn) == arn
    assert acm.delete(cognito) == [arn]
    assert acm.delete(cognito) == []


@pytest.mark.sandbox
def test_renewed_certificate_reimported_into_same_arn(aws_sandbox, cognito):
    arn = acm.apply(acm.plan(cognito))
    directory = acm.certificate_dir(cognito.deployment)
    (directory / "tls.crt").unlink()
    renewed = acm.plan(cognito)
    assert renewed.material is None
    assert acm.apply(renewed) == arn
    assert acm.find_imported(cognito) == [arn]
    acm.delete(cognito)


@pytest.mark.sandbox
def test_reuse_arn_checked_against_acm(aws_sandbox, cognito, tmp_path):
    arn = acm.apply(acm.plan(cognito))
    reuse = resolve(target="sandbox", deployment=cognito.deployment, auth="cognito", domain="hub.example.com",
                    certificate_arn=arn)
    plan = acm.plan(reuse)
    assert plan.action == "reuse-arn" and plan.checks()[0]["status"] == "pass"
    assert acm.apply(plan) == arn
    elsewhere = resolve(target="sandbox", deployment=cognito.deployment, auth="cognito", domain="hub.example.org",
                        certificate_arn=arn)
    with pytest.raises(ParameterError, match="certificate_arn.*does not cover"):
        acm.plan(elsewhere).checks()
    missing = arn[:-12] + "000000000000"
    with pytest.raises(ParameterError, match="certificate_arn.*not a certificate in ACM"):
        acm.check_arn(cognito, missing)
    acm.delete(cognito)


@pytest.mark.sandbox
def test_ensure_certificate_creates_one_on_sandbox_only(aws_sandbox, cognito):
    arn = acm.ensure_certificate(cognito)
    assert arn and acm.find_imported(cognito) == [arn]
    acm.delete(cognito)
    on_aws = resolve(target="aws", deployment=cognito.deployment, auth="cognito", domain="hub.example.com")
    with pytest.raises(ParameterError, match="certificate_arn.*run 01_certificate"):
        acm.ensure_certificate(on_aws)


@pytest.mark.sandbox
def test_a_recorded_certificate_the_restarted_sandbox_lost_is_replaced(aws_sandbox, cognito):
    """The local AWS starts empty with every sandbox start, so the ARN 02 recorded before a
    05_cleanup is gone on the next deploy: the sandbox makes a new one; a given ARN stays an error."""
    gone = "arn:aws:acm:us-west-2:123456789012:certificate/00000000-0000-4000-8000-000000000000"
    arn = acm.ensure_certificate(cognito, recalled_arn=gone)
    assert arn != gone and acm.find_imported(cognito) == [arn]
    acm.delete(cognito)
    given = resolve(deployment=cognito.deployment, auth="cognito", domain="hub.example.com", certificate_arn=gone)
    with pytest.raises(ParameterError, match="certificate_arn.*not a certificate in ACM"):
        acm.ensure_certificate(given)

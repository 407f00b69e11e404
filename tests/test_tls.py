"""The hub certificate as files: generation, loading, checks (no AWS)."""

from __future__ import annotations

import datetime as dt
import stat

import pytest

from eks_hub_runbook import tls
from eks_hub_runbook.errors import ParameterError

UTC = dt.timezone.utc


def test_generate_writes_private_key_0600_and_covers_domain(tmp_path):
    material = tls.generate_self_signed("hub.example.com", tmp_path, wildcard_domain="*.example.com", validity_days=90)
    assert stat.S_IMODE(material.key_path.stat().st_mode) == 0o600
    assert (material.certificate_path.name, material.key_path.name) == (tls.CERTIFICATE_FILE, tls.KEY_FILE)
    assert material.names == ["hub.example.com", "*.example.com"]
    assert material.self_signed and tls.key_matches(material)
    assert "PRIVATE KEY" not in repr(material)
    statuses = {r["check"]: r["status"] for r in tls.checks(material, "hub.example.com")}
    assert statuses["private key matches certificate"] == "pass"
    assert statuses["covers hub.example.com"] == "pass"
    assert statuses["validity period"] == "pass"
    assert statuses["key type accepted by ACM and NLB"] == "pass"


def test_fingerprint_is_the_certificates_sha256(tmp_path):
    material = tls.generate_self_signed("hub.example.com", tmp_path)
    assert tls.fingerprint(material.certificate_pem) == material.fingerprint
    assert len(material.fingerprint.split(":")) == 32


def test_certificate_dir_is_private_and_only_made_when_asked(state_dir):
    folder = tls.certificate_dir("tls-folder-test", create=False)
    assert not folder.exists()
    assert tls.certificate_dir("tls-folder-test") == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_wildcard_san_covers_other_subdomains_only_one_level(tmp_path):
    material = tls.generate_self_signed("hub.example.com", tmp_path, wildcard_domain="*.example.com")
    rows = {r["check"]: r for r in tls.checks(material, "other.example.com")}
    assert rows["covers other.example.com"]["status"] == "pass"
    rows = {r["check"]: r for r in tls.checks(material, "a.b.example.com")}
    assert rows["covers a.b.example.com"]["status"] == "fail"


def test_mismatched_key_is_named(tmp_path):
    one = tls.generate_self_signed("hub.example.com", tmp_path / "one")
    two = tls.generate_self_signed("hub.example.com", tmp_path / "two")
    material = tls.load_pem(one.certificate_path, two.key_path)
    with pytest.raises(ParameterError, match="private_key_file.*does not match"):
        tls.validate(material, "hub.example.com")


def test_expired_and_not_yet_valid(tmp_path):
    old = tls.generate_self_signed("hub.example.com", tmp_path, validity_days=1, now=dt.datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(ParameterError, match=r"certificate_file.*expired on 2020-01-02"):
        tls.validate(old, "hub.example.com")
    future = tls.generate_self_signed("hub.example.com", tmp_path, now=dt.datetime.now(UTC) + dt.timedelta(days=10))
    with pytest.raises(ParameterError, match="not valid before"):
        tls.validate(future, "hub.example.com")


def test_expiring_soon_warns(tmp_path):
    material = tls.generate_self_signed("hub.example.com", tmp_path, validity_days=10)
    rows = {r["check"]: r["status"] for r in tls.checks(material, "hub.example.com")}
    assert rows["validity period"] == "warn"


def test_domain_not_covered(tmp_path):
    material = tls.generate_self_signed("other.example.org", tmp_path)
    with pytest.raises(ParameterError, match="do not cover the hub domain 'hub.example.com'"):
        tls.validate(material, "hub.example.com")


def test_load_pem_errors_name_the_parameter(tmp_path):
    good = tls.generate_self_signed("hub.example.com", tmp_path)
    with pytest.raises(ParameterError, match="certificate_file"):
        tls.load_pem(tmp_path / "missing.pem", good.key_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(ParameterError, match="certificate_file.*not a PEM certificate"):
        tls.load_pem(junk, good.key_path)
    with pytest.raises(ParameterError, match="private_key_file.*not a PEM private key"):
        tls.load_pem(good.certificate_path, junk)

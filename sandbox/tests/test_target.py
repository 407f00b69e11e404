"""The sandbox target: what it says differs from AWS, and nothing it says is sandbox-specific
anywhere else (the product finds it by entry point)."""

from __future__ import annotations

import stat
from importlib.metadata import entry_points

from eks_hub_runbook import params, targets
from eks_hub_sandbox.target import SandboxTarget


def test_the_product_finds_the_sandbox_by_its_entry_point():
    (point,) = [ep for ep in entry_points(group=targets.ENTRY_POINT_GROUP) if ep.name == "sandbox"]
    assert point.value == "eks_hub_sandbox.target:SandboxTarget"
    assert isinstance(targets.get("sandbox"), SandboxTarget)
    assert targets.names()[0] == targets.DEFAULT == "sandbox"


def test_the_terraform_override_carries_every_sandbox_setting(state_dir):
    text = targets.get("sandbox").terraform_override()
    url = targets.get("sandbox").endpoint_url()
    assert "skip_requesting_account_id = false" in text
    assert f'eks        = "{url}"' in text
    assert 'access_key                  = "testing"' in text


def test_login_defaults_are_reserved_example_names():
    defaults = targets.get("sandbox").parameter_defaults
    assert defaults["domain"].endswith(".example.com") and defaults["oauth_domain"].endswith(".example.com")
    assert params.resolve(auth="oauth").defaulted == ("domain", "oauth_domain", "oauth_client_id")


def test_the_generated_client_secret_is_private_and_stable(state_dir, monkeypatch):
    monkeypatch.delenv("RUNBOOK_OAUTH_CLIENT_SECRET", raising=False)
    p = params.resolve(deployment="target-secret", auth="oauth")
    first = params.oauth_client_secret(p)
    assert len(first) >= 32 and params.oauth_client_secret(p) == first
    path = state_dir / "deployments" / "target-secret" / "oauth-client-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    from eks_hub_runbook.records.redact import redact

    assert first not in redact(f"the secret is {first}")


def test_limits_make_the_notebook_note():
    note = targets.get("sandbox").note(params.resolve(), ("gpu",))
    assert note.startswith("**Target: local sandbox.** What the sandbox cannot prove:")
    assert "time-slicing at the CUDA level" in note and "DNS, TLS" not in note
    aws = targets.get("aws").note(params.resolve(target="aws"), ("gpu",))
    assert "billable" in aws and "cannot prove" not in aws

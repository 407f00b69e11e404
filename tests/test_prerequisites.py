"""Prerequisite checks: tool versions, sandbox services, secrets, the closing summary."""

from __future__ import annotations

import pytest

from eks_hub_runbook import prerequisites
from eks_hub_runbook.notebook import ChecksFailed, require_pass
from eks_hub_runbook.params import resolve


def test_tools_for_aws(monkeypatch):
    versions = {"terraform": "1.11.4", "kubectl": "1.31.0", "helm": None}
    monkeypatch.setattr(prerequisites, "tool_version", lambda tool: versions[tool.name])
    rows = {r["check"]: r for r in prerequisites.tool_rows(resolve(target="aws", kubernetes_version="1.33"))}
    assert rows["terraform"]["status"] == "pass"
    assert rows["kubectl"]["status"] == "fail" and rows["kubectl"]["needed"] == ">= 1.32"  # skew of one minor
    assert rows["helm"] == {"check": "helm", "needed": ">= 3.12", "found": "not found", "status": "fail"}


@pytest.mark.sandbox
def test_sandbox_needs_terraform_only(monkeypatch):
    monkeypatch.setattr(prerequisites, "tool_version", lambda tool: "1.11.4")
    rows = prerequisites.tool_rows(resolve(target="sandbox"))
    assert [r["check"] for r in rows] == ["terraform"]


def test_real_terraform_is_found():
    tool = next(t for t in prerequisites.TOOLS if t.name == "terraform")
    found = prerequisites.tool_version(tool)
    assert found is not None and prerequisites.version_tuple(found) >= tool.minimum()


@pytest.mark.sandbox
def test_oauth_secret_rows(monkeypatch):
    monkeypatch.delenv("RUNBOOK_OAUTH_CLIENT_SECRET", raising=False)
    oauth = dict(auth="oauth", domain="hub.example.com", oauth_domain="kc.example.com", oauth_client_id="jupyterhub")
    assert prerequisites.secret_rows(resolve(target="aws", **oauth))[0]["status"] == "fail"
    sandbox = prerequisites.secret_rows(resolve(target="sandbox", **oauth))[0]
    assert sandbox["status"] == "pass" and "generated for the sandbox" in sandbox["found"]
    monkeypatch.setenv("RUNBOOK_OAUTH_CLIENT_SECRET", "s3cret-value-123")
    row = prerequisites.secret_rows(resolve(target="aws", **oauth))[0]
    assert row["status"] == "pass" and "s3cret" not in str(row)
    assert prerequisites.secret_rows(resolve()) == []


def test_deployment_type_rows_mark_the_choice():
    rows = prerequisites.deployment_type_rows(resolve(target="aws", auth="cognito", domain="hub.example.com"))
    assert [r["chosen"] != "" for r in rows] == [False, True, False]


def test_summary_and_require(monkeypatch):
    local = [{"check": "terraform", "needed": ">= 1.5", "found": "1.11.4", "status": "pass"}]
    where = [{"check": "AWS credentials", "status": "pass", "detail": "account 123456789012"}]
    quota = [{"family": "g", "quota": "L-DB2E81BA Running On-Demand G and VT instances", "limit (vCPU)": 0,
              "source": "applied", "needed (vCPU)": 8, "for": "gpu-time-slicing", "status": "fail"}]
    rows = prerequisites.summary(local, where, quota)
    assert rows[-1]["area"] == "quota" and "request-service-quota-increase" in rows[-1]["detail"]
    with pytest.raises(ChecksFailed, match="1 check.*g instances"):
        require_pass(rows, "prerequisites", name_column="check")
    require_pass(rows[:2], "prerequisites")


@pytest.mark.sandbox
def test_sandbox_services_started_if_needed(tmp_path, monkeypatch):
    """Starts (and stops) a sandbox of its own: the session's shared services are left alone."""
    import eks_hub_sandbox as sandbox

    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path))

    rows = prerequisites.service_rows(resolve(target="sandbox"))
    try:
        by_check = {r["check"]: r for r in rows}
        assert by_check["sandbox AWS (moto + EKS layer)"]["status"] == "pass"
        assert sandbox.is_up("aws")
        assert prerequisites.service_rows(resolve(target="aws")) == []
    finally:
        sandbox.down()


@pytest.mark.sandbox
def test_cost_note_says_the_sandbox_is_free_and_aws_is_not():
    from eks_hub_runbook import cost

    estimate = cost.Estimate("us-west-2", "price table (us-west-2, 2026-11-28)", "",
                             [{"item": "EKS control plane", "USD/h": 0.1}],
                             [{"profile": "gpu-time-slicing", "node": "g5.2xlarge", "node (USD/h)": 1.212,
                               "users per node": 4, "USD/h per user": 0.303}])
    sandbox = prerequisites.cost_note(resolve(target="sandbox"), estimate)
    assert "$0.10/h with nobody logged in" in sandbox and "about $1.31/h" in sandbox
    assert "sandbox itself costs nothing" in sandbox
    aws = prerequisites.cost_note(resolve(target="aws"), estimate)
    assert "costs nothing" not in aws and "price table (us-west-2, 2026-11-28)" in aws

"""The benchmark harness stays working: a quick run on recorded data, and its parsing.

Structure only: timings are never asserted (they belong in benchmarks/results.md).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks import report, suite, tfevents
from benchmarks.harness import REPO_ROOT, Item

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "benchmarks"


def _event(kind: str, stamp: str, address: str = "", action: str = "create", resource_type: str = "") -> dict:
    hook = {"resource": {"addr": address, "resource_type": resource_type}, "action": action} if address else {}
    return {"type": kind, "@timestamp": f"2025-01-28T14:00:{stamp}+00:00", "hook": hook}


def test_quick_run_writes_the_table_and_json(tmp_path):
    out = tmp_path / "results"
    process = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stdout + process.stderr
    assert "MEASURE" in process.stdout and "RATIO" in process.stdout

    data = json.loads((out / "results.json").read_text())
    assert data["mode"] == "quick" and data["machine"]["cores"] >= 1
    numbers = [item["number"] for item in data["items"]]
    assert numbers == [1, 3, 4]
    for item in data["items"]:
        assert not item["error"]
        for row in item["rows"]:
            assert set(row) >= {"item", "measure", "ours_s", "bare_s", "ratio", "note"}
    deploy = data["items"][0]
    assert deploy["rows"][0]["ratio"] is not None
    breakdown = deploy["details"]["breakdown"][0]
    assert set(breakdown) >= {"wall_s", "startup_s", "plan_s", "provider_s", "core_s", "slowest"}
    assert breakdown["operations"] > 0
    assert deploy["details"]["replay"][0]["lines"] > 0
    assert data["items"][2]["details"]["stages"], "the stage table of the recorded notebook was not parsed"

    markdown = (out / "results.md").read_text()
    assert "## Summary" in markdown and "| item | measure | ours |" in markdown


def test_breakdown_splits_wall_time_into_parts():
    events = [
        _event("version", "00.000000"),
        _event("apply_start", "01.000000", "aws_vpc.this", resource_type="aws_vpc"),
        _event("apply_start", "02.000000", "aws_sqs_queue.q", resource_type="aws_sqs_queue"),
        _event("apply_complete", "05.000000", "aws_vpc.this", resource_type="aws_vpc"),
        _event("apply_complete", "08.000000", "aws_sqs_queue.q", resource_type="aws_sqs_queue"),
        _event("change_summary", "08.500000"),
    ]
    start = tfevents.parse_timestamp(events[0]["@timestamp"]) - 2.0
    split = tfevents.breakdown(events, start, start + 11.0)
    assert split.operations == 2
    assert abs(split.startup + split.plan + split.provider + split.core - split.wall) < 1e-6
    assert split.provider < 8.0  # overlapping operations count once
    assert [op["address"] for op in split.slowest] == ["aws_sqs_queue.q", "aws_vpc.this"]
    assert split.slowest[0]["wait"], "a known provider wait is named"


def test_stage_table_and_cell_kinds():
    rows = suite.stage_table(FIXTURES / "02_deploy-stages.ipynb")
    assert [r["stage"] for r in rows] == ["network", "cluster", "everything"]
    assert all(r["command"] == "apply" and r["seconds"] >= 0 for r in rows)
    assert suite.cell_kind('with nb.Progress("terraform apply", deploy.stage_names()) as progress:') == "terraform apply"
    assert suite.cell_kind("convergence = deploy.convergence_rows(ws)") == "plan after apply"


def test_summary_names_items_that_were_not_measured():
    failed = Item(6, "Sandbox cluster", error="kube_bench missing")
    done = Item(1, "Deploy")
    done.row("apply", 12.0, 10.0, ours_label="02", bare_label="bare")
    rows = report.summary_rows([done, failed])
    assert rows[0]["ratio"] == "1.20x" and rows[0]["ours"] == "12.0 s (02)"
    assert rows[1]["note"].startswith("NOT MEASURED")
    assert "| 6 |" in report.markdown_table(rows, report.COLUMNS)


def test_a_failed_bare_stage_says_what_terraform_said(tmp_path):
    """make bench stopped at "bare apply failed ... see <file>", a file the private state folder's
    removal then took: the error names terraform's own diagnostics."""
    from types import SimpleNamespace

    from benchmarks import tfbare

    fake = tmp_path / "terraform"
    fake.write_text("#!/bin/sh\necho '{\"@timestamp\":\"2026-12-07T15:50:00.000000Z\",\"type\":\"diagnostic\","
                    "\"diagnostic\":{\"severity\":\"error\",\"summary\":\"creating EKS Add-On (x:coredns)\","
                    "\"detail\":\"StatusCode: 503\",\"address\":\"aws_eks_addon.this\"}}'\nexit 1\n")
    fake.chmod(0o755)
    workspace = SimpleNamespace(directory=tmp_path, env=lambda: {"PATH": f"{tmp_path}:/usr/bin:/bin"})
    with pytest.raises(RuntimeError, match=r"error \(aws_eks_addon.this\): creating EKS Add-On \(x:coredns\): StatusCode: 503"):
        tfbare.run(workspace, "everything", ["apply", "-input=false"], tmp_path / "logs")

"""Parsing Terraform's -json event stream into progress, log lines and plan rows."""

from __future__ import annotations

from pathlib import Path

from eks_hub_runbook.terraform import PlannedChange, describe, parse_line
from eks_hub_runbook.terraform.commands import Plan, RunResult
from eks_hub_runbook.terraform.progress import RunProgress

FIXTURE = Path(__file__).parent / "fixtures" / "terraform" / "apply_events.jsonl"


def events():
    return [parse_line(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


def test_parse_keeps_address_action_and_diagnostics():
    parsed = events()
    kinds = [e.kind for e in parsed]
    assert kinds[0] == "version" and kinds[-1] == "text"
    complete = next(e for e in parsed if e.kind == "apply_complete")
    assert (complete.address, complete.action, complete.elapsed, complete.id_value) == ("aws_vpc.this", "create", 10, "vpc-0123")
    diagnostic = next(e for e in parsed if e.kind == "diagnostic").diagnostic
    assert diagnostic.severity == "error" and diagnostic.address == "aws_subnet.private[0]"
    assert "RequestLimitExceeded" in diagnostic.text()
    summary = next(e for e in parsed if e.kind == "change_summary")
    assert summary.changes["add"] == 2


def test_readable_lines():
    lines = [describe(e) for e in events()]
    assert "aws_vpc.this: creating..." in lines
    assert "aws_vpc.this: created in 10s [vpc-0123]" in lines
    assert "aws_subnet.private[0]: FAILED after 1s" in lines
    assert "plan: create aws_vpc.this" in lines
    assert not any(line and "data.aws_partition" in line for line in lines)  # reads are noise
    assert not any(line and "Still creating" in line for line in lines)  # progress ticks are the bar's job


def test_progress_counts_and_log_file(tmp_path):
    seen = []
    progress = RunProgress("apply", tmp_path / "terraform.log", callback=seen.append, bar=False)
    for event in events():
        progress.handle(event)
    progress.close()
    assert (progress.total, progress.done, progress.failed) == (2, 1, 1)
    log = (tmp_path / "terraform.log").read_text()
    assert "aws_vpc.this: created in 10s" in log and "not json: a plain stderr line" in log
    assert seen[-1].startswith("=== apply: 1 done, 1 failed")


def test_progress_bar_renders_resource_counts(tmp_path, capsys):
    progress = RunProgress("apply", tmp_path / "terraform.log", callback=None, bar=True)
    for event in events():
        progress.handle(event)
    progress.close()
    err_and_out = "".join(capsys.readouterr())
    assert "2/2" in err_and_out and "done=1 failed=1" in err_and_out


def test_errors_come_from_diagnostics_or_plain_error_lines():
    result = RunResult(1, events())
    assert len(result.errors) == 1 and "RequestLimitExceeded" in result.errors[0]
    plain = RunResult(1, [parse_line(line) for line in ("│ Error: Failed to query available provider packages", "│ ", "│ Could not retrieve the list")])
    assert plain.errors == ["Error: Failed to query available provider packages Could not retrieve the list"]


def test_plan_rows_for_a_dataframe():
    plan = Plan([PlannedChange("aws_vpc.this", "create"), PlannedChange("aws_eks_cluster.this", "update")], None, 1.0)
    assert plan.has_changes
    assert plan.counts() == {"create": 1, "update": 1}
    assert plan.rows()[0] == {"address": "aws_vpc.this", "action": "create"}
    assert not Plan([], None, 0.5).has_changes


def test_expected_staging_warnings_shrink_to_one_line():
    warning = parse_line('{"type":"diagnostic","@message":"Warning","diagnostic":{"severity":"warning",'
                         '"summary":"Resource targeting is in effect","detail":"You are creating a plan with -target..."}}')
    follow_up = parse_line('{"type":"diagnostic","@message":"Warning","diagnostic":{"severity":"warning",'
                           '"summary":"Applied changes may be incomplete","detail":"..."}}')
    other = parse_line('{"type":"diagnostic","@message":"Warning","diagnostic":{"severity":"warning",'
                       '"summary":"Argument is deprecated","detail":"use x instead","address":"aws_x.y"}}')
    assert describe(warning) == "note: -target in effect (staged run)"
    assert describe(follow_up) is None
    assert describe(other) == "warning (aws_x.y): Argument is deprecated: use x instead"

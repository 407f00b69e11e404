"""terraform/commands.py without AWS: outputs and ids read from the local state, init when terraform asks
for it, and the plan run in the background (02's convergence check) with what makes it stand or not."""

from __future__ import annotations

import json
import stat
import textwrap

import pytest

from eks_hub_runbook.errors import TerraformError
from eks_hub_runbook.terraform import RetryPolicy, commands
from eks_hub_runbook.terraform.workspace import Workspace

PLANNED = ('{"type":"planned_change","@message":"aws_vpc.this: Plan to update",'
           '"change":{"resource":{"addr":"aws_vpc.this"},"action":"update"}}')
NO_INIT = ('{"type":"diagnostic","@message":"x","diagnostic":{"severity":"error","summary":"Inconsistent dependency '
           'lock file","detail":"To make the initial dependency selections that will initialize the dependency lock '
           'file, run: terraform init"}}')


@pytest.fixture
def workspace(tmp_path):
    directory = tmp_path / "ws"
    (directory / ".terraform" / "providers").mkdir(parents=True)
    (directory / ".terraform.lock.hcl").write_text("# lock\n")
    (directory / "main.tf").write_text('resource "aws_vpc" "this" {}\n')
    (directory / "terraform.tfvars.json").write_text('{"name": "demo"}\n')
    return Workspace("demo", "aws", "us-west-2", directory, tmp_path, tmp_path / "cli.tfrc", {})


def fake_terraform(tmp_path, monkeypatch, body: str):
    """A stand-in terraform: appends its arguments (after -chdir) to ``calls``, then runs ``body`` (sh)."""
    calls = tmp_path / "calls"
    script = tmp_path / "terraform"
    script.write_text("#!/bin/sh\nshift\necho \"$*\" >> " + str(calls) + "\n" + textwrap.dedent(body))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(commands, "TERRAFORM", str(script))
    return lambda: [line.split()[0] for line in calls.read_text().splitlines()] if calls.exists() else []


def write_state(workspace, outputs=None, resources=None, version=4):
    workspace.state_file.write_text(json.dumps({
        "version": version, "terraform_version": "1.11.4", "serial": 7, "lineage": "l-1",
        "outputs": outputs or {}, "resources": resources or []}))


# ---- read from the state file: no terraform process ---------------------------------------------


def test_outputs_come_from_the_local_state_with_sensitive_ones_masked(tmp_path, workspace, monkeypatch):
    calls = fake_terraform(tmp_path, monkeypatch, "exit 1\n")
    assert commands.output(workspace) == {} and calls() == []  # before the first apply: none, and no process
    write_state(workspace, outputs={"cluster_name": {"value": "demo", "type": "string"},
                                    "private_subnet_ids": {"value": ["subnet-1"], "type": ["list", "string"]},
                                    "client_secret": {"value": "s3cr3t", "type": "string", "sensitive": True}})
    outputs = commands.output(workspace)
    assert outputs == {"cluster_name": "demo", "private_subnet_ids": ["subnet-1"], "client_secret": "s3cr3t"}
    assert outputs.public()["client_secret"] == commands.MASK and "s3cr3t" not in repr(outputs)
    assert calls() == []


def test_outputs_of_another_backend_or_format_are_asked_of_terraform(tmp_path, workspace, monkeypatch):
    calls = fake_terraform(tmp_path, monkeypatch, """\
        echo '{"cluster_name": {"value": "from-cli", "sensitive": false, "type": "string"}}'
        """)
    write_state(workspace, outputs={"cluster_name": {"value": "from-file", "type": "string"}}, version=3)
    assert commands.output(workspace) == {"cluster_name": "from-cli"} and calls() == ["output"]
    write_state(workspace, outputs={"cluster_name": {"value": "from-file", "type": "string"}})
    (workspace.directory / ".terraform" / "terraform.tfstate").write_text('{"backend": {"type": "s3"}}')
    assert commands.output(workspace) == {"cluster_name": "from-cli"} and calls() == ["output", "output"]


def test_state_ids_are_the_managed_resources_ids_and_arns(tmp_path, workspace, monkeypatch):
    calls = fake_terraform(tmp_path, monkeypatch, "exit 1\n")
    assert commands.state_ids(workspace) == set()
    write_state(workspace, resources=[
        {"mode": "managed", "type": "aws_vpc", "name": "this", "instances": [{"attributes": {"id": "vpc-1", "arn": "arn:vpc"}}]},
        {"mode": "managed", "type": "aws_kms_key", "name": "eks", "instances": [{"attributes": {"id": "k-1", "arn": ""}}]},
        {"mode": "data", "type": "aws_caller_identity", "name": "current", "instances": [{"attributes": {"id": "123"}}]}])
    assert commands.state_ids(workspace) == {"vpc-1", "arn:vpc", "k-1"} and calls() == []


# ---- init when terraform asks for it -------------------------------------------------------------


def test_a_run_that_needs_init_gets_it_once_and_is_not_counted_as_an_attempt(tmp_path, workspace, monkeypatch):
    calls = fake_terraform(tmp_path, monkeypatch, f"""\
        case "$1" in
          init) touch {tmp_path}/initialized; exit 0 ;;
        esac
        if [ ! -e {tmp_path}/initialized ]; then echo '{NO_INIT}'; exit 1; fi
        echo '{PLANNED}'
        """)
    plan = commands.plan(workspace, log=None, retry=RetryPolicy(1, 0.01, 1))
    assert [c.address for c in plan.changes] == ["aws_vpc.this"]
    assert calls() == ["plan", "init", "plan"]


def test_a_run_that_still_needs_init_after_init_fails(tmp_path, workspace, monkeypatch):
    calls = fake_terraform(tmp_path, monkeypatch, f"""\
        case "$1" in init) exit 0 ;; esac
        echo '{NO_INIT}'; exit 1
        """)
    with pytest.raises(TerraformError, match="Inconsistent dependency lock file"):
        commands.apply(workspace, log=None, bar=False, retry=RetryPolicy(3, 0.01, 1))
    assert calls() == ["apply", "init", "apply"]


def test_plans_run_with_the_targets_parallelism(tmp_path, workspace, monkeypatch):
    fake_terraform(tmp_path, monkeypatch, "exit 0\n")
    commands.plan(workspace, log=None)
    assert f"-parallelism={commands._parallelism(workspace)}" in (tmp_path / "calls").read_text()


# ---- the plan in the background ------------------------------------------------------------------


def test_a_background_plan_stands_while_nothing_it_read_changed(tmp_path, workspace, monkeypatch):
    fake_terraform(tmp_path, monkeypatch, f"sleep 0.2\necho '{PLANNED}'\n")
    write_state(workspace)
    pending = commands.BackgroundPlan(workspace)
    assert not pending.done()  # it runs while the caller goes on
    plan = pending.result()
    assert pending.done() and [c.address for c in plan.changes] == ["aws_vpc.this"]
    assert "=== plan (after apply)" in (workspace.log_dir / "terraform.log").read_text()
    assert pending.result(max_age=0.0) is None  # too old to stand for a plan made now


@pytest.mark.parametrize("change", ["state", "variables", "configuration", "new file"])
def test_a_background_plan_does_not_stand_once_its_inputs_changed(tmp_path, workspace, monkeypatch, change):
    fake_terraform(tmp_path, monkeypatch, f"echo '{PLANNED}'\n")
    write_state(workspace)
    pending = commands.BackgroundPlan(workspace)
    if change == "state":
        write_state(workspace, outputs={"x": {"value": 1, "type": "number"}})
    elif change == "variables":
        (workspace.directory / "terraform.tfvars.json").write_text('{"name": "other"}\n')
    elif change == "configuration":
        (workspace.directory / "main.tf").write_text('resource "aws_vpc" "that" {}\n')
    else:
        (workspace.directory / "extra.tf").write_text("# more\n")
    assert pending.result() is None


def test_a_failed_background_plan_leaves_it_to_a_plan_made_now(tmp_path, workspace, monkeypatch):
    fake_terraform(tmp_path, monkeypatch, """\
        echo '{"type":"diagnostic","@message":"x","diagnostic":{"severity":"error","summary":"Invalid thing"}}'
        exit 1
        """)
    assert commands.BackgroundPlan(workspace, retry=RetryPolicy(1, 0.01, 1)).result() is None

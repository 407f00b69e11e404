"""Reliability on the sandbox: runs that break half way are recorded truthfully and can be
finished or cleaned up.

- the local AWS dies in the middle of `terraform apply`: the run fails with a clear message;
  after restarting it, `runbook run --resume` completes with no duplicate resources;
- the kernel is killed in the middle of a notebook: the record shows where; resume completes;
- cleanup after a partial deploy leaves nothing; cleanup a second time is a no-op.

Every scenario drives the real `runbook` command in a subprocess, against a private sandbox
(own state folder and outputs), which is stopped at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from eks_hub_runbook import environment
from eks_hub_runbook.records import archive

pytestmark = [pytest.mark.sandbox, pytest.mark.terraform, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
KEEP = ["-p", "keep_sandbox", "True"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private state folder (own sandbox) and outputs folder, for this module's runs."""
    root = tmp_path_factory.mktemp("reliability")
    with environment.isolated(root):
        started = subprocess.run([sys.executable, "-m", "eks_hub_runbook.cli", "sandbox", "up"], cwd=REPO,
                                 env=dict(os.environ), capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stdout + started.stderr
        yield dict(os.environ)


def run(runbook_process, *args: str, timeout: float = 1800) -> tuple[int, str]:
    runbook = runbook_process(*args)
    return runbook.wait(timeout), runbook.output


def resources(deployment: str) -> list[dict[str, str]]:
    from eks_hub_runbook.aws import leftovers

    return leftovers.scan(deployment, "sandbox", "us-west-2")


def duplicates(rows: list[dict[str, str]]) -> list[tuple]:
    """Resources that exist twice: same service, type and name (ids differ)."""
    counts = Counter((r["service"], r["type"], r["name"]) for r in rows if r.get("name"))
    return [key for key, count in counts.items() if count > 1]


def test_local_aws_killed_mid_apply_then_resume_completes_without_duplicates(env, runbook_process, aws_pid):
    deploy = runbook_process("run", "02", "-p", "deployment", "rel-aws", "--no-report")
    deploy.wait_for(lambda: len(resources("rel-aws")) >= 3, "the apply to create resources")
    os.kill(aws_pid(), signal.SIGKILL)
    code = deploy.wait()
    assert code == 1, deploy.output
    run_record = archive.find_run("latest")
    assert run_record.status == "failed"
    failure = run_record.data["failure"]
    assert failure["notebook"] == "02_deploy" and failure["ename"] == "TerraformError", failure
    assert "terraform apply" in failure["evalue"] or "terraform" in failure["evalue"], failure
    assert "runbook run --resume" in deploy.output and "02_deploy" in deploy.output

    code, out = run(runbook_process, "sandbox", "up", timeout=300)
    assert code == 0, out
    code, out = run(runbook_process, "run", "--resume", "-p", "deployment", "rel-aws", "--no-report")
    assert code == 0, out
    record = archive.find_run(run_record.run_id)
    assert record.status == "succeeded" and record.notebook("02_deploy")["attempt"] == 2
    rows = resources("rel-aws")
    assert rows and duplicates(rows) == [], duplicates(rows)


def test_kernel_killed_mid_notebook_is_recorded_then_resume_completes(env, runbook_process):
    deploy = runbook_process("run", "02", "-p", "deployment", "rel-aws", "--no-report")
    # wait until a cell after the parameters and validation cells is running
    deploy.wait_for(lambda: sum("[02_deploy " in line for line in deploy.lines) >= 5 and deploy.kernel() is not None,
                    "02_deploy to be under way")
    running = [line for line in deploy.lines if line.startswith("[02_deploy ")][-1]
    deploy.kernel().kill()
    assert deploy.wait() == 1, deploy.output
    record = archive.find_run("latest")
    assert record.status == "killed"
    entry = record.notebook("02_deploy")
    failure = entry["failure"]
    assert failure["ename"] == "DeadKernelError" and "kernel died" in failure["reason"]
    number = int(running.split()[1].split("/")[0])
    code_cells = entry["cells"]
    # The cell that was running when the kernel died: the one last printed, or a later one
    # if the kernel moved on between printing and the kill (the test cannot stop it there).
    stopped = [i for i, c in enumerate(code_cells) if c["status"] == "failed"]
    assert len(stopped) == 1 and stopped[0] >= number - 1, [c["status"] for c in code_cells]
    assert code_cells[stopped[0]]["index"] == failure["cell_index"]
    assert all(c["status"] == "completed" for c in code_cells[: number - 1])
    assert all(c["status"] == "pending" for c in code_cells[stopped[0] + 1:])
    assert "killed at 02_deploy" in deploy.output

    code, out = run(runbook_process, "run", "--resume", "--run", record.run_id, "--no-report")
    assert code == 0, out
    assert archive.find_run(record.run_id).status == "succeeded"
    assert duplicates(resources("rel-aws")) == []


def test_cleanup_after_a_partial_deploy_leaves_nothing_and_twice_is_a_no_op(env, runbook_process):
    deploy = runbook_process("run", "02", "-p", "deployment", "rel-partial", "--no-report")
    deploy.wait_for(lambda: len(resources("rel-partial")) >= 3, "the apply to create resources")
    deploy.process.send_signal(signal.SIGTERM)
    assert deploy.wait() == 130, deploy.output
    assert "asking terraform to stop and save its state" in deploy.output, "terraform was not stopped gracefully"
    assert archive.find_run("latest").status == "interrupted"
    assert resources("rel-partial"), "a partial deploy left resources to clean up"

    for attempt in (1, 2):
        code, out = run(runbook_process, "run", "05", "-p", "deployment", "rel-partial", "-p", "confirm", "True", *KEEP, "--no-report")
        assert code == 0, f"cleanup #{attempt}:\n{out}"
        assert resources("rel-partial") == [], f"cleanup #{attempt} left resources"
    record = archive.find_run("latest")
    assert record.status == "succeeded"

    code, out = run(runbook_process, "run", "05", "-p", "deployment", "rel-aws", "-p", "confirm", "True", *KEEP, "--no-report")
    assert code == 0, out
    assert resources("rel-aws") == []

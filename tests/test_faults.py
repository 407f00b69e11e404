"""The fault matrix on the sandbox: SIGKILL at every point of a deployment's life, then resume and cleanup.

One deployment lifecycle, chained so the whole matrix costs one deployment: terraform SIGKILLed
(not SIGINT: no chance to save its state) in the network stage (right after the VPC is created,
with subnets, the EFS security group and the KMS key in flight), mid cluster (the node group being
created), in the add-ons (one being created); the local AWS SIGKILLed as the last stage starts and
brought back at once (moto loses everything: refresh drops it from the state, the apply recreates
it); the kernel SIGKILLed while the platform installs (terraform done). After each, `runbook run
--resume` goes on; at the end the run succeeds (02's convergence check: the plan after the apply
shows no changes), each resource exists once and nothing tagged for the deployment is missing from
the state. Then 05's kernel is SIGKILLed mid-destroy and 05 run again: the leftovers scan is empty.

Each point waits for its trigger in the terraform log the runbook writes as terraform's ``-json``
events arrive (``<state>/deployments/<name>/terraform-sandbox/logs/terraform.log``), polled every
20 ms, so it is deterministic. The matrix (point, what was orphaned - tagged for the deployment but
not in the state -, what the resume adopted or removed, the final leftovers) is printed and attached
to the test's report (``record_property``).
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

pytestmark = [pytest.mark.sandbox, pytest.mark.terraform, pytest.mark.slow, pytest.mark.faults]

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENT = "faults"
REGION = "us-west-2"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A private state folder (own sandbox) and outputs folder."""
    root = tmp_path_factory.mktemp("faults")
    with environment.isolated(root):
        assert runbook_cli("sandbox", "up").returncode == 0
        yield dict(os.environ)


def runbook_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eks_hub_runbook.cli", *args], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=timeout)


def scan() -> list[dict[str, str]]:
    from eks_hub_runbook.aws import leftovers

    return leftovers.scan(DEPLOYMENT, "sandbox", REGION)


def state_ids() -> set[str]:
    """Every ``id`` and ``arn`` terraform's state holds, as the resume will see it: the state file as it
    was left or, when the kill left it empty or cut short, the backup the resume restores."""
    from eks_hub_runbook import paths
    from eks_hub_runbook.terraform import workspace

    directory = paths.deployment_dir(DEPLOYMENT, create=False) / "terraform-sandbox"
    document = (workspace.load_state(directory / workspace.STATE_FILE)
                or workspace.load_state(directory / workspace.STATE_BACKUP) or {})
    return {str(attributes[key]) for resource in document.get("resources", []) if resource.get("mode") == "managed"
            for instance in resource.get("instances") or [] for attributes in [instance.get("attributes") or {}]
            for key in ("id", "arn") if attributes.get(key)}


def orphans() -> list[dict[str, str]]:
    """What terraform created in the local AWS (the deployment's own tag, not a controller's) that its
    state does not hold."""
    from eks_hub_runbook.aws.tags import DEPLOYMENT_TAG

    known = state_ids()
    return [row for row in scan() if row["match"] == f"tag {DEPLOYMENT_TAG}"
            and row["id"] not in known and row["name"] not in known]


def summary(rows) -> str:
    counts = Counter(f"{r['service']}/{r['type']}" for r in rows)
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"


def duplicates(rows) -> list[tuple]:
    counts = Counter((r["service"], r["type"], r["name"]) for r in rows if r.get("name"))
    return [key for key, count in counts.items() if count > 1]


def client(service: str):
    from eks_hub_runbook.aws import session

    return session.client(service, "sandbox", REGION)


class TerraformLog:
    """The deployment's terraform log (``<state>/deployments/<name>/terraform-sandbox/logs/terraform.log``),
    where the runbook writes one line per event of terraform's ``-json`` stream as it happens
    (``aws_vpc.this: created in 0s [vpc-...]``, ``aws_eks_node_group.core: creating...``, ``=== apply: everything``).
    Read from where it ended when this object was made, so one run's lines only."""

    def __init__(self):
        from eks_hub_runbook import paths

        self.path = paths.deployment_dir(DEPLOYMENT, create=False) / "terraform-sandbox" / "logs" / "terraform.log"
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.lines: list[str] = []
        self._partial = ""

    def read(self) -> list[str]:
        if self.path.exists():
            with self.path.open(encoding="utf-8") as handle:
                handle.seek(self.offset)
                text = handle.read()
                self.offset = handle.tell()
            text, self._partial = self._partial + text, ""
            *complete, rest = text.split("\n")
            self._partial = rest
            self.lines.extend(complete)
        return self.lines

    def saw(self, start: str, contains: str = "") -> bool:
        """A line starting with ``start`` (and containing ``contains``) was written."""
        return any(line.startswith(start) and contains in line for line in self.read())

    def after(self, marker: str, start: str) -> bool:
        """A line starting with ``start`` came after the line starting with ``marker``."""
        lines = self.read()
        marks = [i for i, line in enumerate(lines) if line.startswith(marker)]
        return bool(marks) and any(line.startswith(start) for line in lines[marks[0] + 1:])


def cell_started(runbook, source: str) -> bool:
    """The runner announced the code cell whose first line starts with ``source``
    (``[02_deploy 14/29] with nb.Progress("platform", ...``)."""
    return any(line.startswith("[") and f"] {source}" in line for line in runbook.lines)


def test_sigkill_at_every_point_then_resume_converges_and_cleanup_leaves_nothing(env, record_property, capsys,
                                                                                  runbook_process, aws_pid):
    matrix: list[dict[str, str]] = []

    def point(name: str, args: tuple[str, ...], trigger, kill, what: str) -> None:
        log = TerraformLog()
        run = runbook_process(*args)
        run.wait_for(lambda: trigger(log, run), what, every=0.02)  # a file read: cheap, windows are short
        kill(run)
        code = run.wait()
        assert code != 0, run.output[-3000:]
        if name == "local AWS":
            matrix.append({"point": name, "orphaned": "(moto lost its state)", "rows": []})
        else:
            left = orphans()
            matrix.append({"point": name, "orphaned": summary(left), "rows": left})

    def kill_terraform(run) -> None:
        run.kill_terraform()

    def kill_aws(run) -> None:
        os.kill(aws_pid(), signal.SIGKILL)

    def kill_kernel(run) -> None:
        kernels = run.descendants("ipykernel")
        assert kernels, "no kernel to kill"
        for kernel in kernels:
            kernel.kill()

    first = ("run", "02", "-p", "deployment", DEPLOYMENT, "--no-report")
    resume = ("run", "--resume", "-p", "deployment", DEPLOYMENT, "--no-report")
    # early network: the VPC is created, its subnets, gateways and the foundations are in flight
    point("terraform: network", first, lambda log, _: log.saw("aws_vpc.this: created"), kill_terraform,
          "the VPC created")
    # mid cluster: the cluster is ACTIVE (in the state), its node group being created (in AWS, not in the state)
    point("terraform: mid cluster", resume, lambda log, _: log.saw("aws_eks_node_group.core: creating"), kill_terraform,
          "the node group being created")
    # add-ons: an add-on being created
    point("terraform: add-ons", resume, lambda log, _: log.saw("aws_eks_addon.this[", ": creating"), kill_terraform,
          "an add-on being created")
    # the kernel, in the platform install: the resume's apply finished (what the kills orphaned is adopted,
    # or deleted as a stray once the state holds terraform's own copy: deploy.remove_strays)
    point("kernel: platform", resume,
          lambda log, run: log.saw("=== apply: everything:") and cell_started(run, 'with nb.Progress("platform"'),
          kill_kernel, "the platform install")
    rows = scan()
    known, existing = state_ids(), {r["id"] for r in rows}
    for entry in matrix:
        adopted = [r for r in entry["rows"] if r["id"] in known or r["name"] in known]
        removed = [r for r in entry["rows"] if r["id"] not in existing]
        entry["resume"] = f"adopted: {summary(adopted)}; removed as strays: {summary(removed)}"
        assert len(adopted) + len(removed) == len(entry["rows"]), (entry["point"], entry["rows"], rows)
    assert orphans() == [], "the resume left resources terraform does not know"
    assert duplicates(rows) == [], duplicates(rows)

    # the local AWS, as the resume's terraform starts the last stage (refreshing): SIGKILLed (moto loses
    # everything) and started again at once, as a crashed service comes back; the provider's retries
    # outlast the restart, the refresh finds nothing of what the state holds and drops it, the apply
    # recreates it, the platform is installed on the new cluster. (Killed while a create is in flight
    # instead, the provider waits out its read-after-create timeouts - 2 to 3 minutes for IAM and KMS -
    # and so does the resume: too slow for CI.) If the run still fails, one more resume goes on.
    log = TerraformLog()
    run = runbook_process(*resume)
    run.wait_for(lambda: log.saw("=== apply: everything ("), "terraform starting the last stage", every=0.02)
    kill_aws(run)
    assert runbook_cli("sandbox", "up").returncode == 0
    survived = run.wait() == 0
    matrix.append({"point": "local AWS", "orphaned": "(moto lost its state)", "rows": [],
                   "resume": f"recreated, converged {'in the same run' if survived else 'on resume'}"})
    if not survived:
        run = runbook_process(*resume)
        assert run.wait() == 0, run.output[-5000:]
    record = archive.find_run("latest")
    assert record.status == "succeeded"
    assert record.notebook("02_deploy")["attempt"] == (5 if survived else 6), "one attempt per fault, and the last"
    rows = scan()
    assert duplicates(rows) == [], duplicates(rows)
    per_type = Counter(f"{r['service']}/{r['type']}" for r in rows)
    for kind in ("ec2/vpc", "eks/cluster", "efs/file-system"):
        assert per_type[kind] == 1, per_type
    assert Counter(r["name"] for r in rows if r["type"] == "key")[f"alias/{DEPLOYMENT}-eks-secrets"] == 1, rows
    assert client("eks").list_clusters()["clusters"] == [DEPLOYMENT]
    assert orphans() == [], "the resume left resources terraform does not know"
    # the resume's last plan showed no changes (02's convergence check passed: the run succeeded with it)

    log = TerraformLog()
    cleanup = runbook_process("run", "05", "-p", "deployment", DEPLOYMENT, "-p", "confirm", "True", "-p", "keep_sandbox", "True",
                              "--no-report")
    cleanup.wait_for(lambda: log.after("=== destroy: cluster (", "aws_"), "the cluster's destroy", every=0.02)
    kill_kernel(cleanup)
    assert cleanup.wait() != 0
    orphaned = scan()
    again = runbook_process("run", "05", "-p", "deployment", DEPLOYMENT, "-p", "confirm", "True", "-p", "keep_sandbox", "True",
                            "--no-report")
    code = again.wait()
    final = scan()
    matrix.append({"point": "kernel: 05 mid-destroy", "orphaned": summary(orphaned), "rows": orphaned,
                   "resume": f"05 again removed: {summary([r for r in orphaned if r not in final])}"})
    for entry in matrix:
        entry.setdefault("final leftovers", summary(final))

    table = "\n".join(f"{e['point']:<24} | orphaned: {e['orphaned']} | {e['resume']} | final leftovers: {e['final leftovers']}"
                      for e in matrix)
    record_property("fault_matrix", table)
    with capsys.disabled():
        print("\nfault matrix\n" + table)
    assert code == 0, again.output[-5000:]
    assert final == [], final

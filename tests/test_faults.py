"""The fault matrix on the sandbox: SIGKILL at every point of a deployment's life, then resume and cleanup.

One deployment lifecycle, chained so the whole matrix costs one deployment: terraform SIGKILLed
(not SIGINT: no chance to save its state) in the network stage, mid cluster (the EKS cluster
exists, its node group not yet), in the add-ons; the local AWS SIGKILLed mid-apply (moto loses
everything: the resume must recreate it); the kernel SIGKILLed while the platform installs (no
terraform runs). After each, `runbook run --resume` goes on; at the end the plan shows no
changes and each resource exists once. Then 05 is SIGKILLed mid-destroy and run again: nothing
is left. Each point waits for its trigger in the local AWS or the runner's output, so it is
deterministic. The matrix (point, what was orphaned, what the resume/cleanup left) is printed
and attached to the test's report (``record_property``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from eks_hub_runbook import environment
from eks_hub_runbook.records import archive

pytestmark = [pytest.mark.sandbox, pytest.mark.terraform, pytest.mark.slow]

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


class Runbook:
    """`runbook ...` in a subprocess, its output collected as it streams."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen([sys.executable, "-m", "eks_hub_runbook.cli", *args], cwd=REPO, env=dict(os.environ),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout: float = 1500) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"runbook did not finish:\n{self.output[-5000:]}") from None
        self._reader.join(timeout=10)
        return code

    def wait_for(self, predicate, what: str, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"runbook ended before {what}:\n{self.output[-5000:]}")
            if predicate():
                return
            time.sleep(0.5)
        self.process.kill()
        raise AssertionError(f"never saw {what}:\n{self.output[-5000:]}")

    def descendants(self, word: str) -> list[psutil.Process]:
        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if any(word in part for part in child.cmdline()[:3]):
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return found

    def kill_terraform(self) -> int:
        applying = [p for p in self.descendants("terraform") if p.name() == "terraform"]
        assert applying, "no terraform process to kill"
        for process in applying:
            os.kill(process.pid, signal.SIGKILL)
        return len(applying)


def scan() -> list[dict[str, str]]:
    from eks_hub_runbook.aws import leftovers

    return leftovers.scan(DEPLOYMENT, "sandbox", REGION)


def summary(rows) -> str:
    counts = Counter(f"{r['service']}/{r['type']}" for r in rows)
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"


def duplicates(rows) -> list[tuple]:
    counts = Counter((r["service"], r["type"], r["name"]) for r in rows if r.get("name"))
    return [key for key, count in counts.items() if count > 1]


def client(service: str):
    from eks_hub_runbook.aws import session

    return session.client(service, "sandbox", REGION)


def has_vpc() -> bool:
    return any(r["service"] == "ec2" and r["type"] == "vpc" for r in scan())


def cluster_without_nodes() -> bool:
    """The EKS cluster exists and its node group is not ACTIVE yet (the sandbox's node group comes up
    within seconds of the cluster, so "being created" counts too)."""
    eks = client("eks")
    for cluster in eks.list_clusters()["clusters"]:
        groups = eks.list_nodegroups(clusterName=cluster)["nodegroups"]
        if not groups or any(eks.describe_nodegroup(clusterName=cluster, nodegroupName=g)["nodegroup"]["status"] != "ACTIVE"
                             for g in groups):
            return True
    return False


def addons_creating() -> bool:
    eks = client("eks")
    return any(eks.list_addons(clusterName=c)["addons"] for c in eks.list_clusters()["clusters"])


def cell_started(runbook: Runbook, notebook: str, number: int) -> bool:
    """The runner printed ``[<notebook> <number>/<cells>]``: it counts papermill's injected-parameters cell."""
    return any(line.startswith(f"[{notebook} {number}/") for line in runbook.lines)


def aws_pid() -> int:
    import eks_hub_sandbox as sandbox

    status = next(s for s in sandbox.status() if s.name == "aws")
    assert status.running and status.pid
    return status.pid


def test_sigkill_at_every_point_then_resume_converges_and_cleanup_leaves_nothing(env, record_property, capsys):
    matrix: list[dict[str, str]] = []

    def point(name: str, runbook: Runbook, trigger, kill, what: str, terraform: bool = True) -> None:
        runbook.wait_for(lambda: (not terraform or bool(runbook.descendants("terraform"))) and trigger(), what)
        kill()
        code = runbook.wait()
        assert code != 0, runbook.output[-3000:]
        matrix.append({"point": name, "orphaned": summary(scan()) if name != "local AWS" else "(moto lost its state)"})

    run = Runbook("run", "02", "-p", "deployment", DEPLOYMENT, "--no-report")
    point("terraform: network", run, has_vpc, run.kill_terraform, "a VPC")
    steps = [
        ("terraform: mid cluster", cluster_without_nodes, "the EKS cluster without its node group"),
        ("terraform: add-ons", addons_creating, "the cluster's add-ons being created"),
    ]
    for name, trigger, what in steps:
        run = Runbook("run", "--resume", "-p", "deployment", DEPLOYMENT, "--no-report")
        point(name, run, trigger, run.kill_terraform, what)
        matrix[-1]["resumed"] = "yes"

    run = Runbook("run", "--resume", "-p", "deployment", DEPLOYMENT, "--no-report")
    point("local AWS", run, lambda: cell_started(run, "02_deploy", 9),
          lambda: os.kill(aws_pid(), signal.SIGKILL), "terraform applying the rest")
    assert runbook_cli("sandbox", "up").returncode == 0

    run = Runbook("run", "--resume", "-p", "deployment", DEPLOYMENT, "--no-report")
    point("kernel: platform", run, lambda: cell_started(run, "02_deploy", 12) and not run.descendants("terraform"),
          lambda: [k.kill() for k in run.descendants("ipykernel")], "the platform install", terraform=False)

    run = Runbook("run", "--resume", "-p", "deployment", DEPLOYMENT, "--no-report")
    assert run.wait() == 0, run.output[-5000:]
    record = archive.find_run("latest")
    assert record.status == "succeeded"
    assert record.notebook("02_deploy")["attempt"] == 6, "one attempt per fault, and the one that finished"
    rows = scan()
    assert duplicates(rows) == [], duplicates(rows)
    per_type = Counter(f"{r['service']}/{r['type']}" for r in rows)
    for kind in ("ec2/vpc",):
        assert per_type[kind] == 1, per_type
    assert client("eks").list_clusters()["clusters"] == [DEPLOYMENT] or len(client("eks").list_clusters()["clusters"]) == 1
    for entry in matrix:
        entry.setdefault("after resume", summary(rows))
    # the resume's last plan showed no changes (02's convergence check passed: the run succeeded with it)

    cleanup = Runbook("run", "05", "-p", "deployment", DEPLOYMENT, "-p", "confirm", "True", "-p", "keep_sandbox", "True",
                      "--no-report")
    cleanup.wait_for(lambda: bool(cleanup.descendants("terraform")), "the destroy")
    for kernel in cleanup.descendants("ipykernel"):
        kernel.kill()
    assert cleanup.wait() != 0
    orphaned = scan()
    again = Runbook("run", "05", "-p", "deployment", DEPLOYMENT, "-p", "confirm", "True", "-p", "keep_sandbox", "True",
                    "--no-report")
    code = again.wait()
    final = scan()
    matrix.append({"point": "kernel: 05 mid-destroy", "orphaned": summary(orphaned), "after resume": "-",
                   "final leftovers": summary(final)})
    for entry in matrix:
        entry.setdefault("final leftovers", summary(final))

    table = "\n".join(f"{e['point']:<24} | orphaned: {e['orphaned']:<60} | final: {e['final leftovers']}" for e in matrix)
    record_property("fault_matrix", table)
    with capsys.disabled():
        print("\nfault matrix\n" + table)
    assert code == 0, again.output[-5000:]
    assert final == [], final

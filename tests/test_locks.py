"""One run per deployment: the lock file, two processes, a killed holder, re-entrancy, the runner's token
(locks.py), and a second run / notebook refused at once (records/runner.py, notebook/forms.py)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from eks_hub_runbook import locks
from eks_hub_runbook.errors import DeploymentInUse
from eks_hub_runbook.records import runner
from eks_hub_runbook.records.console import Console

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNBOOK_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.delenv(locks.TOKEN_ENV, raising=False)
    return tmp_path


class Other:
    """Another process running ``code`` (with ``locks`` imported); it prints one line when ready and
    waits for stdin to close."""

    def __init__(self, code: str, env: dict[str, str] | None = None):
        script = "import sys\nfrom eks_hub_runbook import locks\n" + textwrap.dedent(code) + "\nprint('ready', flush=True)\nsys.stdin.read()\n"
        self.process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
        self.lines = []
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError("the other process ended early:\n" + "".join(self.lines))
            if line.strip() == "ready":
                break
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> str:
        out, _ = self.process.communicate("", timeout=60)
        return "".join(self.lines) + out


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_second_process_is_refused_with_who_and_since_then_a_killed_holder_is_taken_over(state):
    other = Other("locks.acquire('demo', 'runbook run 02_deploy')")
    try:
        with pytest.raises(DeploymentInUse) as refused:
            locks.acquire("demo", "runbook run 05_cleanup")
        message = str(refused.value)
        assert message.startswith(f"deployment 'demo' is in use by runbook run 02_deploy (pid {other.pid} on {socket.gethostname()}, since 20")
        assert "Z): wait for it to finish, or stop it" in message
        assert refused.value.holder.pid == other.pid and refused.value.holder.alive()
        assert locks.holder("demo").command == "runbook run 02_deploy"
        assert not locks.held_here("demo")
    finally:
        other.kill()  # SIGKILL: no chance to clean up, the file still names it

    assert json.loads(locks.lock_path("demo").read_text())["pid"] == other.pid
    assert locks.holder("demo") is None, "the OS released the dead holder's flock"
    lease = locks.acquire("demo", "runbook run --resume")
    try:
        assert lease.took_over is not None and lease.took_over.pid == other.pid and not lease.took_over.alive()
        assert f"left locked by runbook run 02_deploy (pid {other.pid}" in lease.note() and "lock taken over" in lease.note()
        assert lease.holder.pid == os.getpid() and locks.holder("demo").pid == os.getpid()
    finally:
        assert locks.release("demo")
    assert locks.lock_path("demo").read_text() == "", "a holder that ends normally leaves no holder behind"
    clean = locks.acquire("demo", "runbook run")
    assert clean.took_over is None and clean.note() is None
    locks.release("demo")


def test_reentrant_in_one_process_and_released_by_the_last_release(state):
    first = locks.acquire("demo", "runbook run")
    second = locks.acquire("demo", "notebook 02_deploy")
    assert second is first, "a second hold in the same process only counts"
    assert not locks.release("demo"), "one hold is left"
    assert run_python("""
        from eks_hub_runbook import locks
        from eks_hub_runbook.errors import DeploymentInUse
        try:
            locks.acquire('demo', 'x')
        except DeploymentInUse:
            print('refused')
    """).strip() == "refused"
    assert locks.release("demo")
    assert not locks.held_here("demo") and locks.holder("demo") is None
    assert locks.release("demo"), "releasing what is not held is harmless"


def test_the_runners_token_lets_its_notebooks_in_and_no_one_else(state):
    probe = """
        from eks_hub_runbook import locks
        from eks_hub_runbook.errors import DeploymentInUse
        try:
            lease = locks.enter_notebook('demo')
        except DeploymentInUse as exc:
            print('refused', exc.holder.command)
        else:
            print('under runner' if lease.under_runner else 'own lock')
    """
    with locks.hold("demo", "runbook run --all") as lease:
        assert os.environ[locks.TOKEN_ENV] == lease.holder.token and len(lease.holder.token) == 32
        assert run_python(probe).strip() == "under runner", "a kernel of the run inherits the token"
        assert run_python(probe, {locks.TOKEN_ENV: "f" * 32}).strip() == "refused runbook run --all"
        env = {k: v for k, v in os.environ.items() if k != locks.TOKEN_ENV}
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(probe)], capture_output=True, text=True, env=env, timeout=120)
        assert result.stdout.strip() == "refused runbook run --all", result.stderr
    assert locks.TOKEN_ENV not in os.environ
    assert run_python(probe).strip() == "own lock", "after the run a notebook takes the deployment itself"


def test_a_notebook_kernel_holds_until_its_last_cell_or_a_failing_cell(state):
    """IPython's post_run_cell hook frees the deployment when a cell fails; nb.archive frees it at the end."""
    out = run_python("""
        from IPython.core.interactiveshell import InteractiveShell
        from eks_hub_runbook import locks
        shell = InteractiveShell.instance()
        shell.run_cell("from eks_hub_runbook import notebook as nb\\n"
                       "params = nb.resolve_from({'deployment': 'demo', 'target': 'aws', 'auth': 'dummy'})")
        print('> validated', locks.held_here('demo'), locks.holder('demo').command)
        shell.run_cell("params = nb.resolve_from({'deployment': 'demo', 'target': 'aws', 'auth': 'dummy'})")  # Run All again
        shell.run_cell("1 / 0")
        print('> after a failing cell', locks.held_here('demo'))
        shell.run_cell("form = nb.ParameterForm({'deployment': 'demo', 'target': 'aws', 'auth': 'dummy'})\\n"
                       "nb.resolve_from(form)")
        print('> validated again', locks.held_here('demo'))
        shell.run_cell("nb.archive(form)")
        print('> after the last cell', locks.held_here('demo'), locks.holder('demo'))
        shell.run_cell("nb.resolve_from({'deployment': 'demo', 'target': 'aws', 'auth': 'dummy'}, lock=False)")
        print('> read-only notebook', locks.held_here('demo'))
    """)
    assert [line[2:] for line in out.splitlines() if line.startswith("> ")] == ["validated True a notebook kernel", "after a failing cell False", "validated again True",
                                "after the last cell False None", "read-only notebook False"]


def test_a_second_runbook_run_is_refused_before_it_creates_anything(state):
    other = Other("locks.acquire('fixture-busy', 'runbook run 02_deploy')")
    try:
        with pytest.raises(DeploymentInUse, match=rf"in use by runbook run 02_deploy \(pid {other.pid} on "):
            runner.run(runner.discover([str(FIXTURES / "ok.ipynb")]), {"deployment": "fixture-busy"},
                       console=Console(stream=io.StringIO()))
        assert not (state / "outputs" / "fixture-busy").exists(), "no run record was created"
    finally:
        other.close()
    run = runner.run(runner.discover([str(FIXTURES / "ok.ipynb")]), {"deployment": "fixture-busy"},
                     console=Console(stream=io.StringIO()))
    assert run.status == "succeeded" and locks.holder("fixture-busy") is None


@pytest.mark.sandbox
def test_papermill_notebook_is_refused_in_its_validation_cell(state, tmp_path):
    other = Other("locks.acquire('busy', 'runbook run 02_deploy')")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "papermill", str(REPO / "runbooks" / "02_deploy.ipynb"), str(tmp_path / "out.ipynb"),
             "-p", "deployment", "busy", "-p", "auth", "dummy", "--cwd", str(REPO / "runbooks")],
            capture_output=True, text=True, timeout=300)
    finally:
        other.close()
    assert result.returncode != 0
    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    errors = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "DeploymentInUse"
    assert f"deployment 'busy' is in use by runbook run 02_deploy (pid {other.pid}" in errors[0]["evalue"]
    failed = next(c for c in cells if c.get("outputs") and any(o["output_type"] == "error" for o in c["outputs"]))
    assert "nb.resolve_from(form)" in "".join(failed["source"]), "refused in the validation cell, before anything ran"

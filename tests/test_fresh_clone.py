"""A newcomer's first hour, for real: the repository cloned into an empty folder (so nothing
beside it can be read), the README's demo command run there, then 05_cleanup; then the user's
own papermill lines, exactly as typed (no output path), for cognito and oauth. Each must
succeed and leave no process behind.

This installs the clone's own ``.venv`` (``make setup``; pip's cache makes it a minute or two)
and deploys three times on the clone's own sandbox, so it is one of the slowest tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.sandbox, pytest.mark.terraform]

# The README's headless section, word for word (the secret for oauth is generated on the sandbox).
PAPERMILL_LINES = [
    "papermill runbooks/02_deploy.ipynb -p auth {auth}",
    "papermill runbooks/03_verify.ipynb -p auth {auth}",
    "papermill runbooks/04_gpu_sharing.ipynb -p auth {auth}",
    "papermill runbooks/05_cleanup.ipynb -p auth {auth} -p confirm True",
]


def _processes_in(folder: Path) -> list[str]:
    """Processes whose command line or working folder is inside ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cmdline and (str(folder) in cmdline or cwd.startswith(str(folder))):
            found.append(f"{proc.name}: {cmdline[:160]}")
    return found


def _kill_all_in(folder: Path) -> None:
    for line in _processes_in(folder):
        try:
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture(scope="module")
def clone():
    """The committed tree, cloned into a folder that holds nothing else."""
    top = Path(tempfile.mkdtemp(prefix="fresh-clone-"))
    path = top / "eks-hub-runbook"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(path)], check=True, timeout=120)
    assert sorted(p.name for p in top.iterdir()) == ["eks-hub-runbook"]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNBOOK_", "PYTEST", "VIRTUAL_ENV", "PYTHONPATH", "JPY_", "JUPYTER_"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO_ROOT)))
    setup = _run("make setup", path, env, timeout=1200)
    assert setup.returncode == 0, _tail(setup)
    yield path, env
    if (path / ".venv/bin/runbook").exists():
        subprocess.run([str(path / ".venv/bin/runbook"), "sandbox", "down"], cwd=path, env=env, timeout=120,
                       capture_output=True)
    _kill_all_in(path)
    shutil.rmtree(top, ignore_errors=True)


def _run(command: str, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    print(f"{command}: exit {result.returncode} in {time.monotonic() - started:.0f} s")
    return result


def _tail(result: subprocess.CompletedProcess) -> str:
    return f"\n--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"


def test_make_demo_then_cleanup_in_a_fresh_clone(clone):
    path, env = clone
    demo = _run("make demo", path, env, timeout=1800)
    assert demo.returncode == 0, _tail(demo)
    assert "The hub is running: http://127.0.0.1:" in demo.stdout
    cleanup_line = next(line.strip() for line in demo.stdout.splitlines() if "runbook run 05_cleanup" in line)
    cleanup = _run(f".venv/bin/{cleanup_line}", path, env, timeout=900)
    assert cleanup.returncode == 0, _tail(cleanup)
    assert _processes_in(path) == [], "processes left after 05_cleanup"
    runs = sorted((path / "outputs" / "jupyterhub-on-eks").iterdir())
    assert len(runs) == 2 and all(json.loads((r / "run.json").read_text())["status"] == "succeeded" for r in runs)


@pytest.mark.parametrize("auth", ["cognito", "oauth"])
def test_the_users_papermill_lines_as_typed(clone, auth):
    path, env = clone
    env = {**env, "PATH": f"{path / '.venv/bin'}{os.pathsep}{env['PATH']}"}  # an activated environment
    env.pop("RUNBOOK_OAUTH_CLIENT_SECRET", None)
    for line in PAPERMILL_LINES:
        command = line.format(auth=auth)
        result = _run(command, path, env, timeout=900)
        assert result.returncode == 0, command + _tail(result)
        executed = json.loads(result.stdout)  # no output path: papermill writes the notebook to stdout
        assert not executed["metadata"]["papermill"]["exception"], command
    assert _processes_in(path) == [], f"processes left after the {auth} lines"

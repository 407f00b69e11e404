"""nbval regression on the golden notebooks (tests/golden/<variant>/, made by `make golden`).

nbval re-executes each golden notebook in a fresh kernel (the stored injected-parameters
cell reproduces the golden run's parameters) against a private sandbox, and compares
every cell's output with the stored one after `nbval_sanitize.cfg`. The notebooks of a
variant run in order in one pytest process, so later notebooks find what earlier ones
recorded, and 05_cleanup tears everything down again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eks_hub_runbook.records import golden, runner

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"
RUNBOOKS = REPO / "runbooks"


def _runbooks():
    return runner.discover(None, all_notebooks=True, notebook_dir=RUNBOOKS) if list(RUNBOOKS.glob("*.ipynb")) else []


def _goldens(variant: str) -> list[Path]:
    paths = sorted((GOLDEN / variant).glob("*.ipynb"))
    if not paths:
        pytest.fail(f"no golden notebooks in tests/golden/{variant}: run `make golden`")
    return paths


def nbval(notebooks: list[Path], root: Path, extra_env: dict[str, str] | None = None, timeout: float = 3600):
    """Run `pytest --nbval` on ``notebooks`` (in order) with a private state folder and sandbox."""
    env = {**os.environ, "RUNBOOK_STATE_DIR": str(root / "state"), "RUNBOOK_OUTPUTS_DIR": str(root / "outputs"),
           "RUNBOOK_TEST_STATE_DIR": str(root / "state"),  # for the suite's conftest, which the nested run loads
           **(extra_env or {})}
    env.pop("PYTEST_XDIST_WORKER", None)
    argv = [sys.executable, "-m", "pytest", "--nbval", *map(str, notebooks),
            "--nbval-sanitize-with", str(GOLDEN / "nbval_sanitize.cfg"), "--nbval-cell-timeout", "1800",
            "-p", "no:cacheprovider", "-o", "addopts=", "-q", "--color=no"]
    try:
        return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        subprocess.run([sys.executable, "-m", "eks_hub_runbook.cli", "sandbox", "down"], cwd=REPO, env=env,
                       capture_output=True, timeout=120)


def _code_sources(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"]
            if c["cell_type"] == "code" and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


@pytest.mark.parametrize("variant", list(golden.VARIANTS))
def test_goldens_are_current(variant):
    """Fast check: the goldens were made from the runbooks as they are now, with the variant's parameters."""
    runbooks = _runbooks()
    if not runbooks:
        pytest.skip("no runbooks yet")
    stored = {p.stem: p for p in _goldens(variant)}
    assert sorted(stored) == [name for name, _ in runbooks], "runbooks were added or removed: run `make golden`"
    expected = golden.variant_parameters(variant, runbooks)
    for name, path in runbooks:
        nb = json.loads(stored[name].read_text())
        assert _code_sources(nb) == _code_sources(json.loads(path.read_text())), \
            f"runbooks/{name}.ipynb changed since its golden was made: run `make golden`"
        declared = runner.declared_parameters(path)
        assert nb["metadata"]["papermill"]["parameters"] == {k: v for k, v in expected.items() if k in declared}


@pytest.mark.sandbox
@pytest.mark.terraform
@pytest.mark.slow
@pytest.mark.parametrize("variant", list(golden.VARIANTS))
def test_nbval_reproduces_the_golden_run(variant, tmp_path):
    result = nbval(_goldens(variant), tmp_path)
    assert result.returncode == 0, f"nbval found differences (or errors):\n{result.stdout[-20000:]}\n{result.stderr[-3000:]}"


@pytest.mark.sandbox
@pytest.mark.slow
def test_nbval_fails_on_a_renamed_profile(tmp_path):
    """A deliberate regression - the time-slicing profile renamed in the library's profile catalog -
    must make nbval fail on the prerequisites' quota table and its cost tables (and the same notebook passes
    without it)."""
    notebook = GOLDEN / "dummy" / "00_prerequisites.ipynb"
    if not notebook.exists():
        pytest.fail("no golden notebooks: run `make golden`")
    work = tmp_path / "golden"
    work.mkdir()
    shutil.copy(GOLDEN / "conftest.py", work / "conftest.py")
    shutil.copy(notebook, work / notebook.name)

    clean = nbval([work / notebook.name], tmp_path / "clean")
    assert clean.returncode == 0, clean.stdout[-10000:]

    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-regression.py").write_text(
        "from eks_hub_runbook.aws import quotas\n"
        "quotas.PROFILE_NODES['gpu-timeslice'] = quotas.PROFILE_NODES.pop('gpu-time-slicing')\n"
    )
    broken = nbval([work / notebook.name], tmp_path / "broken", {"IPYTHONDIR": str(tmp_path / "ipython")})
    assert broken.returncode != 0, "nbval did not notice the renamed profile"
    # the quota table shows the renamed profile; the cost tables, which read the same catalog, fail with it
    assert "gpu-timeslice" in broken.stdout and "quota_rows = quotas.rows(params)" in broken.stdout, broken.stdout[-10000:]
    assert "cost.estimate(" in broken.stdout, broken.stdout[-10000:]

"""The product without the sandbox: installed on its own (no eks-hub-sandbox, no moto), it knows
only the ``aws`` target, says how to get the sandbox when asked for it, and its unit tests pass.

This builds a virtual environment of its own (pip's cache makes it under a minute) and runs the
product's tests that need no sandbox there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def product_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("product-alone") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-c", str(REPO_ROOT / "requirements.lock"),
                              "-e", f"{REPO_ROOT}[dev]"], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    subprocess.run([str(python), "-m", "eks_hub_runbook.kernel"], check=True, capture_output=True, timeout=120)
    return python


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("RUNBOOK_", "PYTEST", "VIRTUAL_ENV"))}


def test_the_product_alone_knows_only_aws_and_says_how_to_get_the_sandbox(product_venv):
    probe = (
        "import importlib.util\n"
        "from eks_hub_runbook import params, targets\n"
        "assert importlib.util.find_spec('eks_hub_sandbox') is None and importlib.util.find_spec('moto') is None\n"
        "print(targets.names())\n"
        "try:\n    params.resolve()\nexcept Exception as e:\n    print(e)\n"
    )
    result = subprocess.run([str(product_venv), "-c", probe], capture_output=True, text=True, timeout=120, env=_env())
    assert result.returncode == 0, result.stderr
    names, error = result.stdout.strip().splitlines()
    assert names == "('aws',)"
    assert error == ("parameter 'target': 'sandbox' is not installed. "
                     "Fix: install it: pip install -e sandbox (make setup does), or pass -p target aws")


def test_the_products_unit_tests_pass_without_the_sandbox(product_venv):
    result = subprocess.run([str(product_venv), "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider",
                             "-m", "not sandbox and not terraform and not browser and not slow"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200, env=_env())
    assert result.returncode == 0, result.stdout[-6000:]
    print(result.stdout.strip().splitlines()[-1])

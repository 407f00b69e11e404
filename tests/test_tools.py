"""The tools table and `make setup`'s tool step: what it installs from Debian, and what it names
(with the version needed and the install page) when it cannot install it."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from eks_hub_runbook import prerequisites, tools
from eks_hub_runbook.paths import TERRAFORM_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_version_tuple():
    assert tools.version_tuple("1.32.4-dispatcher") == (1, 32, 4)
    assert tools.version_tuple("3.14.0+g1234") == (3, 14, 0)


def test_terraform_minimum_is_read_from_the_module(tmp_path):
    assert tools.tool("terraform").minimum() == tools.terraform_required_version(TERRAFORM_DIR / "versions.tf")
    assert "required_version = \">= " + ".".join(map(str, tools.terraform_required_version())) in (TERRAFORM_DIR / "versions.tf").read_text()
    other = tmp_path / "versions.tf"
    other.write_text('terraform {\n  required_version = ">= 1.12.2"\n}\n')
    assert tools.terraform_required_version(other) == (1, 12, 2)
    other.write_text("terraform {}\n")
    with pytest.raises(ValueError, match="required_version"):
        tools.terraform_required_version(other)


def test_prerequisites_use_the_same_table():
    assert prerequisites.TOOLS is tools.TOOLS


def run_setup(found: dict[str, str | None], *, apt: bool, browser: bool = False, installs: dict[str, str] | None = None):
    """setup() with fake versions; ``installs`` maps a tool to the version apt-get gives it."""
    versions = dict(found)
    calls: list[list[str]] = []

    def fake_run(argv, **_kwargs):
        calls.append(list(argv))
        if argv[:2] == ["apt-get", "install"]:
            for name, version in (installs or {}).items():
                if any(p in argv for p in tools.tool(name).debian):
                    versions[name] = version
        return subprocess.CompletedProcess(argv, 0, "", "")

    out, err = io.StringIO(), io.StringIO()
    code = tools.setup(browser, version=lambda t: versions.get(t.name), can_apt=lambda: apt, run=fake_run, out=out, err=err)
    return code, out.getvalue(), err.getvalue(), calls


ALL_THERE = {"terraform": "1.11.4", "kubectl": "1.32.4", "node": "20.20.2", "npm": "11.1.0", "chromium": "156.0.1"}


def test_nothing_to_do_when_everything_is_there():
    code, out, err, calls = run_setup(ALL_THERE, apt=True, browser=True)
    assert (code, err, calls) == (0, "", [])


def test_missing_kubectl_is_installed_from_debian():
    code, out, err, calls = run_setup({**ALL_THERE, "kubectl": None}, apt=True, installs={"kubectl": "1.20.2"})
    assert code == 0, err
    assert ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "kubernetes-client"] in calls
    assert "kubernetes-client" in out
    assert "older than >= 1.30" in out and "--target aws" in out  # Debian's kubectl is old: said, not fatal


def test_missing_terraform_is_named_with_version_and_install_page_and_nothing_installed():
    code, out, err, calls = run_setup({**ALL_THERE, "terraform": None, "kubectl": None}, apt=True)
    assert code == 1
    needed = ".".join(map(str, tools.terraform_required_version()))
    assert f"terraform >= {needed} is needed (not found)" in err
    assert "https://developer.hashicorp.com/terraform/install" in err
    assert "stopped before installing anything else" in err


def test_too_old_terraform_fails():
    code, _, err, _ = run_setup({**ALL_THERE, "terraform": "1.5.7"}, apt=True)
    assert code == 1 and "1.5.7 is too old" in err


def test_without_apt_the_debian_package_is_named():
    code, _, err, calls = run_setup({**ALL_THERE, "kubectl": None}, apt=False)
    assert code == 1 and calls == []
    assert "apt-get install kubernetes-client" in err and "https://kubernetes.io/docs/tasks/tools/" in err


def test_browser_only_with_the_flag():
    assert run_setup({**ALL_THERE, "chromium": None}, apt=False)[0] == 0
    code, _, err, _ = run_setup({**ALL_THERE, "chromium": None}, apt=False, browser=True)
    assert code == 1 and "apt-get install chromium" in err


def test_the_script_runs_with_the_system_python_and_no_package_on_the_path():
    """`make setup` runs tools.py before the virtual environment exists: standard library only."""
    proc = subprocess.run([sys.executable, "-S", "-I", str(REPO_ROOT / "lib/eks_hub_runbook/tools.py"), "setup"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    bad = subprocess.run([sys.executable, "-I", str(REPO_ROOT / "lib/eks_hub_runbook/tools.py"), "install"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage" in bad.stderr

"""checkov (the pinned release in .venv-tools/, installed by ``make setup``) on the Terraform module.

Every finding is fixed in ``terraform/`` or waived in place with its reason
(``#checkov:skip=CKV_..:why``); a waiver no check uses any more is stale and fails too."""

from __future__ import annotations

import json
import os
import re
import subprocess

from eks_hub_runbook import paths

ROOT = paths.REPO_ROOT
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"
SKIP = re.compile(r"#\s*checkov:skip=(?P<id>CKV2?_[A-Z0-9]+_\d+)(?::(?P<why>.*))?")


def _pinned_version() -> str:
    """CHECKOV_VERSION of the Makefile (the one place the pin is written)."""
    match = re.search(r"^CHECKOV_VERSION\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile pins checkov with CHECKOV_VERSION := <version>"
    return match.group(1)


def _checkov(*args: str) -> subprocess.CompletedProcess:
    assert CHECKOV.is_file(), f"checkov is not installed at {CHECKOV}. Fix: run `make setup` (it creates .venv-tools/)."
    # Offline: no download of the platform's guideline mappings or of external checks.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    return subprocess.run([str(CHECKOV), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _waivers() -> dict[tuple[str, str], str]:
    """(file, check id) -> reason of every ``#checkov:skip`` in the module."""
    found = {}
    for path in sorted(paths.TERRAFORM_DIR.glob("*.tf")):
        for line in path.read_text().splitlines():
            match = SKIP.search(line)
            if match:
                found[(path.name, match.group("id"))] = (match.group("why") or "").strip()
    return found


def test_checkov_is_the_pinned_release():
    result = _checkov("--version")
    assert result.stdout.strip() == _pinned_version(), result.stdout + result.stderr


def test_terraform_module_has_no_unwaived_finding_and_no_stale_waiver():
    result = _checkov("-d", "terraform", "--framework", "terraform", "--compact", "--skip-download", "-o", "json")
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    summary, results = report["summary"], report["results"]
    assert summary["parsing_errors"] == 0, result.stderr[-2000:]
    assert summary["passed"] > 200, summary  # the module was really scanned
    failed = [f"{f['check_id']} {f['resource']} ({f['file_path']}:{f['file_line_range'][0]}): {f['check_name']}"
              for f in results.get("failed_checks", [])]
    assert not failed, "fix each in terraform/ or waive it in place with #checkov:skip=ID:reason\n" + "\n".join(failed)

    waivers = _waivers()
    assert all(len(why) >= 30 for why in waivers.values()), {k: v for k, v in waivers.items() if len(v) < 30}
    used = {(f["file_path"].lstrip("/"), f["check_id"]) for f in results.get("skipped_checks", [])}
    assert set(waivers) == used, f"stale waivers: {sorted(set(waivers) - used)}"

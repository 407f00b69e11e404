"""The sentinel-secret check on the real runbooks (sandbox, cognito): a sentinel passed through
the secrets file (exported to the kernels' environment) and the Cognito client secret that
Terraform outputs at run time appear nowhere under outputs/, in any log, or on the terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.sandbox, pytest.mark.terraform, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
SENTINEL = "SENTINEL-file-9b3e1d77c0a4"
DEPLOYMENT = "sentinel-hub"


def _runbook(env, *args, timeout=1800):
    done = subprocess.run([sys.executable, "-m", "eks_hub_runbook.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def _cognito_client_secret(state: Path) -> str:
    for path in (state / "deployments" / DEPLOYMENT).rglob("*.tfstate"):
        outputs = json.loads(path.read_text()).get("outputs", {})
        if "cognito_client_secret" in outputs:
            return outputs["cognito_client_secret"]["value"]
    raise AssertionError("no cognito_client_secret in the Terraform state")


def _written(outputs: Path, state: Path) -> dict[Path, str]:
    """Everything under outputs/ and every log under the state folder."""
    files = [p for p in outputs.rglob("*") if p.is_file()]
    files += [p for p in state.rglob("*") if p.is_file() and (p.suffix == ".log" or "logs" in p.parts)]
    return {p: p.read_text(errors="replace") for p in files}


def test_sentinel_and_run_time_secret_are_nowhere(tmp_path):
    state, outputs = tmp_path / "state", tmp_path / "outputs"
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text(f"oauth_client_secret: {SENTINEL}\n")
    secrets_file.chmod(0o600)
    env = {**os.environ, "RUNBOOK_STATE_DIR": str(state), "RUNBOOK_OUTPUTS_DIR": str(outputs)}
    env.pop("RUNBOOK_OAUTH_CLIENT_SECRET", None)
    common = ["-p", "deployment", DEPLOYMENT, "--secrets-file", str(secrets_file)]
    try:
        code, deploy_out = _runbook(env, "run", "00", "01", "02", "03", "-p", "auth", "cognito",
                                    "-p", "domain", "hub.example.com", *common)
        assert code == 0, deploy_out[-5000:]
        client_secret = _cognito_client_secret(state)
        assert len(client_secret) >= 6
        before_cleanup = _written(outputs, state)  # 05 removes the deployment's working folder and logs
        code, cleanup_out = _runbook(env, "run", "05", "-p", "confirm", "True", *common)
        assert code == 0, cleanup_out[-5000:]
    finally:
        _runbook(env, "sandbox", "down", timeout=120)

    written = {**before_cleanup, **_written(outputs, state)}
    assert any(p.name == "run.json" for p in written) and any(p.suffix == ".html" for p in written)
    assert any(p.name == "terraform.log" for p in written), "Terraform's log is checked"
    assert any(p.name == "hub.log" for p in written), "the sandbox services' logs are checked"
    for secret in (SENTINEL, client_secret):
        leaks = [str(p) for p, text in written.items() if secret in text]
        assert leaks == [], f"a secret was written to {leaks}"
        assert secret not in deploy_out and secret not in cleanup_out, "a secret reached the terminal"
    runs = [json.loads(t) for p, t in written.items() if p.name == "run.json"]
    assert all(r["secrets"] == {"oauth_client_secret": "secrets-file"} for r in runs)

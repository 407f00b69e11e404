"""A sentinel secret travels every path a secret can take and is found nowhere it must not be.

Paths: the environment variable, the secrets file, a run-time secret read from a
(Terraform-style) output inside the kernel. Places checked: every file under
outputs/, the run log, the state folder's logs, and the terminal output.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from eks_hub_runbook.errors import ParameterError
from eks_hub_runbook.records import archive, runner, scrub
from eks_hub_runbook.records.console import Console

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
ENV_SENTINEL = "SENTINEL-env-7c1d0b5e9a"
FILE_SENTINEL = "SENTINEL-file-31f4aa90c2"
TF_SENTINEL = "SENTINEL-tfout-88e2d41f07"


@pytest.fixture
def records_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNBOOK_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.delenv("RUNBOOK_OAUTH_CLIENT_SECRET", raising=False)
    tf_output = tmp_path / "tf-output.json"
    tf_output.write_text(json.dumps({"cognito_client_secret": {"sensitive": True, "type": "string", "value": TF_SENTINEL}}))
    return tmp_path


def _everything_written(root: Path) -> str:
    texts = []
    for folder in (root / "outputs", root / "state"):
        for path in folder.rglob("*"):
            if path.is_file() and path.name != "fingerprints.json":
                texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def _run(root: Path, leak: str = "", secrets_file: Path | None = None):
    console = Console(stream=io.StringIO())
    parameters = {"tf_output_file": str(root / "tf-output.json"), "leak": leak}
    try:
        run = runner.run(runner.discover([str(FIXTURES / "secrets.ipynb")]), parameters, console=console,
                         secrets_file=secrets_file, command=f"runbook run secrets -p leak {leak!r}")
    except runner.RunFailed as exc:
        run = exc.run
    return run, console.stream.getvalue()


def _assert_nowhere(root: Path, shown: str, *sentinels: str) -> None:
    written = _everything_written(root)
    for sentinel in sentinels:
        assert sentinel not in written, f"{sentinel} was written under outputs/ or the state folder"
        assert sentinel not in shown, f"{sentinel} reached the terminal"
    assert scrub.audit_tree(root / "outputs") == []


def test_secret_from_env_reaches_the_kernel_and_nothing_else(records_env, monkeypatch):
    monkeypatch.setenv("RUNBOOK_OAUTH_CLIENT_SECRET", ENV_SENTINEL)
    run, shown = _run(records_env)
    assert run.status == "succeeded"
    assert f"client secret has {len(ENV_SENTINEL)} characters" in shown
    assert run.data["secrets"] == {"oauth_client_secret": "env:RUNBOOK_OAUTH_CLIENT_SECRET"}
    assert "oauth_client_secret" not in run.notebook("secrets")["parameters"]
    _assert_nowhere(records_env, shown, ENV_SENTINEL, TF_SENTINEL)


def test_secret_from_secrets_file_reaches_the_kernel_and_nothing_else(records_env):
    path = records_env / "secrets.yaml"
    path.write_text(f"oauth_client_secret: {FILE_SENTINEL}\n")
    path.chmod(0o600)
    run, shown = _run(records_env, secrets_file=path)
    assert run.status == "succeeded"
    assert f"client secret has {len(FILE_SENTINEL)} characters" in shown
    assert run.data["secrets"] == {"oauth_client_secret": "secrets-file"}
    _assert_nowhere(records_env, shown, FILE_SENTINEL, TF_SENTINEL)


@pytest.mark.parametrize("leak, sentinel", [("env", ENV_SENTINEL), ("runtime", TF_SENTINEL)])
def test_a_notebook_that_prints_a_secret_is_refused(records_env, monkeypatch, leak, sentinel):
    monkeypatch.setenv("RUNBOOK_OAUTH_CLIENT_SECRET", ENV_SENTINEL)
    run, shown = _run(records_env, leak=leak)
    assert run.status == "refused"
    entry = run.notebook("secrets")
    assert entry["output"] is None and not (run.dir / "secrets.ipynb").exists()
    assert "refusing to archive secrets.ipynb: a secret value appears in cell 5 (In [5]) output 0" in entry["failure"]["reason"]
    assert "***REDACTED***" in shown, "the live view shows the redacted line"
    _assert_nowhere(records_env, shown, ENV_SENTINEL, TF_SENTINEL)


def test_a_secret_passed_as_a_parameter_value_is_refused(records_env, monkeypatch):
    monkeypatch.setenv("RUNBOOK_OAUTH_CLIENT_SECRET", ENV_SENTINEL)
    with pytest.raises(ParameterError, match="equals a known secret"):
        runner.run(runner.discover([str(FIXTURES / "secrets.ipynb")]), {"leak": ENV_SENTINEL}, console=Console(stream=io.StringIO()))
    assert list(archive.iter_runs()) == []

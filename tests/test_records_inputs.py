"""Parameters and secrets given to `runbook run` (records/inputs.py)."""

from __future__ import annotations

import pytest

from eks_hub_runbook.errors import ParameterError
from eks_hub_runbook.records import inputs, redact


@pytest.mark.parametrize("text, value", [
    ("True", True), ("False", False), ("None", None), ("7", 7), ("007", 7), ("-3", -3), ("0.5", 0.5),
    ("1e3", 1000.0), ("cognito", "cognito"), ("1.33", 1.33), ("true", "true"), ("", ""),
])
def test_values_are_resolved_like_papermill(text, value):
    resolved = inputs.resolve_value(text)
    assert resolved == value and type(resolved) is type(value)


def test_cli_parameters_p_and_raw():
    parsed = inputs.parse_cli_parameters(["-p", "auth", "cognito", "-p", "count", "3", "-r", "account", "007",
                                          "--parameter", "flag", "True"])
    assert parsed == {"auth": "cognito", "count": 3, "account": "007", "flag": True}


def test_cli_parameter_missing_value_is_a_clear_error():
    with pytest.raises(ParameterError, match="needs a NAME and a VALUE"):
        inputs.parse_cli_parameters(["-p", "auth"])


@pytest.mark.parametrize("name", ["oauth_client_secret", "admin_password", "github_token", "api_key", "PRIVATE_KEY"])
def test_secret_names_are_refused_as_parameters(name):
    with pytest.raises(ParameterError, match="never passed as notebook parameters") as info:
        inputs.parse_cli_parameters(["-p", name, "value"])
    assert info.value.parameter == name
    assert "--secrets-file" in info.value.fix


def test_client_secret_hint_names_its_environment_variable():
    with pytest.raises(ParameterError, match="RUNBOOK_OAUTH_CLIENT_SECRET"):
        inputs.check_not_secret("oauth_client_secret")


def test_parameters_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("auth: cognito\ndomain: hub.example.com\nallowed_users: [user-1, user-2]\n")
    assert inputs.load_parameters_file(path) == {"auth": "cognito", "domain": "hub.example.com", "allowed_users": ["user-1", "user-2"]}


@pytest.mark.parametrize("content, message", [
    ("- a\n- b\n", "must be a YAML mapping"),
    ("auth: [unclosed\n", "not valid YAML"),
    ("oauth_client_secret: x\n", "never passed as notebook parameters"),
])
def test_bad_parameters_file(tmp_path, content, message):
    path = tmp_path / "params.yaml"
    path.write_text(content)
    with pytest.raises(ParameterError, match=message):
        inputs.load_parameters_file(path)


def test_missing_parameters_file(tmp_path):
    with pytest.raises(ParameterError, match="not found"):
        inputs.load_parameters_file(tmp_path / "nope.yaml")


def _secrets_file(tmp_path, text, mode=0o600):
    path = tmp_path / "secrets.yaml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_secrets_file_must_be_private(tmp_path):
    path = _secrets_file(tmp_path, "oauth_client_secret: s3cr3t-value\n", mode=0o644)
    with pytest.raises(inputs.SecretsFileError, match="chmod 600"):
        inputs.load_secrets_file(path)


def test_secrets_file_accepts_parameter_or_env_names(tmp_path):
    assert inputs.load_secrets_file(_secrets_file(tmp_path, "oauth_client_secret: abcdef-1\n")) == {"oauth_client_secret": "abcdef-1"}
    assert inputs.load_secrets_file(_secrets_file(tmp_path, "RUNBOOK_OAUTH_CLIENT_SECRET: abcdef-2\n")) == {"oauth_client_secret": "abcdef-2"}


def test_secrets_file_rejects_unknown_names(tmp_path):
    with pytest.raises(inputs.SecretsFileError, match="unknown secret 'db_password'"):
        inputs.load_secrets_file(_secrets_file(tmp_path, "db_password: hunter22\n"))


def test_secret_environment_prefers_env_and_registers(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    path = _secrets_file(tmp_path, "oauth_client_secret: from-the-file-1234\n")
    monkeypatch.delenv("RUNBOOK_OAUTH_CLIENT_SECRET", raising=False)
    assert inputs.secret_environment(path) == {"RUNBOOK_OAUTH_CLIENT_SECRET": "from-the-file-1234"}
    assert inputs.secret_sources(path) == {"oauth_client_secret": "secrets-file"}
    assert redact.redact("x from-the-file-1234 y") == f"x {redact.REDACTED} y"
    monkeypatch.setenv("RUNBOOK_OAUTH_CLIENT_SECRET", "from-the-env-5678")
    assert inputs.secret_environment(path) == {"RUNBOOK_OAUTH_CLIENT_SECRET": "from-the-env-5678"}
    assert inputs.secret_sources(path) == {"oauth_client_secret": "env:RUNBOOK_OAUTH_CLIENT_SECRET"}

"""What a run is given: parameters (``-p``, ``-r``, ``-f``) and secrets (env or secrets file).

Parameters follow papermill's command line: ``-p NAME VALUE`` turns ``True``,
``False``, ``None``, integers and floats into Python values and keeps anything else
as text; ``-r NAME VALUE`` keeps the raw text; ``-f params.yaml`` reads a YAML
mapping. Later sources override earlier ones (file, then ``-p``/``-r`` in order).

Secrets are never parameters: a name that looks like a secret is refused with a
message pointing at the environment variable or the secrets file. Secrets come from
the environment (``params.SECRET_ENV``) or a YAML secrets file that only its owner
can read (mode 0600); they are registered for redaction and exported to the
kernel's environment only.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import ParameterError, SecretsFileError
from ..params import SECRET_BLUEPRINT_NAMES, SECRET_ENV, SECRET_PARAMETERS
from .redact import register_secret

# Names that must never travel as a notebook parameter (they would be written,
# in clear, into the injected-parameters cell of the executed notebook).
_SECRET_NAME = re.compile(r"(secret|password|passwd|token|api_?key|private_?key|credential)", re.IGNORECASE)


def resolve_value(text: str) -> Any:
    """Convert a ``-p`` value the way papermill's CLI does."""
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def is_secret_name(name: str) -> bool:
    """True for parameter names that carry secrets (refused as parameters)."""
    return name in SECRET_PARAMETERS or bool(_SECRET_NAME.search(name))


def _env_hint(name: str) -> str:
    env = SECRET_ENV.get(SECRET_BLUEPRINT_NAMES.get(name, name))
    where = f"export {env}=..." if env else "put it in the environment"
    return f"{where}, or put `{name}: ...` in a secrets file passed with --secrets-file (mode 0600)"


def check_not_secret(name: str) -> None:
    """Raise ParameterError if ``name`` is a secret passed as a parameter."""
    if is_secret_name(name):
        raise ParameterError(
            name, "is a secret and secrets are never passed as notebook parameters (they would be archived in clear)",
            _env_hint(name),
        )


def parse_cli_parameters(tokens: Iterable[str]) -> dict[str, Any]:
    """Parse ``-p NAME VALUE`` / ``-r NAME VALUE`` tokens (anything else is an error)."""
    tokens = list(tokens)
    parameters: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        flag = tokens[i]
        if flag in ("-p", "--parameter", "-r", "--parameter-raw"):
            if i + 2 >= len(tokens):
                raise ParameterError(tokens[i + 1] if i + 1 < len(tokens) else "?", f"{flag} needs a NAME and a VALUE",
                                     f"write {flag} NAME VALUE (quote values with spaces)")
            name, value = tokens[i + 1], tokens[i + 2]
            check_not_secret(name)
            parameters[name] = value if flag in ("-r", "--parameter-raw") else resolve_value(value)
            i += 3
        else:
            raise ParameterError(flag, "is not an option of `runbook run`", "pass notebooks first, then -p NAME VALUE pairs")
    return parameters


def load_parameters_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of parameters (``-f params.yaml``)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParameterError(str(path), "parameters file not found", "check the path given with -f") from None
    except yaml.YAMLError as exc:
        raise ParameterError(str(path), f"is not valid YAML ({exc.__class__.__name__})", "fix the file's syntax") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ParameterError(str(path), "must be a YAML mapping of parameter names to values", "write lines like `auth: cognito`")
    for name in data:
        check_not_secret(name)
    return data


def load_secrets_file(path: str | Path) -> dict[str, str]:
    """Read a YAML secrets file: ``name: value`` with names from ``params.SECRET_ENV``
    (either the parameter name or its environment variable name).

    The file must not be readable by group or others (``chmod 600``).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SecretsFileError(f"secrets file {path} not found: check --secrets-file") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretsFileError(
            f"secrets file {path} is readable by others (mode {stat.S_IMODE(mode):o}): run `chmod 600 {path}` and retry"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise SecretsFileError(f"secrets file {path} is not valid YAML (a mapping of secret names to values)") from None
    if not isinstance(data, dict):
        raise SecretsFileError(f"secrets file {path} must be a mapping of secret names to values")
    by_env = {env: name for name, env in SECRET_ENV.items()}
    secrets: dict[str, str] = {}
    for key, value in data.items():
        name = by_env.get(key, key)
        if name not in SECRET_ENV:
            raise SecretsFileError(
                f"secrets file {path}: unknown secret {key!r}; known secrets: {', '.join(sorted(SECRET_ENV))}"
            )
        secrets[name] = "" if value is None else str(value)
    return secrets


def secret_environment(secrets_file: str | Path | None = None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables that carry secrets into the kernel, and where each came from.

    Values already in the environment win over the secrets file. Every value is
    registered for redaction. Returns ``{ENV_NAME: value}``.
    """
    environ = os.environ if environ is None else environ
    from_file = load_secrets_file(secrets_file) if secrets_file else {}
    exported: dict[str, str] = {}
    for name, env_name in SECRET_ENV.items():
        value = environ.get(env_name) or from_file.get(name, "")
        if value:
            register_secret(value)
            exported[env_name] = value
    return exported


def secret_sources(secrets_file: str | Path | None = None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """For the record: where each secret came from (never the value)."""
    environ = os.environ if environ is None else environ
    from_file = load_secrets_file(secrets_file) if secrets_file else {}
    sources = {}
    for name, env_name in SECRET_ENV.items():
        if environ.get(env_name):
            sources[name] = f"env:{env_name}"
        elif from_file.get(name):
            sources[name] = "secrets-file"
    return sources

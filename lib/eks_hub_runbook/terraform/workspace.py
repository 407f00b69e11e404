"""A per-deployment, per-target Terraform working directory.

``<state>/deployments/<name>/terraform-<target>/`` holds symlinks to the root module's
``*.tf`` files, the target's generated ``target_override.tf`` (a stand-in's provider
settings; none for AWS), the rendered
``terraform.tfvars.json``, the local state and the logs. Several deployments and targets
coexist because each has its own directory and state.

Terraform runs with a generated CLI config (``TF_CLI_CONFIG_FILE``): a shared plugin cache,
and the provider filesystem mirror of this machine when there is one (the registry
otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..params import DeploymentParameters
from .variables import render_variables, secret_environment

OVERRIDE_FILE = "target_override.tf"  # the target's provider settings (Target.terraform_override)
TFVARS_FILE = "terraform.tfvars.json"
MIRROR_CANDIDATES = ("/opt/tf-plugins", "~/.terraform.d/plugins", "/usr/share/terraform/plugins", "/usr/local/share/terraform/plugins")


@dataclass(frozen=True)
class Workspace:
    """Where and how terraform runs for one deployment on one target."""

    deployment: str
    target: str
    region: str
    directory: Path
    module_dir: Path
    cli_config: Path
    environment: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def log_dir(self) -> Path:
        path = self.directory / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def state_file(self) -> Path:
        return self.directory / STATE_FILE

    def env(self) -> dict[str, str]:
        """Environment of a terraform process: the caller's, the target's AWS settings, the CLI config."""
        from .. import targets

        env = {**os.environ, **self.environment}
        if targets.get(self.target).endpoint_url() is None:
            # A shell that ran `eval "$(runbook sandbox env)"` must not send real deployments to moto.
            for key in [k for k in env if k.startswith("AWS_ENDPOINT_URL")]:
                del env[key]
        env.update({"TF_CLI_CONFIG_FILE": str(self.cli_config), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"})
        return env


def provider_mirror() -> Path | None:
    """A filesystem mirror holding hashicorp/aws, if this machine has one (``RUNBOOK_TF_PLUGIN_MIRROR`` first)."""
    candidates = [os.environ.get("RUNBOOK_TF_PLUGIN_MIRROR", ""), *MIRROR_CANDIDATES]
    for candidate in filter(None, candidates):
        path = Path(candidate).expanduser()
        if (path / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return path
    return None


def write_cli_config() -> Path:
    """Write the shared CLI config (plugin cache + mirror when present) and return its path."""
    base = paths.state_dir() / "terraform"
    cache = base / "plugin-cache"
    cache.mkdir(parents=True, exist_ok=True)
    lines = [f'plugin_cache_dir = "{cache}"']
    mirror = provider_mirror()
    if mirror is not None:
        lines += [
            "provider_installation {",
            "  filesystem_mirror {",
            f'    path    = "{mirror}"',
            '    include = ["registry.terraform.io/hashicorp/*"]',
            "  }",
            "  direct {",
            '    exclude = ["registry.terraform.io/hashicorp/*"]',
            "  }",
            "}",
        ]
    config = base / "cli.tfrc"
    _write_if_changed(config, "\n".join(lines) + "\n")
    return config


def prepare(params: DeploymentParameters, certificate_arn: str = "", secrets: dict[str, str] | None = None,
            module_dir: Path = paths.TERRAFORM_DIR) -> Workspace:
    """Create or refresh the working directory for ``params`` and return its :class:`Workspace`.

    Idempotent: links the module files (dropping links to files that no longer exist),
    writes the override for the sandbox (removes it for AWS) and the tfvars.
    """
    from .. import targets
    from ..aws import session

    directory = paths.deployment_dir(params.deployment) / f"terraform-{params.target}"
    directory.mkdir(parents=True, exist_ok=True)
    recovered = recover_state(directory)
    if recovered:
        print(f"note: {recovered}")
    module_dir = Path(module_dir).resolve()
    wanted = {p.name: p for p in sorted(module_dir.glob("*.tf")) if not p.name.endswith("_override.tf")}
    for existing in directory.glob("*.tf"):
        if existing.is_symlink() and existing.name not in wanted:
            existing.unlink()
    for name, source in wanted.items():
        link = directory / name
        if link.is_symlink() and Path(os.readlink(link)) == source:
            continue
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(source)

    override = directory / OVERRIDE_FILE
    for stale in directory.glob("*_override.tf"):  # an earlier name of the generated file
        if stale.name != OVERRIDE_FILE:
            stale.unlink()
    override_text = targets.of(params).terraform_override()
    if override_text:
        _write_if_changed(override, override_text)
    elif override.exists():
        override.unlink()

    variables = render_variables(params, certificate_arn)
    _write_if_changed(directory / TFVARS_FILE, json.dumps(variables, indent=2, sort_keys=True) + "\n")
    environment = {**session.subprocess_env(params.target, params.region), **secret_environment(secrets or {})}
    return Workspace(
        deployment=params.deployment,
        target=params.target,
        region=params.region,
        directory=directory,
        module_dir=module_dir,
        cli_config=write_cli_config(),
        environment=environment,
    )


STATE_FILE, STATE_BACKUP, STATE_BROKEN = "terraform.tfstate", "terraform.tfstate.backup", "terraform.tfstate.broken"


def load_state(path: Path) -> dict | None:
    """A Terraform state file's document, or None when it is missing, empty or cut short."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and "version" in document else None


def recover_state(directory: Path) -> str:
    """Terraform writes its local state in place: one SIGKILLed while writing leaves the file empty
    or cut short, and the next run would plan everything anew. Such a file is moved aside
    (``terraform.tfstate.broken``) and the backup Terraform made when that run started is put in its
    place; what the killed run created after it is adopted or removed as a stray by the resume.
    Returns what was done, for the caller to show ('' when the state was fine or absent)."""
    state = directory / STATE_FILE
    if not state.exists() or load_state(state) is not None:
        return ""
    state.replace(directory / STATE_BROKEN)
    backup = directory / STATE_BACKUP
    if load_state(backup) is not None:
        shutil.copy2(backup, state)
        return (f"{STATE_FILE} was left empty or cut short by a killed terraform: kept as {STATE_BROKEN}, "
                f"the state from the start of that run ({STATE_BACKUP}) restored")
    return (f"{STATE_FILE} was left empty or cut short by a killed terraform and there is no backup: kept as "
            f"{STATE_BROKEN}; the resume adopts what it finds")


def remove(workspace: Workspace) -> None:
    """Delete a working directory (after a complete destroy)."""
    shutil.rmtree(workspace.directory, ignore_errors=True)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)

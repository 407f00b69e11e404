"""What differs between AWS and a stand-in for it: the one seam of the runbook.

Everything else (the notebooks, parameters, Terraform module, platform manifests and values,
the hub client, the checks) is the same code for every target. A target answers:

- how to reach AWS: an endpoint override (or none), credentials, the environment of the CLI
  tools (terraform, aws, kubectl), a provider override file for Terraform;
- what has to run before a deployment and what is stopped after it (local services);
- how the platform is installed on the cluster (helm on EKS) and how the hub is reached;
- what its runs cannot prove, and which values it fills in for a login method.

:class:`Target` is the interface with the defaults of a real AWS account;
:mod:`.aws` is the product's own target, other targets plug in by entry point
(:mod:`eks_hub_runbook.targets`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import boto3

    from ..params import DeploymentParameters
    from ..platform.context import InstallContext

Rows = list[dict[str, Any]]


class Target:
    """A place a deployment runs. Subclasses set the attributes and override what differs."""

    name: str = ""
    #: resources cost money (the notebooks say so before anything is created)
    billable: bool = True
    #: command-line tools its notebooks run (checked by 00_prerequisites, see ``tools.TOOLS``)
    tools: tuple[str, ...] = ()
    #: what runs on it cannot prove, by topic (``general`` always, ``gpu``, ``network``...)
    limits: Mapping[str, Sequence[str]] = {}
    #: values a login method needs that the target fills in when none is given
    parameter_defaults: Mapping[str, str] = {}
    #: Terraform's ``-parallelism``
    terraform_parallelism: int = 10
    #: a certificate for types 2/3 may be made and imported when none is recorded (and a recorded
    #: one that is gone replaced): only where nothing real depends on it
    makes_certificates: bool = False
    #: secrets it makes when the user gives none (see :meth:`generated_secret`)
    makes_secrets: tuple[str, ...] = ()

    # -- reaching AWS -------------------------------------------------------------------

    def endpoint_url(self) -> str | None:
        """The AWS endpoint to use instead of AWS's own, or None."""
        return None

    def session(self, region: str) -> "boto3.Session":
        """A boto3 session in ``region`` (the default credential chain for real AWS)."""
        import boto3

        return boto3.Session(region_name=region)

    def subprocess_env(self, region: str) -> dict[str, str]:
        """Environment for the CLI tools run against the target (terraform, aws, kubectl)."""
        return {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}

    def terraform_override(self) -> str | None:
        """The text of a generated ``*_override.tf`` (provider settings), or None for none."""
        return None

    # -- before and after -----------------------------------------------------------------

    def service_rows(self, params: "DeploymentParameters", start: bool = True, hub_tools: bool = True) -> Rows:
        """Check rows (``check, needed, found, status``) for what must run locally, started when
        ``start``; nothing for a real account."""
        return []

    def generated_secret(self, params: "DeploymentParameters", name: str) -> str | None:
        """A secret the target makes when the user gave none (e.g. the OAuth client secret of its
        own identity provider); None: the user must give it."""
        return None

    def finish(self, params: "DeploymentParameters", keep_services: bool) -> Rows:
        """After 05_cleanup: stop what :meth:`service_rows` started unless kept. Rows ``item, state``."""
        return []

    def stop(self) -> list[str]:
        """Stop every local service of the current state folder; the names stopped."""
        return []

    # -- the platform and the hub -----------------------------------------------------------

    def install_platform(self, context: "InstallContext", kubeconfig: Path | None) -> Rows:
        """Install the platform (``context``: the parameters, the checked Terraform outputs, what to
        apply) on the deployment's cluster; one status row per step."""
        raise NotImplementedError

    def hub_url(self, params: "DeploymentParameters") -> str:
        """The URL people open."""
        raise NotImplementedError

    def local_hub_url(self, params: "DeploymentParameters | None" = None) -> str | None:
        """Where the hub is served on this machine, when the target serves it here."""
        return None

    def emulated_delays(self) -> dict[str, float] | None:
        """The waits a stand-in cluster is configured with (``node launch``, ``image pull`` seconds):
        the load check's floor counts them. None for a real cloud, whose waits are not configured."""
        return None

    def local_kubeconfig(self) -> Path | None:
        """The admin kubeconfig of a cluster the target runs on this machine, if any."""
        return None

    @contextlib.contextmanager
    def hub_endpoint(self, params: "DeploymentParameters") -> Iterator[tuple[str, bool | str]]:
        """``(url, verify)`` where this process reaches the hub, for the duration of the block."""
        yield self.hub_url(params), True

    # -- what the notebooks say -------------------------------------------------------------

    def note(self, params: "DeploymentParameters", topics: Sequence[str] = ()) -> str:
        """Markdown: what this run can and cannot show."""
        if self.limits:
            items = [*self.limits.get("general", []), *(i for t in topics for i in self.limits.get(t, []))]
            return (f"**Target: {self.description}.** What the {self.name} cannot prove:\n\n"
                    + "\n".join(f"- {i}" for i in items))
        return (f"**Target: AWS, region `{params.region}`.** The deployment `{params.deployment}` creates billable "
                "resources; `05_cleanup` removes all of them.")

    @property
    def description(self) -> str:
        """A few words for people (``local sandbox``)."""
        return self.name

    def cli(self):
        """A typer app of the target's own commands (``runbook <name> ...``), or None."""
        return None

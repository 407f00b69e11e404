"""One platform install's inputs, resolved once and passed down (the data flows one way).

``build(params, outputs)`` checks the Terraform outputs once and computes the template
variables once; the install steps then ask the context for what they apply: a manifest
group, a release's values, the hub's values (with what a target replaces: the hub's URL and
the login endpoints), the OAuth client's Secret. Nothing below it reads the outputs again.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..params import DeploymentParameters
from . import charts, manifests, outputs as tf_outputs, values


@dataclass(frozen=True)
class InstallContext:
    """The parameters, the checked Terraform outputs and the variables of one install."""

    params: DeploymentParameters
    outputs: Mapping[str, Any]

    @functools.cached_property
    def variables(self) -> dict[str, Any]:
        """Every ``${name}`` of the values files and manifests (computed once)."""
        return values.variables(self.params, self.outputs)

    def plan(self) -> list[charts.Step]:
        """The install plan's steps for these parameters (``terraform/charts.yaml``)."""
        return charts.plan(self.params)

    def manifests(self, group: str) -> list[dict]:
        """The objects of one manifest group, filled in."""
        return manifests.render_group(group, self.params, self.outputs, names=self.variables)

    def release_values(self, release: charts.Release) -> dict[str, Any]:
        """A non-hub release's values, filled in."""
        return values.release_values(release.values, self.params, self.outputs, names=self.variables)

    def hub_values(self, hub_url: str | None = None, endpoints: values.LoginEndpoints | None = None) -> dict[str, Any]:
        """The z2jh values; ``hub_url`` / ``endpoints`` replace the public URL and the provider's
        endpoints (a stand-in target's local hub and identity provider)."""
        names = self.variables if hub_url is None and endpoints is None else \
            values.variables(self.params, self.outputs, hub_url=hub_url, endpoints=endpoints)
        return values.jupyterhub_values(self.params, self.outputs, names=names)

    def oauth_secret(self) -> dict | None:
        """The ``hub-oauth-client`` Secret (None for dummy login). It carries the secret: apply it only."""
        return manifests.oauth_client_secret(self.params, self.outputs)


def build(params: DeploymentParameters, raw_outputs: Mapping[str, Any]) -> InstallContext:
    """The context of an install: the Terraform outputs checked once (missing ones reported together)."""
    return InstallContext(params, tf_outputs.resolve(params, raw_outputs))

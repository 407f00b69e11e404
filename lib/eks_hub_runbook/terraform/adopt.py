"""Adopt resources that exist in AWS but are missing from the state.

An apply that dies between AWS creating a resource and Terraform recording it (the process
killed, a response lost and the request retried by the AWS SDK) leaves a resource that every
later apply fails to create: "EntityAlreadyExists". For resource types whose names are
unique and carry the deployment's name, such a resource is ours: the apply imports it into the
state (``terraform import``, in ``commands``) and runs again, instead of failing forever.

Only names that start with the deployment's name are adopted, so a resource someone else
created is never taken over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import TerraformError
from .events import Diagnostic

# How ``terraform import`` identifies each adoptable type, from the name in the error.
IMPORT_IDS = {
    "aws_iam_policy": "arn:{partition}:iam::{account_id}:policy/{name}",
    "aws_iam_role": "{name}",
    "aws_cloudwatch_log_group": "{name}",
}
# The provider's "creating <what> (<name>): ... <code>" errors for a name that is taken.
_ALREADY_EXISTS = re.compile(r"creating [^(]*\((?P<name>[^)]+)\).*(EntityAlreadyExists|ResourceAlreadyExists)",
                             re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Orphan:
    """A resource of ``address`` that exists in AWS under ``name`` but not in the state."""

    address: str
    name: str

    @property
    def resource_type(self) -> str:
        return self.address.split("[")[0].split(".")[-2]

    def import_id(self, identity: dict[str, str]) -> str:
        """How ``terraform import`` names it (``identity`` from :func:`identity`)."""
        return IMPORT_IDS[self.resource_type].format(name=self.name, **identity)


def orphans(diagnostics: list[Diagnostic], deployment: str) -> list[Orphan]:
    """The "already exists" errors of an apply as orphans to adopt; empty unless *every* error
    is one (anything else must be fixed, not retried) and every name is the deployment's."""
    errors = [d for d in diagnostics if d.severity == "error"]
    found = []
    for diagnostic in errors:
        match = _ALREADY_EXISTS.search(f"{diagnostic.summary} {diagnostic.detail}")
        if not (match and diagnostic.address):
            return []
        orphan = Orphan(diagnostic.address, match["name"])
        if orphan.resource_type not in IMPORT_IDS or not orphan.name.startswith(deployment):
            return []
        found.append(orphan)
    return found


def identity(state: dict) -> dict[str, str]:
    """Account id and partition, from the data sources the module reads into the state
    (``terraform state pull``), to build import ids with."""
    values: dict[str, str] = {}
    for resource in state.get("resources", []):
        attributes = (resource.get("instances") or [{}])[0].get("attributes") or {}
        if resource.get("type") == "aws_caller_identity":
            values["account_id"] = attributes.get("account_id", "")
        elif resource.get("type") == "aws_partition":
            values["partition"] = attributes.get("partition", "")
    if not (values.get("account_id") and values.get("partition")):
        raise TerraformError("cannot adopt: the state has no aws_caller_identity/aws_partition data to build import ids from")
    return values

"""The tags that name a deployment's resources in AWS, and reading AWS tag lists.

Terraform tags everything it creates with ``runbook:deployment = <name>`` and
``runbook:managed-by = terraform`` (provider ``default_tags`` in ``terraform/versions.tf``);
what the runbook creates itself (the ACM certificate) carries the same keys with
``runbook:managed-by = runbook``. The leftovers scan finds a deployment's resources by
:data:`DEPLOYMENT_TAG`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

DEPLOYMENT_TAG = "runbook:deployment"
MANAGED_BY_TAG = "runbook:managed-by"


def tag_dict(tags: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    """AWS tags as a dict, from any of the list shapes AWS APIs use (``Key``/``Value`` or ``key``/``value``)."""
    return {t.get("Key", t.get("key", "")): t.get("Value", t.get("value", "")) for t in tags or []}

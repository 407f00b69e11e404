"""Targeted corrections of moto behaviour that differs from AWS and makes Terraform drift.

Each fix is small, idempotent and documented with the AWS behaviour it restores.
``apply()`` is called once when the server app is built.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_APPLIED = False

# Resource types a launch template's own data may tag (LaunchTemplateData.TagSpecifications).
_TEMPLATE_DATA_TAG_TYPES = {"instance", "volume", "network-interface", "spot-instances-request", "elastic-gpu"}


def _keep_launch_template_tags_off_its_data() -> None:
    """CreateLaunchTemplate's own ``TagSpecification`` (ResourceType=launch-template) tags the
    template; moto also copies it into version 1's LaunchTemplateData, so the AWS provider
    sees an extra ``tag_specifications`` block and plans a new version on every run."""
    from moto.ec2.models.launch_templates import LaunchTemplateBackend

    original = LaunchTemplateBackend.create_launch_template

    def create_launch_template(self: Any, name: str, description: str, template_data: dict[str, Any],
                               tag_spec: dict[str, Any]) -> Any:
        specs = template_data.get("TagSpecifications")
        if specs:
            template_data["TagSpecifications"] = [
                spec for spec in specs if spec.get("ResourceType") in _TEMPLATE_DATA_TAG_TYPES
            ]
            if not template_data["TagSpecifications"]:
                del template_data["TagSpecifications"]
        return original(self, name, description, template_data, tag_spec)

    create_launch_template.__wrapped__ = original  # type: ignore[attr-defined]
    LaunchTemplateBackend.create_launch_template = create_launch_template  # type: ignore[method-assign]


def _route_tables_and_vpc_cidrs_change_one_at_a_time() -> None:
    """On AWS every route table of a VPC has a local route for each of the VPC's CIDR blocks.
    moto adds it when a table is created (for the CIDRs already associated) and when a CIDR is
    associated (to the tables already there); the server is threaded, so a table created while
    Terraform associates the secondary CIDR could miss the route, and disassociating the CIDR
    at destroy then failed with InvalidRoute.NotFound. One lock makes the two atomic."""
    from moto.ec2.models.route_tables import RouteBackend
    from moto.ec2.models.vpcs import VPCBackend

    lock = threading.RLock()
    for owner, name in ((RouteBackend, "create_route_table"), (VPCBackend, "associate_vpc_cidr_block"),
                        (VPCBackend, "disassociate_vpc_cidr_block")):
        original = getattr(owner, name)

        @functools.wraps(original)
        def locked(self: Any, *args: Any, __original=original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        setattr(owner, name, locked)


def _log_groups_take_a_kms_key_after_creation() -> None:
    """CloudWatch Logs' AssociateKmsKey / DisassociateKmsKey (a log group's key set or removed after
    it was created): moto has neither, so the AWS provider, updating ``kms_key_id`` of a log group
    (one a resume adopted, its key made again), retried "not implemented" until it timed out."""
    from moto.logs.exceptions import ResourceNotFoundException
    from moto.logs.responses import LogsResponse

    def set_key(self: Any, key: str | None) -> str:
        group = self.logs_backend.groups.get(self._get_param("logGroupName"))
        if group is None:
            raise ResourceNotFoundException("The specified log group does not exist.")
        group.kms_key_id = key
        return ""

    LogsResponse.associate_kms_key = lambda self: set_key(self, self._get_param("kmsKeyId"))  # type: ignore[attr-defined]
    LogsResponse.disassociate_kms_key = lambda self: set_key(self, None)  # type: ignore[attr-defined]


def apply() -> None:
    """Install every fix (once per process)."""
    global _APPLIED
    if _APPLIED:
        return
    _keep_launch_template_tags_off_its_data()
    _route_tables_and_vpc_cidrs_change_one_at_a_time()
    _log_groups_take_a_kms_key_after_creation()
    _APPLIED = True

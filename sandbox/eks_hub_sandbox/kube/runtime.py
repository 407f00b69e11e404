"""What the controllers share: the cluster, the settings, the local-AWS gateway, and each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .cluster import Cluster
from .nodes import NodeAddressPool
from .settings import Settings

if TYPE_CHECKING:
    from .auth import ServiceAccountTokens
    from .aws import AwsGateway
    from .controllers.base import Controller
    from .storage import VolumeStore


@dataclass
class Runtime:
    cluster: Cluster
    settings: Settings
    aws: "AwsGateway | None" = None
    controllers: dict[str, "Controller"] = field(default_factory=dict)
    node_addresses: NodeAddressPool = field(default_factory=NodeAddressPool)
    cluster_name: str = "sandbox"
    volumes: "VolumeStore | None" = None
    tokens: "ServiceAccountTokens | None" = None

    def controller(self, name: str):
        return self.controllers.get(name)

    async def wipe(self) -> None:
        """Reset the cluster as if it had been deleted and created again (see ``node_groups``)."""
        from .controllers.node_groups import wipe_cluster

        await wipe_cluster(self)

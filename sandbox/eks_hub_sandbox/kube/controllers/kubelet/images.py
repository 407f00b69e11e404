"""Image pulls, emulated: the first pull of an image on a node takes
``RUNBOOK_SANDBOX_PULL_DELAY`` seconds; afterwards the node has it cached (listed in
``node.status.images``) and containers start at once. Events: Pulling / Pulled."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...cluster import Cluster

NODES = ("", "nodes")


def image_digest(image: str) -> str:
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def image_id(image: str) -> str:
    repository = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image.split("@")[0]
    return f"{repository}@{image_digest(image)}"


def image_size(image: str) -> int:
    return 200_000_000 + int(hashlib.sha256(image.encode()).hexdigest()[:6], 16) * 100


class ImagePuller:
    def __init__(self, cluster: "Cluster", pull_delay: float):
        self.cluster = cluster
        self.pull_delay = pull_delay
        self._cached: dict[str, set[str]] = {}
        self._pulls: dict[tuple[str, str], asyncio.Future] = {}

    def cached(self, node: str, image: str) -> bool:
        return image in self._cached.get(node, set())

    def forget_node(self, node: str) -> None:
        self._cached.pop(node, None)

    async def ensure(self, pod: dict, container: dict, node: str, field_path: str) -> None:
        """Make ``container``'s image present on ``node``, recording the kubelet's events."""
        image = container.get("image", "")
        policy = container.get("imagePullPolicy", "IfNotPresent")
        if self.cached(node, image) and policy != "Always":
            self.cluster.record_event(pod, "Pulled", f'Container image "{image}" already present on machine',
                                      component="kubelet", host=node, field_path=field_path)
            return
        key = (node, image)
        started = time.monotonic()
        self.cluster.record_event(pod, "Pulling", f'Pulling image "{image}"', component="kubelet", host=node,
                                  field_path=field_path)
        pending = self._pulls.get(key)
        if pending is None:
            pending = self._pulls[key] = asyncio.ensure_future(self._pull(node, image))
        try:
            await asyncio.shield(pending)
        finally:
            if pending.done():
                self._pulls.pop(key, None)
        elapsed = time.monotonic() - started
        self.cluster.record_event(
            pod, "Pulled", f'Successfully pulled image "{image}" in {elapsed:.3f}s ({elapsed:.3f}s including waiting). '
            f"Image size: {image_size(image)} bytes.", component="kubelet", host=node, field_path=field_path)

    async def _pull(self, node: str, image: str) -> None:
        await asyncio.sleep(0.05 if self.cached(node, image) else self.pull_delay)
        self._cached.setdefault(node, set()).add(image)

        def record(obj: dict):
            images = obj.setdefault("status", {}).setdefault("images", [])
            if not any(image in entry.get("names", []) for entry in images):
                images.append({"names": [image_id(image), image], "sizeBytes": image_size(image)})
        self.cluster.mutate(NODES, "", node, record)

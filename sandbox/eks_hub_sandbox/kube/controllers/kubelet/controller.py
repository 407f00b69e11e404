"""The kubelet of every node: runs the pods bound to nodes as local processes.

Per pod: a ``PodWorker``. Pods whose node disappeared are removed (pod garbage
collection); pods being deleted are stopped gracefully and then removed from the
API; on shutdown every process tree is stopped. Logs are kept per container under
``<state>/kubelet/pods/<ns>_<name>_<uid>/logs/`` and served by ``pods/<name>/log``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..base import Controller
from . import processes
from .images import ImagePuller
from .network import PodAddressPool
from .worker import PodWorker

log = logging.getLogger(__name__)

PODS, NODES = ("", "pods"), ("", "nodes")
VOLUME_KEYS = (("", "persistentvolumeclaims"), ("", "persistentvolumes"), ("", "configmaps"), ("", "secrets"))
SHUTDOWN_GRACE = 3.0


class Kubelet(Controller):
    name = "kubelet"
    watches = (PODS, NODES)
    debounce = 0.02

    def __init__(self, runtime):
        super().__init__(runtime)
        self.root = self.settings.state_dir / "kubelet"
        self.pods_dir = self.root / "pods"
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.marker = str(self.settings.state_dir)
        self.api_host, self.api_port = self.settings.host, self.settings.port
        self.addresses = PodAddressPool(self.marker)
        self.images = ImagePuller(self.cluster, self.settings.pull_delay)
        self.workers: dict[str, PodWorker] = {}
        self._volume_event = asyncio.Event()
        processes.kill_leftovers(self.marker)

    def start(self) -> None:
        super().start()
        self.cluster.store.subscribe(VOLUME_KEYS, lambda key, change: self._volume_event.set())

    def interested(self, key, change) -> bool:
        if key == NODES:
            return change.type == "DELETED"
        pod = change.obj
        if change.type == "DELETED":
            return pod["metadata"]["uid"] in self.workers
        if not (pod.get("spec") or {}).get("nodeName"):
            return False
        old = change.old
        return old is None or (old.get("spec") or {}).get("nodeName") != pod["spec"]["nodeName"] or \
            old["metadata"].get("deletionTimestamp") != pod["metadata"].get("deletionTimestamp") or \
            pod["metadata"]["uid"] not in self.workers

    async def volume_changes(self, timeout: float) -> None:
        """Wait until a claim, volume, ConfigMap or Secret changes (or ``timeout``)."""
        self._volume_event.clear()
        try:
            await asyncio.wait_for(self._volume_event.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def reconcile(self) -> None:
        store = self.cluster.store
        nodes = {n["metadata"]["name"]: n for n in store.list(NODES)}
        seen = set()
        for pod in store.list(PODS, predicate=lambda p: bool((p.get("spec") or {}).get("nodeName"))):
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            worker = self.workers.get(uid)
            node = nodes.get(pod["spec"]["nodeName"])
            if worker is not None:
                if node is None:
                    worker.terminate(0, remove=True)
                else:
                    worker.update(pod)
                continue
            if node is None:  # pod garbage collection: the node is gone
                self.cluster.remove(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
                continue
            if pod["metadata"].get("deletionTimestamp"):
                self.cluster.remove(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            worker = self.workers[uid] = PodWorker(self, pod, node)
            worker.start()
        for uid, worker in list(self.workers.items()):
            if uid not in seen and not worker.terminating:
                worker.terminate(0, remove=False)
        for name in [n for n in list(self.images._cached) if n not in nodes]:
            self.images.forget_node(name)

    def reset(self) -> None:
        """The cluster was wiped: nodes are new machines with empty image caches."""
        self.images = ImagePuller(self.cluster, self.settings.pull_delay)

    def release(self, worker: PodWorker) -> None:
        """Called by a worker when its processes are gone."""
        if worker.pod_ip and worker.pod_ip != worker.host_ip:
            self.addresses.release(worker.pod_ip)
        self.workers.pop(worker.uid, None)

    def log_path(self, pod: dict, container: str) -> Path:
        meta = pod["metadata"]
        return self.pods_dir / f"{meta['namespace']}_{meta['name']}_{meta['uid']}" / "logs" / f"{container}.log"

    async def read_log(self, pod: dict, container: str, tail_lines: int | None, previous: bool,
                       limit_bytes: int | None) -> bytes:
        path = self.log_path(pod, container)
        if not path.exists():
            from ...errors import bad_request
            raise bad_request(f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: '
                              f"ContainerCreating")
        data = await asyncio.to_thread(path.read_bytes)
        if tail_lines is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail_lines:]) if tail_lines > 0 else b""
        if limit_bytes is not None:
            data = data[:limit_bytes]
        return data

    async def follow_log(self, pod: dict, container: str):
        """New log output until the pod is gone (polled, only while someone follows)."""
        path = self.log_path(pod, container)
        position = path.stat().st_size if path.exists() else 0
        uid = pod["metadata"]["uid"]
        while uid in self.workers:
            await asyncio.sleep(0.25)
            if path.exists() and path.stat().st_size > position:
                with open(path, "rb") as handle:
                    handle.seek(position)
                    chunk = handle.read()
                position += len(chunk)
                yield chunk

    async def stop(self) -> None:
        tasks = [worker.terminate(SHUTDOWN_GRACE, remove=False) for worker in list(self.workers.values())]
        if tasks:
            log.info("kubelet: stopping %d pod(s)", len(tasks))
            await asyncio.gather(*tasks, return_exceptions=True)
        await super().stop()

"""The kubelet of every node: runs the pods bound to nodes as local processes, each container
in mount and PID namespaces of its own where the machine allows (``isolation``), with the
node's EFS mounts (``mounts``).

Per pod: a ``PodWorker``. Pods whose node disappeared are removed (pod garbage
collection); pods being deleted are stopped gracefully and then removed from the
API; on shutdown every process tree is stopped. Logs are kept per container under
``<state>/kubelet/pods/<ns>_<name>_<uid>/logs/`` and served by ``pods/<name>/log`` (each
run of a container appends to its file; the worker notes where each run starts, for
``--previous``). ``container_context`` tells ``pods/<name>/exec`` how a running container
is run (environment, working folder). NVIDIA devices are allocated per container
(``devices``): ``NVIDIA_VISIBLE_DEVICES`` names the GPU / MIG device each got.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from ..base import Controller
from ..device_plugins import node_devices
from eks_hub_runbook.paths import REPO_ROOT
from eks_hub_runbook.paths import state_dir as runbook_state_dir

from . import isolation, processes
from .devices import DeviceManager, device_env
from .images import ImagePuller
from .mounts import NodeMounts
from .network import PodAddressPool
from .worker import PodWorker

log = logging.getLogger(__name__)

PODS, NODES = ("", "pods"), ("", "nodes")
VOLUME_KEYS = (("", "persistentvolumeclaims"), ("", "persistentvolumes"), ("", "configmaps"), ("", "secrets"))
SHUTDOWN_GRACE = 3.0


@dataclass
class ContainerContext:
    """What a process started in a running container gets: the container's environment,
    its working folder, the pod IP, and the container's main process (alive)."""

    env: dict[str, str]
    cwd: Path
    pod_ip: str | None
    process: processes.ContainerProcess
    plan: "isolation.Plan | None" = None  # set when the container runs in namespaces of its own


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
        self.devices = DeviceManager()
        self._volume_event = asyncio.Event()
        processes.kill_leftovers(self.marker)
        self.isolated = isolation.supported()
        (log.info if self.isolated else log.warning)("kubelet: %s", isolation.describe())
        self.mounts = NodeMounts(self.root / "node-mounts", self.settings.region, self.marker)
        # what no container may see (kubeconfig, Terraform state, every pod's volume folders),
        # and what every one needs where it is (the repository: the local "images")
        self.hidden_roots = sorted({str(self.settings.state_dir), str(runbook_state_dir())})
        self.keep_roots = [str(REPO_ROOT), sys.prefix, sys.base_prefix]

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

    def allocate_devices(self, pod: dict, container: dict, node_name: str) -> tuple[dict[str, str], list]:
        """The NVIDIA devices of a container (the device manager's, from its node's devices):
        the environment the device plugin gives it and the devices. Raises ``DevicesUnavailable``."""
        node = self.cluster.store.get(NODES, "", node_name)
        if node is None:
            return {}, []
        available = node_devices(node, self.cluster.store.list(("", "configmaps")))
        devices = self.devices.allocate(node_name, pod["metadata"]["uid"], container, available)
        return device_env(devices), devices

    def release(self, worker: PodWorker) -> None:
        """Called by a worker when its processes are gone: its pod IP and devices are free."""
        self.devices.release(worker.uid)
        if worker.pod_ip and worker.pod_ip != worker.host_ip:
            self.addresses.release(worker.pod_ip)
        self.workers.pop(worker.uid, None)

    def log_path(self, pod: dict, container: str) -> Path:
        meta = pod["metadata"]
        return self.pods_dir / f"{meta['namespace']}_{meta['name']}_{meta['uid']}" / "logs" / f"{container}.log"

    def container_process(self, namespace: str, name: str, container: str):
        """The running worker of a pod and its container's live process, or ``(None, None)``."""
        worker = next((w for w in self.workers.values() if w.namespace == namespace and w.name == name
                       and not w.terminating), None)
        process = worker.processes.get(container) if worker is not None else None
        if process is None or process.returncode is not None:
            return worker, None
        return worker, process

    def container_context(self, namespace: str, name: str, container: str) -> ContainerContext | None:
        """How the kubelet runs a pod's running container (for ``kubectl exec``), or None when it is not running."""
        worker, process = self.container_process(namespace, name, container)
        if process is None or container not in worker.contexts:
            return None
        env, cwd = worker.contexts[container]
        return ContainerContext(dict(env), Path(cwd), worker.pod_ip, process, worker.plans.get(container))

    def _instance_range(self, pod: dict, container: str, previous: bool) -> tuple[int, int | None] | None:
        """Byte range of the current (or previous) run of a container in its log file; None: no such run."""
        worker = self.workers.get(pod["metadata"]["uid"])
        starts = worker.log_starts.get(container, []) if worker is not None else []
        if previous:
            return (starts[-2], starts[-1]) if len(starts) >= 2 else None
        return (starts[-1] if starts else 0), None

    def read_log_range(self, pod: dict, container: str, tail_lines: int | None, previous: bool,
                       limit_bytes: int | None) -> tuple[bytes, int]:
        """The log of the container's current (or previous) run, and the file offset where it ended."""
        from ...errors import bad_request
        path = self.log_path(pod, container)
        name = pod["metadata"]["name"]
        span = self._instance_range(pod, container, previous)
        if span is None:
            raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
        if not path.exists():
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')
        with open(path, "rb") as handle:
            handle.seek(span[0])
            data = handle.read() if span[1] is None else handle.read(span[1] - span[0])
        end = span[0] + len(data)
        if tail_lines is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail_lines:]) if tail_lines > 0 else b""
        if limit_bytes is not None:
            data = data[:limit_bytes]
        return data, end

    async def read_log(self, pod: dict, container: str, tail_lines: int | None, previous: bool,
                       limit_bytes: int | None) -> bytes:
        """The log of the container's current (or previous) run."""
        data, _ = await asyncio.to_thread(self.read_log_range, pod, container, tail_lines, previous, limit_bytes)
        return data

    async def follow_log(self, pod: dict, container: str, position: int | None = None):
        """New log output from ``position`` (default: the end) until the container's current run
        ends or the pod is gone (polled, only while someone follows; ``b""`` when nothing is new)."""
        path = self.log_path(pod, container)
        if position is None:
            position = path.stat().st_size if path.exists() else 0
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        process = worker.processes.get(container) if worker is not None else None
        while True:
            done = uid not in self.workers or process is None or process.returncode is not None
            if not done:
                await asyncio.sleep(0.25)
            if path.exists() and path.stat().st_size > position:
                with open(path, "rb") as handle:
                    handle.seek(position)
                    chunk = handle.read()
                position += len(chunk)
                yield chunk
            elif not done:
                yield b""
            if done:
                return

    async def stop(self) -> None:
        tasks = [worker.terminate(SHUTDOWN_GRACE, remove=False) for worker in list(self.workers.values())]
        if tasks:
            log.info("kubelet: stopping %d pod(s)", len(tasks))
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.mounts.stop()
        await super().stop()

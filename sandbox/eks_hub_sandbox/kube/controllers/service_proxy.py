"""kube-proxy: Service traffic reaches the Service's ready pods.

On a node, kube-proxy rewrites connections to a Service's virtual IP to one of its ready
endpoints. Nothing routes the service CIDR on this machine, so here each TCP port of each
Service with a selector gets a listener on the Service's loopback stand-in address
(:func:`.kubelet.network.service_address`; the kubelet's service environment variables,
``<NAME>_SERVICE_HOST``, name that address), and every connection is piped to a ready pod
matching the selector (round-robin), at the port's ``targetPort`` (a number, or a named
container port of that pod). A connection that finds no ready pod is closed, as kube-proxy
rejects it.

On a node kube-proxy only programs the kernel, which forwards the packets; here the listeners
and their pipes run on a thread and event loop of their own, reading a snapshot of each Service
port's ready endpoints that the controller replaces whenever an endpoint changes. So connections keep
flowing while the emulator's loop is busy (a crowd of pods starting, watches fanning out).

A Service annotated ``sandbox.eks-hub-runbook/host-port: "<port>"`` is also reachable on
``127.0.0.1:<port>`` (its first port): the sandbox's stand-in for what reaches the Service
from outside (the NLB, a presenter's port-forward), e.g. the hub's public URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading

from .base import Controller
from .kubelet.network import service_address
from .workloads.pods import is_ready, is_terminating

log = logging.getLogger(__name__)

SERVICES, PODS = ("", "services"), ("", "pods")
HOST_PORT_ANNOTATION = "sandbox.eks-hub-runbook/host-port"
HOST_ADDRESS = "127.0.0.1"
BUFFER = 65536


def serves(pod: dict) -> bool:
    """Whether a pod takes a Service's traffic (selector aside): Running, Ready, not terminating, with an IP."""
    status = pod.get("status") or {}
    return not is_terminating(pod) and bool(status.get("podIP")) and status.get("phase") == "Running" and is_ready(pod)


def ready_endpoints(pods: list[dict], selector: dict) -> list[dict]:
    """The pods a Service with ``selector`` sends traffic to: matching, Running, Ready, not terminating."""
    if not selector:
        return []
    return [pod for pod in pods if serves(pod)
            and all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]


def _as_endpoint(pod: dict | None) -> tuple | None:
    """What of a pod the Services' routes depend on (None: not an endpoint)."""
    if pod is None or not serves(pod):
        return None
    return pod["status"]["podIP"], tuple(sorted((pod["metadata"].get("labels") or {}).items()))


def target_port(pod: dict, port: dict) -> int | None:
    """The pod's port for a Service port: ``targetPort`` as a number or a named container port."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == target:
                return declared.get("containerPort")
    return None


def listeners_of(svc: dict, seed: str) -> dict[tuple[str, int], int]:
    """(address, port) -> index of the Service port served there."""
    spec = svc.get("spec") or {}
    cluster_ip = spec.get("clusterIP")
    wanted: dict[tuple[str, int], int] = {}
    if not spec.get("selector") or not cluster_ip or cluster_ip == "None":
        return wanted
    for index, port in enumerate(spec.get("ports") or []):
        if port.get("protocol", "TCP") == "TCP":
            wanted[(service_address(cluster_ip, seed), port["port"])] = index
    host_port = (svc["metadata"].get("annotations") or {}).get(HOST_PORT_ANNOTATION, "")
    if host_port.isdigit() and spec.get("ports"):
        wanted[(HOST_ADDRESS, int(host_port))] = 0
    return wanted


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(BUFFER):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


def routes_of(svc: dict, pods: list[dict]) -> dict[tuple[str, str, int], tuple[tuple[str, int], ...]]:
    """(namespace, name, port index) -> the (pod IP, port) each of the Service's ready pods serves it on."""
    meta, spec = svc["metadata"], svc.get("spec") or {}
    endpoints = ready_endpoints(pods, spec.get("selector") or {})
    routes = {}
    for index, port in enumerate(spec.get("ports") or []):
        targets = ((pod["status"]["podIP"], target_port(pod, port)) for pod in endpoints)
        routes[(meta["namespace"], meta["name"], index)] = tuple((ip, number) for ip, number in targets if number)
    return routes


class _PipeLoop:
    """A daemon thread running an event loop of its own: the listeners and their pipes."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="kube-proxy", daemon=True)
        self._thread.start()

    async def run(self, coroutine):
        """Run ``coroutine`` on the pipe loop and wait for it from the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class ServiceProxy(Controller):
    name = "kube-proxy"
    watches = (SERVICES, PODS)

    def __init__(self, runtime):
        super().__init__(runtime)
        self.seed = str(self.settings.state_dir)
        self._servers: dict[tuple[str, int], tuple[str, asyncio.base_events.Server]] = {}  # -> (service uid, server)
        self._failed: set[tuple[str, int]] = set()
        self._turns = itertools.count()
        # replaced whole on every reconcile, read by the pipe loop's thread (one reference: no lock)
        self._routes: dict[tuple[str, str, int], tuple[tuple[str, int], ...]] = {}
        self._pipes = _PipeLoop()

    def interested(self, key, change) -> bool:
        """Services always; a pod only when it becomes or stops being an endpoint (or its address or labels change)."""
        if key != PODS:
            return True
        return _as_endpoint(change.old) != (None if change.type == "DELETED" else _as_endpoint(change.obj))

    async def reconcile(self) -> None:
        wanted: dict[tuple[str, int], tuple[str, str, str, int]] = {}
        routes: dict[tuple[str, str, int], tuple[tuple[str, int], ...]] = {}
        pods: dict[str, list[dict]] = {}  # by namespace, listed once per reconcile
        for svc in self.cluster.store.list(SERVICES):
            meta = svc["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            listeners = listeners_of(svc, self.seed)
            if listeners:
                namespace = meta["namespace"]
                if namespace not in pods:
                    pods[namespace] = self.cluster.store.list(PODS, namespace)
                routes.update(routes_of(svc, pods[namespace]))
            for address, index in listeners.items():
                wanted[address] = (meta["uid"], meta["namespace"], meta["name"], index)
        self._routes = routes
        for address in list(self._servers):
            uid, server = self._servers[address]
            if wanted.get(address, (None,))[0] != uid:
                self._pipes.loop.call_soon_threadsafe(server.close)
                del self._servers[address]
        retry = False
        for address, (uid, namespace, name, index) in wanted.items():
            if address in self._servers:
                continue
            try:
                server = await self._pipes.run(asyncio.start_server(
                    lambda r, w, key=(namespace, name, index): self._connect(r, w, key), *address))
            except OSError as exc:
                if address not in self._failed:
                    log.warning("kube-proxy: cannot listen on %s:%s for service %s/%s: %s", *address, namespace, name, exc)
                    self._failed.add(address)
                retry = True
                continue
            self._failed.discard(address)
            self._servers[address] = (uid, server)
        if retry:
            self.wake_at(5.0)

    async def _connect(self, reader, writer, key: tuple[str, str, int]) -> None:
        """On the pipe loop: one connection to the Service, piped to one of its ready pods."""
        upstream = None
        try:
            targets = self._routes.get(key)
            if not targets:
                return
            address = targets[next(self._turns) % len(targets)]
            up_reader, upstream = await asyncio.wait_for(asyncio.open_connection(*address), 5.0)
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            for stream in (upstream, writer):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()

    async def stop(self) -> None:
        for _, server in self._servers.values():
            self._pipes.loop.call_soon_threadsafe(server.close)
        self._servers.clear()
        self._pipes.stop()  # after the closes: the pipe loop runs its callbacks in order
        await super().stop()

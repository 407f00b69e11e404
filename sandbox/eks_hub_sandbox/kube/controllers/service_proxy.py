"""kube-proxy: Service traffic reaches the Service's ready pods.

On a node, kube-proxy rewrites connections to a Service's virtual IP to one of its ready
endpoints. Nothing routes the service CIDR on this machine, so here each TCP port of each
Service with a selector gets a listener on the Service's loopback stand-in address
(:func:`.kubelet.network.service_address`; the kubelet's service environment variables,
``<NAME>_SERVICE_HOST``, name that address), and every connection is piped to a ready pod
matching the selector (round-robin), at the port's ``targetPort`` (a number, or a named
container port of that pod). A connection that finds no ready pod is closed, as kube-proxy
rejects it.

A Service annotated ``sandbox.eks-hub-runbook/host-port: "<port>"`` is also reachable on
``127.0.0.1:<port>`` (its first port): the sandbox's stand-in for what reaches the Service
from outside (the NLB, a presenter's port-forward), e.g. the hub's public URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

from .base import Controller
from .kubelet.network import service_address
from .workloads.pods import is_ready, is_terminating

log = logging.getLogger(__name__)

SERVICES, PODS = ("", "services"), ("", "pods")
HOST_PORT_ANNOTATION = "sandbox.eks-hub-runbook/host-port"
HOST_ADDRESS = "127.0.0.1"
BUFFER = 65536


def ready_endpoints(pods: list[dict], selector: dict) -> list[dict]:
    """The pods a Service with ``selector`` sends traffic to: matching, Running, Ready, not terminating."""
    chosen = []
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        status = pod.get("status") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            continue
        if not is_terminating(pod) and status.get("podIP") and status.get("phase") == "Running" and is_ready(pod):
            chosen.append(pod)
    return chosen


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


class ServiceProxy(Controller):
    name = "kube-proxy"
    watches = (SERVICES,)

    def __init__(self, runtime):
        super().__init__(runtime)
        self.seed = str(self.settings.state_dir)
        self._servers: dict[tuple[str, int], tuple[str, asyncio.base_events.Server]] = {}  # -> (service uid, server)
        self._failed: set[tuple[str, int]] = set()
        self._turns = itertools.count()

    async def reconcile(self) -> None:
        wanted: dict[tuple[str, int], tuple[str, str, str, int]] = {}
        for svc in self.cluster.store.list(SERVICES):
            meta = svc["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            for address, index in listeners_of(svc, self.seed).items():
                wanted[address] = (meta["uid"], meta["namespace"], meta["name"], index)
        for address in list(self._servers):
            uid, server = self._servers[address]
            if wanted.get(address, (None,))[0] != uid:
                server.close()
                del self._servers[address]
        retry = False
        for address, (uid, namespace, name, index) in wanted.items():
            if address in self._servers:
                continue
            try:
                server = await asyncio.start_server(
                    lambda r, w, ns=namespace, n=name, i=index: self._connect(r, w, ns, n, i), *address)
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

    async def _connect(self, reader, writer, namespace: str, name: str, index: int) -> None:
        upstream = None
        try:
            svc = self.cluster.store.get(SERVICES, namespace, name)
            ports = ((svc or {}).get("spec") or {}).get("ports") or []
            if svc is None or index >= len(ports):
                return
            endpoints = ready_endpoints(self.cluster.store.list(PODS, namespace), svc["spec"].get("selector") or {})
            if not endpoints:
                return
            pod = endpoints[next(self._turns) % len(endpoints)]
            port = target_port(pod, ports[index])
            if port is None:
                return
            up_reader, upstream = await asyncio.wait_for(asyncio.open_connection(pod["status"]["podIP"], port), 5.0)
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
            server.close()
        self._servers.clear()
        await super().stop()

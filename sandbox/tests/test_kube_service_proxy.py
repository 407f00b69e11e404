"""The sandbox's kube-proxy and the service environment the kubelet writes (pure parts; the hub
and proxy reaching each other through them run in test_hub_sandbox / test_hub_client)."""

from __future__ import annotations

from pathlib import Path

from eks_hub_sandbox.kube.controllers.kubelet.commands import container_env, service_env
from eks_hub_sandbox.kube.controllers.kubelet.network import service_address
from eks_hub_sandbox.kube.controllers.kubelet.volumes import build_rootfs
from eks_hub_sandbox.kube.controllers.service_proxy import listeners_of, ready_endpoints, target_port

SEED = "/tmp/some-state"


def _pod(name, labels, ready=True, ip="127.9.0.10", deleting=False, phase="Running"):
    meta = {"name": name, "namespace": "ns", "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8081}]}]},
            "status": {"phase": phase, "podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _service(name, ports, selector=None, cluster_ip="172.20.3.4", annotations=None):
    return {"metadata": {"name": name, "namespace": "ns", "uid": name, "annotations": annotations or {}},
            "spec": {"clusterIP": cluster_ip, "selector": selector if selector is not None else {"app": name}, "ports": ports}}


class _Store:
    def __init__(self, services):
        self.services = services

    def list(self, key, namespace=None):
        return [s for s in self.services if namespace in (None, s["metadata"]["namespace"])]

    def get(self, key, namespace, name):
        return None


def test_service_addresses_keep_the_virtual_ips_host_part_in_a_block_of_their_own():
    address = service_address("172.20.3.4", SEED)
    assert address.startswith("127.") and address.endswith(".3.4")
    assert service_address("172.20.9.9", SEED).split(".")[1] == address.split(".")[1]
    assert service_address("172.20.3.4", "/tmp/other-state") != address  # another emulator: its own block


def test_only_ready_running_matching_pods_get_traffic():
    pods = [_pod("a", {"app": "hub"}), _pod("b", {"app": "hub"}, ready=False), _pod("c", {"app": "proxy"}),
            _pod("d", {"app": "hub"}, deleting=True), _pod("e", {"app": "hub"}, phase="Pending")]
    assert [p["metadata"]["name"] for p in ready_endpoints(pods, {"app": "hub"})] == ["a"]
    assert ready_endpoints(pods, {}) == []  # a Service without a selector has no endpoints here


def test_target_ports_by_number_or_container_port_name():
    pod = _pod("a", {"app": "hub"})
    assert target_port(pod, {"port": 80, "targetPort": "http"}) == 8081
    assert target_port(pod, {"port": 80, "targetPort": 8000}) == 8000
    assert target_port(pod, {"port": 80}) == 80
    assert target_port(pod, {"port": 80, "targetPort": "nope"}) is None


def test_listeners_per_tcp_port_and_the_host_port_annotation():
    svc = _service("proxy-public", [{"port": 80, "targetPort": "http"}, {"port": 53, "protocol": "UDP"}],
                   annotations={"sandbox.eks-hub-runbook/host-port": "31999"})
    listeners = listeners_of(svc, SEED)
    assert listeners == {(service_address("172.20.3.4", SEED), 80): 0, ("127.0.0.1", 31999): 0}
    assert listeners_of(_service("headless", [{"port": 80}], cluster_ip="None"), SEED) == {}
    assert listeners_of(_service("external", [{"port": 80}], selector={}), SEED) == {}


def test_service_environment_variables_as_the_kubelet_writes_them():
    store = _Store([_service("proxy-api", [{"port": 8001, "targetPort": "api"}]),
                    _service("hub", [{"name": "hub", "port": 8081}], cluster_ip="172.20.1.2")])
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {}}
    env = service_env(pod, store, SEED)
    host = service_address("172.20.1.2", SEED)
    assert env["HUB_SERVICE_HOST"] == host and env["HUB_SERVICE_PORT"] == "8081" and env["HUB_SERVICE_PORT_HUB"] == "8081"
    assert env["HUB_PORT"] == f"tcp://{host}:8081" and env["HUB_PORT_8081_TCP_ADDR"] == host
    assert env["PROXY_API_SERVICE_PORT"] == "8001"
    assert service_env({**pod, "spec": {"enableServiceLinks": False}}, store, SEED) == {}
    container = {"name": "c", "env": [{"name": "TARGET", "value": "http://$(HUB_SERVICE_HOST):$(HUB_SERVICE_PORT)"},
                                      {"name": "HUB_SERVICE_PORT", "value": "9"}]}
    resolved = container_env(pod, container, store, env)
    assert resolved["TARGET"] == f"http://{host}:8081"  # expanded from the service variables
    assert resolved["HUB_SERVICE_PORT"] == "9"  # the container's own env wins


def test_paths_under_mounts_become_local_and_a_file_subpath_is_a_file(tmp_path: Path):
    config = tmp_path / "volumes" / "config"
    config.mkdir(parents=True)
    (config / "jupyterhub_config.py").write_text("c = 1\n")
    data = tmp_path / "volumes" / "pvc"
    data.mkdir()
    container = {"name": "hub", "volumeMounts": [
        {"name": "config", "mountPath": "/usr/local/etc/jupyterhub/jupyterhub_config.py", "subPath": "jupyterhub_config.py"},
        {"name": "pvc", "mountPath": "/srv/jupyterhub"}]}
    rootfs = build_rootfs(tmp_path, container, {"config": config, "pvc": data}, {})
    local = Path(rootfs.localize("/usr/local/etc/jupyterhub/jupyterhub_config.py"))
    assert local.is_file() and local.read_text() == "c = 1\n"
    assert rootfs.localize("--db=/srv/jupyterhub/x.sqlite") == f"--db={rootfs.root}/srv/jupyterhub/x.sqlite"
    assert rootfs.localize("/etc/passwd") == "/etc/passwd"  # not under a mount: the machine's own
    assert rootfs.localize("http://0.0.0.0:8000") == "http://0.0.0.0:8000"


def test_routes_name_each_service_ports_ready_pods():
    from eks_hub_sandbox.kube.controllers.service_proxy import routes_of

    svc = _service("hub", [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 9000}])
    pods = [_pod("a", {"app": "hub"}), _pod("b", {"app": "hub"}, ip="127.9.0.11"), _pod("c", {"app": "hub"}, ready=False)]
    assert routes_of(svc, pods) == {("ns", "hub", 0): (("127.9.0.10", 8081), ("127.9.0.11", 8081)),
                                    ("ns", "hub", 1): (("127.9.0.10", 9000), ("127.9.0.11", 9000))}
    assert routes_of(_service("hub", [{"port": 80, "targetPort": "nope"}]), pods) == {("ns", "hub", 0): ()}


def test_kube_proxy_wakes_for_a_pod_only_when_its_endpoint_changes(tmp_path):
    from types import SimpleNamespace

    from eks_hub_sandbox.kube.controllers.service_proxy import PODS, SERVICES, ServiceProxy
    from eks_hub_sandbox.kube.store import Change, Store

    proxy = ServiceProxy(SimpleNamespace(cluster=SimpleNamespace(store=Store()), settings=SimpleNamespace(state_dir=tmp_path)))
    try:
        ready, pending = _pod("a", {"app": "hub"}), _pod("a", {"app": "hub"}, ready=False)
        relabeled, annotated = _pod("a", {"app": "proxy"}), _pod("a", {"app": "hub"})
        annotated["metadata"]["annotations"] = {"x": "y"}
        assert proxy.interested(PODS, Change(2, "MODIFIED", ready, pending))  # became ready
        assert proxy.interested(PODS, Change(3, "MODIFIED", relabeled, ready))
        assert proxy.interested(PODS, Change(4, "DELETED", ready, ready))
        assert not proxy.interested(PODS, Change(5, "MODIFIED", annotated, ready))
        assert not proxy.interested(PODS, Change(6, "ADDED", pending, None))
        assert proxy.interested(SERVICES, Change(7, "ADDED", _service("hub", []), None))
    finally:
        proxy._pipes.stop()


def test_connections_flow_while_the_emulators_loop_is_blocked(tmp_path):
    """kube-proxy's pipes run on a loop of their own: a connection made while the emulator's loop is
    held (here by joining the client's thread on it) still reaches the pod and gets its answer."""
    import asyncio
    import socket
    import socketserver
    import threading
    from types import SimpleNamespace

    from eks_hub_sandbox.kube.controllers.service_proxy import PODS, SERVICES, ServiceProxy
    from eks_hub_sandbox.kube.store import Store

    class Echo(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(self.request.recv(64))

    pod_ip = "127.9.0.10"
    with socketserver.ThreadingTCPServer((pod_ip, 0), Echo) as echo:
        threading.Thread(target=echo.serve_forever, daemon=True).start()
        address = service_address("172.20.3.4", str(tmp_path))
        with socket.socket() as probe:  # a free port on the Service's stand-in address
            probe.bind((address, 0))
            port = probe.getsockname()[1]
        store = Store()
        store.put(SERVICES, _service("hub", [{"port": port, "targetPort": echo.server_address[1]}]))
        store.put(PODS, _pod("a", {"app": "hub"}, ip=pod_ip))
        answer: list[bytes] = []

        def client() -> None:
            with socket.create_connection((address, port), timeout=10) as connection:
                connection.sendall(b"ping")
                answer.append(connection.recv(4))

        async def main() -> None:
            proxy = ServiceProxy(SimpleNamespace(cluster=SimpleNamespace(store=store), settings=SimpleNamespace(state_dir=tmp_path)))
            await proxy.reconcile()
            try:
                thread = threading.Thread(target=client)
                thread.start()
                thread.join(timeout=15)  # blocks this (the emulator's) loop until the client is done
            finally:
                await proxy.stop()

        asyncio.run(main())
        echo.shutdown()
    assert answer == [b"ping"]

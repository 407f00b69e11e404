"""KubeSpawner (the real package, kubernetes_asyncio) against the sandbox cluster: two users
of the GPU time-slicing profile share one g5.2xlarge that shows ``nvidia.com/gpu: 4``; the
second starts without a new node and without an image pull; stopping leaves nothing."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest
from aiohttp import web

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

NAMESPACE = "jupyterhub"
POOL = "gpu-ts-spawner"
IMAGE = "cschranz/gpu-jupyter:v1.6_cuda-12.0_ubuntu-22.04"


class _User:
    """The parts of a JupyterHub user a spawner reads."""

    def __init__(self, name: str):
        from jupyterhub.objects import Server

        self.name = self.escaped_name = name
        self.id = sum(map(ord, name))
        self.url = f"/user/{name}/"
        self.server = Server(base_url=self.url)


async def _fake_hub() -> tuple[web.AppRunner, int]:
    """Just enough Hub API for jupyterhub-singleuser to start: the version check and activity."""
    import jupyterhub

    async def version(_request):
        return web.json_response({"version": jupyterhub.__version__},
                                 headers={"X-JupyterHub-Version": jupyterhub.__version__})

    async def ok(_request):
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/hub/api", version)
    app.router.add_get("/hub/api/", version)
    app.router.add_route("*", "/hub/api/{tail:.*}", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def _spawner(user: _User, hub_port: int):
    from jupyterhub.objects import Hub
    from kubespawner import KubeSpawner

    spawner = KubeSpawner(
        _mock=True, user=user, hub=Hub(ip="127.0.0.1", port=hub_port, base_url="/hub/"), namespace=NAMESPACE,
        api_token=f"token-{user.name}", oauth_client_id=f"jupyterhub-user-{user.name}", image=IMAGE,
        node_selector={"sandbox-test/pool": POOL},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        extra_resource_limits={"nvidia.com/gpu": "1"}, cpu_guarantee=2, mem_guarantee="4G", start_timeout=90)
    spawner.server = user.server
    return spawner


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@pytest.fixture(scope="module")
def gpu_pool(kube_api, kubectl, karpenter_pool, nvidia_time_slicing):
    from kubernetes import client

    try:
        client.CoreV1Api(kube_api).create_namespace({"metadata": {"name": NAMESPACE}})
    except client.ApiException as exc:
        assert exc.status == 409
    karpenter_pool(POOL, [
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5"]},
        {"key": "karpenter.k8s.aws/instance-size", "operator": "In", "values": ["2xlarge", "4xlarge", "8xlarge"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
    ], taints=[{"key": "nvidia.com/gpu", "value": "Exists", "effect": "NoSchedule"}], labels={"accelerator": "nvidia"})
    return POOL


def test_two_users_share_one_time_sliced_g5(kube_sandbox, kube_api, gpu_pool, monkeypatch):
    from eks_hub_runbook import kube

    from kubernetes_asyncio.config import kube_config
    from kubespawner import clients

    # kubernetes_asyncio reads $KUBECONFIG once, when first imported (maybe by another test module),
    # and KubeSpawner caches the loaded configuration: point both at the sandbox for this test.
    monkeypatch.setenv("KUBECONFIG", str(kube_sandbox.kubeconfig_path()))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kube_sandbox.kubeconfig_path()))
    clients.load_config.cache_clear()
    monkeypatch.setattr(clients, "_client_cache", {})
    pull_delay = float(os.environ["RUNBOOK_SANDBOX_PULL_DELAY"])

    async def scenario():
        import aiohttp

        runner, hub_port = await _fake_hub()
        spawners, timings, urls = [], [], []
        try:
            for name in ("user-1", "user-2"):
                spawner = _spawner(_User(name), hub_port)
                started = time.monotonic()
                url = await spawner.start()
                timings.append(time.monotonic() - started)
                host, port = url.split("//")[1].split(":")
                spawner.server.ip, spawner.server.port = host, int(port)  # as JupyterHub records it
                urls.append(url)
                spawners.append(spawner)
                assert await spawner.poll() is None
                async with aiohttp.ClientSession() as session:
                    async with session.get(f"{url}/user/{name}/api") as response:
                        assert response.status == 200
                        assert "version" in await response.json()
            placement = {row["pod"]: row for row in kube.placement(kube_api, NAMESPACE, "component=singleuser-server")}
            # by uid: an earlier test's pod of the same name left its events under that name
            events = {pod: kube.events(kube_api, NAMESPACE, pod, involved_uid=row["uid"]) for pod, row in placement.items()}
            for spawner in spawners:
                await spawner.stop()
                assert await spawner.poll() is not None
            return timings, urls, placement, events
        finally:
            await runner.cleanup()

    timings, urls, placement, events = asyncio.run(scenario())

    first, second = placement["jupyter-user-1"], placement["jupyter-user-2"]
    assert first["node"] == second["node"] != ""
    assert first["instance_type"] == "g5.2xlarge" and first["gpu_request"] == 1
    node = next(row for row in kube.nodes(kube_api) if row["node"] == first["node"])
    assert node["gpu_capacity"] == 4 and node["gpu_allocatable"] == 4
    assert len([row for row in kube.nodes(kube_api, f"sandbox-test/pool={POOL}")]) == 1, "second user needed a new node"
    assert urls[0] == f"http://{first['ip']}:8888" and urls[1] == f"http://{second['ip']}:8888"
    assert first["ip"] != second["ip"]

    first_reasons = [e["reason"] for e in events["jupyter-user-1"]]
    second_events = events["jupyter-user-2"]
    assert "Pulling" in first_reasons and "Nominated" in first_reasons
    assert "Pulling" not in [e["reason"] for e in second_events]
    assert any("already present on machine" in e["message"] for e in second_events)
    assert "Nominated" not in [e["reason"] for e in second_events]
    pulled = next(e["message"] for e in events["jupyter-user-1"] if e["reason"] == "Pulled")
    assert float(pulled.split(" in ")[1].split("s")[0]) >= pull_delay  # the first user waited for the pull
    assert timings[0] > pull_delay

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and kube.pods(kube_api, NAMESPACE, "component=singleuser-server"):
        time.sleep(0.2)
    assert kube.pods(kube_api, NAMESPACE, "component=singleuser-server") == []
    for url in urls:
        host, port = url.split("//")[1].split(":")
        assert not _port_open(host, int(port)), f"{url} still answers after stop"

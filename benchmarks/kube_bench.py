"""Benchmark of the sandbox cluster emulator: list latency with 1,000 pods, watch throughput,
idle CPU. Starts a private emulator (own port and state folder), prints a table.

    .venv/bin/python benchmarks/kube_bench.py [--pods 1000] [--events 2000]

Figures are informative (not asserted): they depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _start(state: Path, port: int) -> subprocess.Popen:
    kubeconfig = state / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "eks_hub_sandbox.kube", "--port", str(port), "--state-dir", str(state),
         "--kubeconfig", str(kubeconfig)], stdout=open(state / "emulator.log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if kubeconfig.exists() and kubeconfig.stat().st_size and sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return process


def _timed(function, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000, max(samples) * 1000


def run(pods: int = 1000, events: int = 2000) -> list[tuple[str, str]]:
    """Measure and return (measure, result) pairs."""
    from kubernetes import client, watch

    from eks_hub_runbook import kube

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="kube-bench-") as folder:
        state, port = Path(folder), _free_port()
        emulator = _start(state, port)
        try:
            api = kube.load_client(state / "kubeconfig")
            core = client.CoreV1Api(api)
            core.create_namespace({"metadata": {"name": "bench"}})
            time.sleep(1.0)
            cpu_before, wall_before = _cpu_seconds(emulator.pid), time.monotonic()
            time.sleep(5.0)
            idle = (_cpu_seconds(emulator.pid) - cpu_before) / (time.monotonic() - wall_before) * 100
            rows.append(("idle CPU of the emulator", f"{idle:.2f} %"))

            body = {"metadata": {"name": "", "labels": {"app": "bench"}}, "spec": {
                "schedulerName": "bench-no-scheduler",  # stays Pending: no processes are started
                "containers": [{"name": "c", "image": "python:3.11", "resources": {"requests": {"cpu": "100m"}}}]}}
            started = time.perf_counter()
            for index in range(pods):
                body["metadata"]["name"] = f"pod-{index:05d}"
                core.create_namespaced_pod("bench", body, _preload_content=False)
            elapsed = time.perf_counter() - started
            rows.append((f"create {pods} pods (sequential, validated)", f"{pods / elapsed:.0f} pods/s"))

            def list_json():
                data = core.list_namespaced_pod("bench", _preload_content=False).data
                assert len(json.loads(data)["items"]) == pods
            median, worst = _timed(list_json, 10)
            rows.append((f"list {pods} pods, JSON", f"{median:.0f} ms median, {worst:.0f} ms max"))

            def list_table():
                api.call_api("/api/v1/namespaces/bench/pods", "GET", auth_settings=["BearerToken"],
                             header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
                             _preload_content=False).data
            median, worst = _timed(list_table, 10)
            rows.append((f"list {pods} pods, Table (kubectl get)", f"{median:.0f} ms median, {worst:.0f} ms max"))

            env = {**os.environ, "KUBECONFIG": str(state / "kubeconfig"), "HOME": folder}
            median, worst = _timed(lambda: subprocess.run(["kubectl", "get", "pods", "-n", "bench"], env=env,
                                                          capture_output=True, check=True), 3)
            rows.append((f"kubectl get pods ({pods} rows, process included)", f"{median:.0f} ms median"))

            selected = lambda: core.list_namespaced_pod("bench", label_selector="app=bench",  # noqa: E731
                                                        field_selector="metadata.name=pod-00500",
                                                        _preload_content=False).data
            median, _ = _timed(selected, 10)
            rows.append(("list with label + field selector (1 of 1000)", f"{median:.1f} ms median"))

            start_rv = core.list_namespaced_config_map("bench").metadata.resource_version
            received = []
            done = threading.Event()

            def watcher():
                for _ in watch.Watch().stream(core.list_namespaced_config_map, "bench", resource_version=start_rv,
                                              timeout_seconds=120, _request_timeout=130):
                    received.append(time.perf_counter())
                    if len(received) >= events:
                        break
                done.set()
            thread = threading.Thread(target=watcher, daemon=True)
            thread.start()
            time.sleep(0.5)
            writers = 4
            per_writer = events // writers

            def writer(offset: int):
                own = client.CoreV1Api(kube.load_client(state / "kubeconfig"))
                for index in range(per_writer):
                    own.create_namespaced_config_map("bench", {"metadata": {"name": f"cm-{offset}-{index}"}},
                                                     _preload_content=False)
            started = time.perf_counter()
            threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
            for thread_ in threads:
                thread_.start()
            for thread_ in threads:
                thread_.join()
            done.wait(60)
            live = len(received) / (received[-1] - started) if received else 0
            rows.append((f"watch, live ({writers} writers, {len(received)} events)", f"{live:.0f} events/s"))

            started = time.perf_counter()
            count = 0
            for _ in watch.Watch().stream(core.list_namespaced_config_map, "bench", resource_version=start_rv,
                                          timeout_seconds=30):
                count += 1
                if count >= events:
                    break
            replay = count / (time.perf_counter() - started)
            rows.append((f"watch, replay from a resourceVersion ({count} events)", f"{replay:.0f} events/s"))
            rss = int(next(line for line in Path(f"/proc/{emulator.pid}/status").read_text().splitlines()
                           if line.startswith("VmRSS")).split()[1]) / 1024
            rows.append(("emulator memory (RSS) after the run", f"{rss:.0f} MiB"))
        finally:
            emulator.send_signal(signal.SIGTERM)
            emulator.wait(timeout=30)
    return rows


def benchmark(pods: int = 1000, events: int = 2000) -> list[dict[str, str]]:
    """Rows for the benchmark suite (``benchmarks/suite.py`` item 6)."""
    return [{"measure": name, "result": value} for name, value in run(pods, events)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    rows = run(args.pods, args.events)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 28}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()

"""Background service mechanics: start is idempotent, stop only stops what it started,
status tells what runs where, and no process survives a stop."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import eks_hub_sandbox as sandbox
from eks_hub_runbook.cli import app
from eks_hub_sandbox.errors import SandboxError
from eks_hub_sandbox.paths import sandbox_dir
from eks_hub_runbook.processes import pid_alive
from eks_hub_sandbox import services


@pytest.fixture
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path))
    yield tmp_path
    for name in ("web", "broken", "tree"):
        services.stop(name)


def _http_spec(name: str = "web") -> services.ServiceSpec:
    port = services.reserved_port(name)
    return services.ServiceSpec(name, [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], port)


def test_start_is_idempotent_and_stop_ends_the_process(private_state):
    first = services.start(_http_spec())
    second = services.start(_http_spec())
    assert first.running and second.pid == first.pid
    assert services.status("web").url == f"http://127.0.0.1:{services.reserved_port('web')}"
    assert services.stop("web") is True
    assert not pid_alive(first.pid)
    assert services.status("web").running is False
    assert services.stop("web") is False  # a second stop is a no-op


def test_reserved_port_is_stable(private_state):
    assert services.reserved_port("web") == services.reserved_port("web")


def test_reserved_port_survives_a_killed_service_s_time_wait_connections(private_state):
    """A service SIGKILLed with connections open leaves them in TIME_WAIT on its port; it
    must come back on the same port (the cluster emulator was started with it)."""
    import socket

    port = services.reserved_port("web")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server closes first: its side of the connection waits in TIME_WAIT
    client.close()
    listener.close()
    with socket.socket() as plain:  # what a check without SO_REUSEADDR would see
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    assert services.reserved_port("web") == port


def test_stop_leaves_foreign_processes_alone(private_state):
    foreign = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # A pid file whose pid now belongs to another process (pid reuse) must not be trusted.
        (sandbox_dir() / "web.pid").write_text(f"{foreign.pid} 1")
        assert services.status("web").running is False
        assert services.stop("web") is False
        assert foreign.poll() is None
    finally:
        foreign.kill()
        foreign.wait()


def test_stop_kills_the_whole_process_tree(private_state):
    port = services.reserved_port("tree")
    code = (
        "import subprocess, sys, http.server, socketserver;"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "open('child.pid', 'w').write(str(child.pid));"
        f"socketserver.TCPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    services.start(services.ServiceSpec("tree", [sys.executable, "-c", code], port))
    child_pid = int((private_state / "sandbox" / "child.pid").read_text())
    assert pid_alive(child_pid)
    services.stop("tree")
    deadline = time.monotonic() + 5
    while pid_alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child_pid)


def test_a_service_that_dies_reports_its_log(private_state):
    spec = services.ServiceSpec("broken", [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"], services.free_port())
    with pytest.raises(SandboxError, match="exited with code 3(.|\n)*bad config"):
        services.start(spec)
    assert not services.status("broken").running


def test_env_prints_exports_for_aws_clients(private_state):
    result = CliRunner().invoke(app, ["sandbox", "env"])
    assert result.exit_code == 0
    lines = dict(line.removeprefix("export ").split("=", 1) for line in result.output.strip().splitlines())
    assert lines["AWS_ENDPOINT_URL"] == sandbox.aws_endpoint_url()
    assert lines["AWS_DEFAULT_REGION"] == sandbox.SANDBOX_REGION
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} <= set(lines)


def test_status_lists_every_service(private_state):
    result = CliRunner().invoke(app, ["sandbox", "status"])
    assert result.exit_code == 0
    for name in ("aws", "kube", "oidc"):
        assert name in result.output


def test_down_with_nothing_running(private_state):
    result = CliRunner().invoke(app, ["sandbox", "down"])
    assert result.exit_code == 0 and "nothing was running" in result.output


def test_state_dir_override_is_honoured(private_state):
    assert str(sandbox.kubeconfig_path()).startswith(str(private_state))
    assert os.environ["RUNBOOK_STATE_DIR"] == str(private_state)

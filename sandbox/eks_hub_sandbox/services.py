"""Background services of the local sandbox: start, reuse, inspect, stop.

Each service is a child process started in its own session (so its whole process
tree can be stopped), with a pid file, a log file and a small JSON record of where
it listens, all under the git-ignored sandbox state folder. ``start`` is idempotent:
a running service is reused. ``stop`` only stops processes whose pid file it wrote.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from eks_hub_sandbox.errors import SandboxError
from eks_hub_runbook.processes import pid_alive, start_time
from eks_hub_sandbox.paths import sandbox_dir

LOOPBACK = "127.0.0.1"


@dataclass
class ServiceSpec:
    """How to start one sandbox service.

    ``argv`` may contain ``{port}`` and any key of ``fmt`` as format fields.
    """

    name: str
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    scheme: str = "http"
    ready_timeout: float = 60.0

    @property
    def url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}"


@dataclass
class ServiceStatus:
    """What runs where, as recorded by the pid and info files."""

    name: str
    running: bool
    pid: int | None
    url: str | None
    log: Path

    def as_row(self) -> dict:
        return {
            "service": self.name,
            "state": "running" if self.running else "stopped",
            "pid": self.pid or "",
            "url": self.url or "",
            "log": str(self.log),
        }


def _pid_file(name: str) -> Path:
    return sandbox_dir() / f"{name}.pid"


def _info_file(name: str) -> Path:
    return sandbox_dir() / f"{name}.json"


def log_file(name: str) -> Path:
    """The service's log file (stdout and stderr of the process)."""
    return sandbox_dir() / f"{name}.log"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def reserved_port(name: str) -> int:
    """A stable port per service name, chosen once and kept in ``ports.json``.

    Stable ports keep generated kubeconfigs and Terraform overrides valid across
    ``sandbox down`` / ``up`` cycles.
    """
    ports_path = sandbox_dir() / "ports.json"
    ports = json.loads(ports_path.read_text()) if ports_path.exists() else {}
    port = ports.get(name)
    if port is None or (not _port_open(port) and not _port_bindable(port)):
        port = free_port()
        ports[name] = port
        ports_path.write_text(json.dumps(ports, indent=2))
    return port


def _port_bindable(port: int) -> bool:
    """Whether a service can listen on ``port``: bound as the services bind (SO_REUSEADDR), so
    the TIME_WAIT connections a killed service leaves do not move it to another port (the
    other services, e.g. the cluster's controllers, still know it by the old one)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
            return True
        except OSError:
            return False


def _port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _read_pid(name: str) -> int | None:
    """The pid this state folder started for ``name``, if that very process still exists.

    The pid file holds ``pid start-time``; a recycled pid (same number, other process)
    does not match, so ``stop`` never signals a process it did not start.
    """
    try:
        pid_text, _, started = _pid_file(name).read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if started and start_time(pid) not in (None, started):
        return None
    return pid


def status(name: str) -> ServiceStatus:
    """Status of one service from its pid and info files."""
    pid = _read_pid(name)
    running = pid is not None and pid_alive(pid)
    info = json.loads(_info_file(name).read_text()) if _info_file(name).exists() else {}
    return ServiceStatus(name, running, pid if running else None, info.get("url"), log_file(name))


def start(spec: ServiceSpec) -> ServiceStatus:
    """Start a service, or reuse it if it already runs. Waits until its port answers."""
    current = status(spec.name)
    if current.running:
        return current
    log = log_file(spec.name).open("ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
    proc = subprocess.Popen(
        spec.argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
        cwd=sandbox_dir(),
    )
    _pid_file(spec.name).write_text(f"{proc.pid} {start_time(proc.pid) or ''}".strip())
    _info_file(spec.name).write_text(json.dumps({"url": spec.url, "port": spec.port, "argv": spec.argv}))
    deadline = time.monotonic() + spec.ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_file(spec.name).read_text(errors="replace")[-2000:]
            _pid_file(spec.name).unlink(missing_ok=True)
            raise SandboxError(f"sandbox service '{spec.name}' exited with code {proc.returncode}:\n{tail}")
        if _port_open(spec.port):
            return status(spec.name)
        time.sleep(0.1)
    stop(spec.name)
    raise SandboxError(
        f"sandbox service '{spec.name}' did not listen on port {spec.port} within {spec.ready_timeout:.0f} s; "
        f"see {log_file(spec.name)}"
    )


def stop(name: str, timeout: float = 10.0) -> bool:
    """Stop a service and its whole process group. Returns True if something was stopped."""
    pid = _read_pid(name)
    _pid_file(name).unlink(missing_ok=True)
    if pid is None or not pid_alive(pid):
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                _reap(pid)
                return True
            time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs a module of this package with the current interpreter."""
    return [sys.executable, "-m", module, *args]

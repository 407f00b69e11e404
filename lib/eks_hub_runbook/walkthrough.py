"""The walkthrough's own commands, run as typed with the kubectl on PATH, their output checked.

The verification tables read the API; a workshop types these instead, so 03_verify runs them
too and shows what they print: ``kubectl get pods -A``, ``kubectl get pods -n jupyterhub``,
``kubectl get nodepools``, ``kubectl get pvc -A`` and the type 1 login,
``kubectl port-forward svc/proxy-public 8080:80 -n jupyterhub`` then the login page at
``http://localhost:8080``. Each run is a :class:`CommandRun`: the command line, what it
printed, and a pass/fail read from that output as a person would read it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import PlatformError
from .platform.values import PORT_FORWARD_PORT, PROXY_SERVICE, hub_namespace

Rows = list[dict]
DONE_STATUSES = ("Running", "Completed", "Succeeded")


@dataclass
class CommandRun:
    """One command as typed, what it printed, and what that output says."""

    command: str
    output: str
    status: str
    detail: str

    def as_row(self) -> dict:
        return {"command": self.command, "status": self.status, "detail": self.detail}


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when nothing listens there and it can be bound, else any free loopback port."""
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise PlatformError("no free local port")


@contextlib.contextmanager
def port_forward(kubeconfig: Path, namespace: str, service: str, remote_port: int = 80, local_port: int | None = None,
                 timeout: float = 60.0) -> Iterator[str]:
    """``kubectl port-forward svc/<service> <local>:<remote>`` for the duration; yields its URL.

    ``local_port`` is used when free (the walkthrough's 8080), else a free one."""
    port = free_port(local_port)
    process = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(kubeconfig), "port-forward", "-n", namespace,
         f"svc/{service}", f"{port}:{remote_port}", "--address", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise PlatformError(f"kubectl port-forward exited: {(process.stderr.read() if process.stderr else '')[-300:]}")
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.3)
        else:
            raise PlatformError(f"kubectl port-forward to svc/{service} did not open within {timeout:.0f} s")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def table(output: str) -> list[dict[str, str]]:
    """kubectl's table output as rows keyed by its column headers (columns split on 2+ spaces)."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines or lines[0].startswith("No resources found"):
        return []
    header = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(header, re.split(r"\s{2,}", line.strip()))) for line in lines[1:]]


def _ready(cell: str) -> bool:
    done, _, total = cell.partition("/")
    return done.isdigit() and done == total


def check_pods(rows: list[dict[str, str]], must_have: tuple[str, ...] = ()) -> tuple[str, str]:
    """Every pod Running and ready (or Completed); the pods named by prefix in ``must_have`` present."""
    if not rows:
        return "fail", "no pods"
    waiting = [r["NAME"] for r in rows if not (r.get("STATUS") in ("Completed", "Succeeded")
                                                or (r.get("STATUS") == "Running" and _ready(r.get("READY", ""))))]
    missing = [name for name in must_have if not any(r["NAME"].startswith(f"{name}-") for r in rows)]
    if waiting or missing:
        return "fail", "; ".join(filter(None, [f"not ready: {', '.join(waiting)}" if waiting else "",
                                                f"missing: {', '.join(missing)}" if missing else ""]))
    return "pass", f"{len(rows)} pods, all Running and ready" + (f" ({', '.join(must_have)} among them)" if must_have else "")


def check_nodepools(rows: list[dict[str, str]]) -> tuple[str, str]:
    if not rows:
        return "fail", "no NodePools"
    unready = [r["NAME"] for r in rows if r.get("READY") != "True"]
    return ("fail", f"not Ready: {', '.join(unready)}") if unready else ("pass", f"{len(rows)} NodePools, all Ready")


def check_claims(rows: list[dict[str, str]]) -> tuple[str, str]:
    if not rows:
        return "fail", "no claims"
    pending = [f"{r.get('NAMESPACE', '')}/{r['NAME']} {r.get('STATUS')}" for r in rows if r.get("STATUS") != "Bound"]
    return ("fail", f"not Bound: {', '.join(pending)}") if pending else ("pass", f"{len(rows)} claims, all Bound")


def _kubectl(kubeconfig: Path, args: list[str], timeout: float = 60.0) -> tuple[int, str]:
    result = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                            timeout=timeout)
    return result.returncode, (result.stdout + result.stderr).rstrip()


def run_get(kubeconfig: Path, command: str, check: Callable[[list[dict[str, str]]], tuple[str, str]]) -> CommandRun:
    """Run one ``kubectl get ...`` command line as typed and read its table."""
    code, output = _kubectl(kubeconfig, command.split()[1:])
    if code != 0:
        return CommandRun(command, output, "fail", f"exit code {code}: {output.splitlines()[-1] if output else ''}"[:200])
    status, detail = check(table(output))
    return CommandRun(command, output, status, detail)


def login_page(url: str) -> tuple[str, str]:
    """GET the hub's login page; (pass/fail, what came back)."""
    import requests

    try:
        response = requests.get(f"{url}/hub/login", timeout=15)
    except requests.RequestException as exc:
        return "fail", f"{type(exc).__name__}: {exc}"[:200]
    title = re.search(r"<title>(.*?)</title>", response.text, re.S)
    shown = f"HTTP {response.status_code}, page {title.group(1).strip()!r}" if title else f"HTTP {response.status_code}"
    ok = response.status_code == 200 and ("login" in response.text.lower() or "sign in" in response.text.lower())
    return ("pass" if ok else "fail"), shown


def run_port_forward(kubeconfig: Path) -> CommandRun:
    """The type 1 login as the walkthrough types it: port-forward ``proxy-public`` to 8080 (another
    free port when 8080 is taken, said in the detail), then open the login page through it."""
    namespace = hub_namespace()
    for wanted in (PORT_FORWARD_PORT, None):  # None: 8080 was taken between the check and kubectl's bind
        try:
            with port_forward(kubeconfig, namespace, PROXY_SERVICE, 80, local_port=wanted) as url:
                port = int(url.rsplit(":", 1)[1])
                status, detail = login_page(url)
            break
        except PlatformError as exc:
            failure = exc
    else:
        return CommandRun(f"kubectl port-forward svc/{PROXY_SERVICE} {PORT_FORWARD_PORT}:80 -n {namespace}",
                          str(failure), "fail", str(failure)[:200])
    command = f"kubectl port-forward svc/{PROXY_SERVICE} {port}:80 -n {namespace}"
    note = "" if port == PORT_FORWARD_PORT else f" (port {PORT_FORWARD_PORT} was taken on this machine)"
    return CommandRun(command, f"Forwarding from 127.0.0.1:{port} -> 80\ncurl http://localhost:{port}/hub/login: {detail}",
                      status, f"http://localhost:{port}/hub/login: {detail}{note}")


def run_all(kubeconfig: Path) -> list[CommandRun]:
    """The walkthrough's checks in its order."""
    namespace = hub_namespace()
    return [
        run_get(kubeconfig, "kubectl get pods -A", check_pods),
        run_get(kubeconfig, f"kubectl get pods -n {namespace}", lambda rows: check_pods(rows, ("hub", "proxy"))),
        run_get(kubeconfig, "kubectl get nodepools", check_nodepools),
        run_get(kubeconfig, "kubectl get pvc -A", check_claims),
        run_port_forward(kubeconfig),
    ]


def rows(runs: list[CommandRun]) -> Rows:
    """One row per command: the command line, pass/fail and what its output said."""
    return [run.as_row() for run in runs]


def transcript(runs: list[CommandRun]) -> str:
    """What a terminal would show: each command after a ``$`` and its output."""
    return "\n\n".join(f"$ {run.command}\n{run.output}" for run in runs)

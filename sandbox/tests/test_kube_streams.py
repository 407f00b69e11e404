"""``kubectl port-forward``, ``exec`` and ``logs`` against the sandbox's API server, with the real
kubectl (port-forward: SPDY/3.1 tunneled over a WebSocket; exec: WebSocket v5.channel.k8s.io),
plus the pure framing of both protocols."""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import subprocess
import threading
import time
import urllib.request
import zlib

import pytest

from eks_hub_sandbox.kube.controllers.kubelet import isolation
from eks_hub_sandbox.kube.streams import channels, spdy

NS = "kube-streams-test"
NODE = "ip-10-9-0-9.us-west-2.compute.internal"
NODE_LABEL = "kube-streams-test/node"


# --- channel framing (pure) ----------------------------------------------------------------------

def test_channel_messages_round_trip():
    assert channels.encode(channels.STDOUT, b"hi") == b"\x01hi"
    assert channels.decode(b"\x00abc") == (channels.STDIN, b"abc")
    assert channels.decode(b"\x02") == (channels.STDERR, b"")
    with pytest.raises(channels.ProtocolError):
        channels.decode(b"")
    with pytest.raises(channels.ProtocolError):
        channels.encode(256, b"")


def test_v5_close_message_names_the_closed_channel():
    message = channels.close_message(channels.STDIN)
    assert message == b"\xff\x00"
    assert channels.closed_channel(*channels.decode(message)) == channels.STDIN
    assert channels.closed_channel(channels.STDOUT, b"\x00") is None
    with pytest.raises(channels.ProtocolError):
        channels.closed_channel(channels.CLOSE, b"")


def test_resize_message():
    assert channels.parse_resize(b'{"Width":120,"Height":40}') == (120, 40)
    with pytest.raises(channels.ProtocolError):
        channels.parse_resize(b"{}")


def test_exit_statuses_as_kubectl_reads_them():
    assert channels.exit_status(0, ["true"]) == {"metadata": {}, "status": "Success"}
    failure = channels.exit_status(3, ["sh", "-c", "exit 3"])
    assert failure["status"] == "Failure" and failure["reason"] == "NonZeroExitCode"
    assert failure["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    channel, body = channels.decode(channels.status_message(failure))
    assert channel == channels.ERROR and json.loads(body) == failure


# --- SPDY/3 framing (pure) -----------------------------------------------------------------------

def test_spdy_dictionary_is_the_protocols():
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert b"\x00\x00\x00\x06200 OK\x00\x00\x00\x07version" in spdy.DICTIONARY
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_header_blocks_share_one_compression_context_per_direction():
    client, server = spdy.HeaderCodec(), spdy.HeaderCodec()
    first = client.encode({"streamType": "error", "port": "8888", "requestID": "0"})
    second = client.encode({"streamtype": "data", "port": "8888", "requestid": "0"})
    assert server.decode(first) == {"streamtype": ["error"], "port": ["8888"], "requestid": ["0"]}
    assert server.decode(second) == {"streamtype": ["data"], "port": ["8888"], "requestid": ["0"]}
    # a fresh decoder cannot read the second block alone: the context carries over
    with pytest.raises(spdy.SpdyError):
        spdy.HeaderCodec().decode(second)


def test_header_block_layout_and_multiple_values():
    raw = spdy.build_header_block({"a": ["1", "2"]})
    assert raw == struct.pack(">I", 1) + struct.pack(">I", 1) + b"a" + struct.pack(">I", 3) + b"1\x002"
    assert spdy.parse_header_block(raw) == {"a": ["1", "2"]}
    with pytest.raises(spdy.SpdyError):
        spdy.parse_header_block(raw + b"x")
    # the zlib stream uses the dictionary (its id is in the stream header)
    block = spdy.HeaderCodec().encode({})
    assert block[1] & 0x20 and struct.unpack(">I", block[2:6])[0] == zlib.adler32(spdy.DICTIONARY)


def test_frames_split_anywhere_come_out_whole():
    client = spdy.HeaderCodec()
    stream = (spdy.syn_stream(client, 1, {"streamtype": "data", "port": "80"})
              + spdy.data(1, b"hello") + spdy.data(1, b"", fin=True) + spdy.ping(7)
              + spdy.rst_stream(1, spdy.CANCEL)
              + spdy.control(spdy.WINDOW_UPDATE, struct.pack(">II", 1, 4096)))
    reader = spdy.FrameReader(spdy.HeaderCodec())
    frames = []
    for i in range(0, len(stream), 3):
        frames += reader.feed(stream[i:i + 3])
    syn, hello, fin, ping, rst, window = frames
    assert (syn.type, syn.stream_id, syn.headers) == (spdy.SYN_STREAM, 1, {"streamtype": ["data"], "port": ["80"]})
    assert (hello.stream_id, hello.data, hello.fin) == (1, b"hello", False)
    assert (fin.data, fin.fin) == (b"", True)
    assert (ping.type, ping.ping_id) == (spdy.PING, 7)
    assert (rst.type, rst.stream_id, rst.status) == (spdy.RST_STREAM, 1, spdy.CANCEL)
    assert (window.type, window.stream_id, window.delta) == (spdy.WINDOW_UPDATE, 1, 4096)


def test_syn_reply_is_a_version_3_control_frame():
    codec = spdy.HeaderCodec()
    frame = spdy.syn_reply(codec, 5)
    assert frame[:4] == b"\x80\x03\x00\x02" and struct.unpack(">I", frame[8:12])[0] == 5
    assert int.from_bytes(frame[5:8], "big") == len(frame) - 8
    with pytest.raises(spdy.SpdyError):
        spdy.FrameReader(codec).feed(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")


# --- against the sandbox, with the real kubectl --------------------------------------------------

def _pod(name: str, containers: list[dict], restart: str = "Always", node: str = "yes") -> dict:
    return {"metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeSelector": {NODE_LABEL: node}, "restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                     "tolerations": [{"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
                     "containers": [{"image": "python:3.11", **c} for c in containers]}}


def _wait(predicate, what: str, timeout: float = 60.0, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str = "/") -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as response:
        return response.status, response.read()


@pytest.fixture(scope="module")
def streams_cluster(kube_api, kubectl, kube_sandbox, tmp_path_factory):
    """A tainted node of its own with: ``web`` (an HTTP server, env FOO=bar, workingDir /srv),
    its Service, ``talk`` (container ``a`` prints five lines; ``b`` fails once, then runs),
    and ``pending`` (never scheduled)."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    resources = {"cpu": "2", "memory": "8Gi", "pods": "29"}
    core.create_node({"metadata": {"name": NODE, "labels": {NODE_LABEL: "yes", "kubernetes.io/hostname": NODE}},
                      "spec": {"taints": [{"key": NODE_LABEL, "value": "only", "effect": "NoSchedule"}]},
                      "status": {"capacity": resources, "allocatable": resources,
                                 "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                                 "addresses": [{"type": "InternalIP", "address": "10.9.0.9"}]}})
    kubectl("create", "namespace", NS)
    web = _pod("web", [{"name": "main", "command": ["python", "-m", "http.server", "8000", "--bind", "0.0.0.0"],
                        "env": [{"name": "FOO", "value": "bar"}, {"name": "PYTHONUNBUFFERED", "value": "1"}], "workingDir": "/srv",
                        "ports": [{"containerPort": 8000}]}])
    talk = _pod("talk", [
        {"name": "a", "command": ["sh", "-c", "for i in 1 2 3 4 5; do echo a-$i; done; exec sleep 600"]},
        # the marker outlives b's restart in an emptyDir (a restarted container's own files do not)
        {"name": "b", "workingDir": "/state", "volumeMounts": [{"name": "state", "mountPath": "/state"}],
         "command": ["sh", "-c", "if [ -e marker ]; then echo second-run; exec sleep 600; "
                                 "else touch marker; echo first-run; exit 1; fi"]}])
    talk["spec"]["volumes"] = [{"name": "state", "emptyDir": {}}]
    pending = _pod("pending", [{"name": "main", "command": ["sleep", "600"]}], node="no-such-node")
    for pod in (web, talk, pending):
        core.create_namespaced_pod(NS, pod)
    core.create_namespaced_service(NS, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8000}]}})

    def web_ready():
        status = core.read_namespaced_pod("web", NS).status
        return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
    env = {**os.environ, "KUBECONFIG": str(kube_sandbox.kubeconfig_path()),
           "HOME": str(tmp_path_factory.mktemp("kubectl-streams-home"))}
    try:
        _wait(web_ready, "pod web to be ready")
        yield {"core": core, "env": env}
    finally:
        kubectl("delete", "namespace", NS, "--wait=false", check=False)
        kubectl("delete", "node", NODE, "--wait=false", check=False)


class PortForward:
    """``kubectl port-forward`` running in the background, its output collected."""

    def __init__(self, env: dict, target: str, ports: str):
        self.process = subprocess.Popen(["kubectl", "port-forward", "-n", NS, "--address", "127.0.0.1", target, ports],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        _wait(lambda: text in self.output() or self.process.poll() is not None, f"{text!r} from port-forward", timeout)
        assert text in self.output(), self.output()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def port_forward(streams_cluster):
    started = []

    def start(target: str, remote: int) -> tuple[PortForward, int]:
        local = _free_port()
        forward = PortForward(streams_cluster["env"], target, f"{local}:{remote}")
        started.append(forward)
        forward.wait_for(f"Forwarding from 127.0.0.1:{local} -> {remote}")
        return forward, local
    yield start
    for forward in started:
        forward.stop()


@pytest.mark.sandbox
@pytest.mark.slow
def test_port_forward_to_a_pod_serves_several_connections(port_forward):
    forward, port = port_forward("pod/web", 8000)
    first, second = _get(port), _get(port)
    assert first[0] == second[0] == 200 and b"Directory listing" in first[1]
    results = []
    threads = [threading.Thread(target=lambda: results.append(_get(port))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [status for status, _ in results] == [200] * 4
    assert forward.process.poll() is None and "Handling connection for" in forward.output()


@pytest.mark.sandbox
@pytest.mark.slow
def test_port_forward_to_a_service_reaches_its_target_port(port_forward, kubectl):
    kubectl("exec", "-n", NS, "web", "--", "sh", "-c", "head -c 300000 /dev/zero > big.bin")
    _, port = port_forward("svc/web", 80)
    status, body = _get(port, "/big.bin")  # larger than one SPDY flow-control window
    assert status == 200 and body == b"\0" * 300000


@pytest.mark.sandbox
@pytest.mark.slow
def test_port_forward_reports_a_port_nobody_listens_on(port_forward):
    forward, port = port_forward("pod/web", 9)
    with pytest.raises(OSError):
        _get(port)
    _wait(lambda: "connection refused" in forward.output(), "the error from port-forward", 20)
    assert "an error occurred forwarding" in forward.output() and "-> 9" in forward.output()


@pytest.mark.sandbox
@pytest.mark.slow
def test_port_forward_and_exec_refuse_pods_that_do_not_run(streams_cluster, kubectl):
    result = kubectl("port-forward", "-n", NS, "pod/pending", f"{_free_port()}:80", check=False)
    assert result.returncode != 0 and "pod is not running" in result.stderr
    result = kubectl("exec", "-n", NS, "pending", "--", "true", check=False)
    assert result.returncode != 0 and "does not have a host assigned" in result.stderr


@pytest.mark.sandbox
@pytest.mark.slow
def test_exec_propagates_output_and_exit_code(streams_cluster, kubectl):
    result = kubectl("exec", "-n", NS, "web", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert "err" in result.stderr and "command terminated with exit code 3" in result.stderr
    assert kubectl("exec", "-n", NS, "web", "--", "true").returncode == 0
    missing = kubectl("exec", "-n", NS, "web", "--", "no-such-command", check=False)
    assert missing.returncode != 0 and "executable file not found" in missing.stderr


@pytest.mark.sandbox
@pytest.mark.slow
def test_exec_feeds_stdin(streams_cluster, kubectl):
    result = kubectl("exec", "-i", "-n", NS, "web", "--", "cat", input="hello\nworld\n")
    assert result.stdout == "hello\nworld\n"
    result = kubectl("exec", "-i", "-n", NS, "web", "--", "wc", "-c", input="x" * 100000)
    assert result.stdout.strip() == "100000"


@pytest.mark.sandbox
@pytest.mark.slow
def test_exec_runs_in_the_containers_environment_and_folder(streams_cluster, kubectl, port_forward):
    assert kubectl("exec", "-n", NS, "web", "--", "printenv", "FOO").stdout == "bar\n"
    assert kubectl("exec", "-n", NS, "web", "--", "printenv", "HOSTNAME").stdout == "web\n"
    assert kubectl("exec", "-n", NS, "web", "--", "printenv", "KUBERNETES_SERVICE_HOST").stdout.strip()
    folder = kubectl("exec", "-n", NS, "web", "--", "pwd").stdout.strip()
    # in namespaces of its own the container's workingDir is its own /srv (an overlay: the
    # machine's /srv never changes); as a plain process, the pod's root folder's srv
    assert folder == "/srv" if isolation.supported() else folder.endswith("/rootfs/srv")
    # the folder the container's own process serves
    kubectl("exec", "-n", NS, "web", "--", "sh", "-c", "echo from-exec > exec.txt")
    _, port = port_forward("pod/web", 8000)
    assert _get(port, "/exec.txt") == (200, b"from-exec\n")
    if isolation.supported():
        assert not os.path.exists("/srv/exec.txt")  # written in the container's /srv, not the machine's
    # -c picks the container
    assert kubectl("exec", "-n", NS, "talk", "-c", "a", "--", "sh", "-c", "echo $HOSTNAME").stdout == "talk\n"
    bad = kubectl("exec", "-n", NS, "talk", "-c", "nope", "--", "true", check=False)
    assert bad.returncode != 0 and "not valid for pod talk" in bad.stderr


@pytest.mark.sandbox
@pytest.mark.slow
def test_exec_with_a_terminal(streams_cluster):
    import pty

    env = streams_cluster["env"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on a terminal
        os.execvpe("kubectl", ["kubectl", "exec", "-it", "-n", NS, "web", "--", "sh"], env)
    output = bytearray()

    def read_until(text: bytes, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output.extend(chunk)
        assert text in output, bytes(output)
    try:
        os.write(fd, b"tty; echo mark-$((6*7))\n")
        read_until(b"mark-42")
        assert b"/dev/pts/" in output
        os.write(fd, b"exit 4\n")
        read_until(b"command terminated with exit code 4")
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 4
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


@pytest.mark.sandbox
@pytest.mark.slow
def test_logs_tail_and_container(streams_cluster, kubectl):
    _wait(lambda: "a-5" in kubectl("logs", "-n", NS, "talk", "-c", "a", check=False).stdout, "talk's a log")
    assert kubectl("logs", "-n", NS, "talk", "-c", "a", "--tail=2").stdout == "a-4\na-5\n"
    full = kubectl("logs", "-n", NS, "talk", "-c", "a").stdout
    assert [l for l in full.splitlines() if l.startswith("a-")] == [f"a-{i}" for i in range(1, 6)]
    assert "first-run" not in full.splitlines()
    assert "http.server" in kubectl("logs", "-n", NS, "web").stdout.splitlines()[0]


@pytest.mark.sandbox
@pytest.mark.slow
def test_logs_previous_after_a_restart(streams_cluster, kubectl):
    none = kubectl("logs", "-n", NS, "web", "--previous", check=False)
    assert none.returncode != 0 and 'previous terminated container "main" in pod "web" not found' in none.stderr
    # b failed once; the kubelet restarts it after its back-off (10s). Whole lines: the
    # kubelet's "[sandbox] running ..." first line quotes the command
    def lines(*args):
        return kubectl("logs", "-n", NS, "talk", "-c", "b", *args, check=False).stdout.splitlines()
    _wait(lambda: "second-run" in lines(), "talk's b restarted", timeout=60, interval=0.5)
    current, previous = lines(), lines("--previous")
    assert "second-run" in current and "first-run" not in current
    assert "first-run" in previous and "second-run" not in previous


@pytest.mark.sandbox
@pytest.mark.slow
def test_logs_follow_until_the_container_ends(streams_cluster, kubectl):
    core = streams_cluster["core"]
    core.create_namespaced_pod(NS, _pod("ticker", [{"name": "main", "command": [
        "sh", "-c", "for i in 1 2 3 4 5 6; do echo tick-$i; sleep 0.5; done"]}], restart="Never"))
    _wait(lambda: core.read_namespaced_pod("ticker", NS).status.phase in ("Running", "Succeeded"), "ticker to run")
    started = time.monotonic()
    result = kubectl("logs", "-f", "-n", NS, "ticker")
    ticks = [line for line in result.stdout.splitlines() if line.startswith("tick-")]
    assert ticks == [f"tick-{i}" for i in range(1, 7)]  # each line once, in order
    assert time.monotonic() - started < 30
    # a follower that goes away does not keep anything waiting: the next follow still works
    follower = subprocess.Popen(["kubectl", "logs", "-f", "-n", NS, "web"], stdout=subprocess.PIPE,
                                env=streams_cluster["env"])
    try:
        assert follower.stdout.readline()
    finally:
        follower.kill()
        follower.wait()
    assert "[sandbox] running" in kubectl("logs", "-n", NS, "web").stdout

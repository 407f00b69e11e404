"""The hub client's own behaviour against a stand-in hub (the real one: sandbox/tests/test_hub_client.py)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from eks_hub_runbook import hub
from eks_hub_runbook.errors import HubError


class _Busy(BaseHTTPRequestHandler):
    """Answers POST /hub/api/users/<name>/server with 429 (Retry-After) ``busy`` times, then 202."""

    busy = 2
    seen: list[tuple[str, dict]] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, body))
        if type(self).busy > 0:
            type(self).busy -= 1
            self.send_response(429)
            self.send_header("Retry-After", "0.5")
            payload = b'{"status": 429, "message": "Too many users trying to log in right now. Try again in 1 seconds."}'
        else:
            self.send_response(202)
            payload = b"{}"
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def busy_hub():
    _Busy.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = hub.HubClient(f"http://127.0.0.1:{server.server_port}")
    client.username, client._token = "load-001", "not-a-real-token"
    yield client
    server.shutdown()


def test_a_busy_hub_is_asked_again_after_its_retry_after(busy_hub):
    _Busy.busy = 2
    busy_hub.spawn("gpu-time-slicing")
    assert [path for path, _ in _Busy.seen] == ["/hub/api/users/load-001/server"] * 3
    assert _Busy.seen[-1][1] == {"profile": "gpu-time-slicing"}


def test_a_hub_busy_for_longer_than_the_wait_is_an_error(busy_hub):
    _Busy.busy = 100
    with pytest.raises(HubError, match="too busy to start a server for 1 s.*Too many users"):
        busy_hub.spawn("gpu-time-slicing", busy_timeout=1.0)
    assert 2 <= len(_Busy.seen) <= 3


def test_an_unreachable_hub_says_why_without_the_url_path():
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(HubError, match=r"cannot reach the hub at http://127\.0\.0\.1:\d+: ConnectionError \(Connection refused\)$"):
            hub.HubClient(f"http://127.0.0.1:{port}", timeout=5).health()


def test_a_hub_that_hangs_up_says_so():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def hang_up():  # every connection, also the ones the client makes to try again
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.recv(65536)
            connection.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        with pytest.raises(HubError) as raised:
            hub.HubClient(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=5).health()
    finally:
        listener.close()
    assert str(raised.value).endswith(("(Connection reset by peer)", "(RemoteDisconnected)"))
    assert "/hub/api" not in str(raised.value)


def test_a_retry_log_line_keeps_the_path_but_not_the_query(caplog):
    import logging

    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    logging.getLogger("urllib3.connectionpool").warning("Retrying (%r) after connection broken by '%r': %s",
                                                      "Retry(total=2)", "RemoteDisconnected()", "/hub/oauth_callback?code=s3cret&state=x")
    assert "/hub/oauth_callback" in caplog.text and "s3cret" not in caplog.text


@pytest.fixture
def hangs_up_once():
    """A hub that, like Node closing an idle kept-alive connection, drops the first request unanswered."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            seen.append(self.command)
            if len(seen) == 1:
                self.close_connection = True
                return  # no response: the client reads EOF
            body = json.dumps({"version": "5.5.0"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_request_dropped_unanswered_is_sent_again_when_safe_to_repeat(hangs_up_once):
    url, seen = hangs_up_once
    assert hub.HubClient(url, timeout=5).health() == {"version": "5.5.0"}
    assert seen == ["GET", "GET"]


def test_a_post_dropped_unanswered_is_not_repeated(hangs_up_once):
    url, seen = hangs_up_once
    client = hub.HubClient(url, timeout=5)
    with pytest.raises(HubError, match=r"\(RemoteDisconnected\)"):
        client._request("POST", "/hub/api/users/u/server", auth="none", json={})
    assert seen == ["POST"]

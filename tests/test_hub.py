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

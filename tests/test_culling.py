"""culling.py: 04's wait_for_cull option. The arithmetic and the cases that wait for nothing
(culling off, a delay longer than allowed, no server) here; the real culler, pod and node in
sandbox/tests/test_hub_culling.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from eks_hub_runbook import culling
from eks_hub_runbook.hub import HubClient
from eks_hub_runbook.params import resolve


@pytest.mark.parametrize(("text", "seconds"), [("5m", 300), ("30s", 30), ("1h30m", 5400), ("0s", 0), ("1.5s", 1.5),
                                               ("Never", None)])
def test_durations_as_karpenter_writes_them(text, seconds):
    assert culling.duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "", "m5", "5d"])
def test_a_duration_that_is_not_one_is_named(text):
    with pytest.raises(ValueError, match="is not a duration"):
        culling.duration_seconds(text)


def test_plan_blocks_what_cannot_finish_in_time_and_names_the_fix():
    default = culling.CullPlan(timeout=3600, every=300, pool="gpu-ts", consolidate_after=300.0)
    assert default.expected_seconds() == 3600 + 300 + 300 + culling.SLACK_SECONDS
    message = default.blocker(15 * 60)
    assert "after 3600 s idle" in message and "cull_timeout_minutes" in message and "timeout_minutes" in message
    assert default.blocker(2 * 3600) == ""
    short = culling.CullPlan(timeout=30, every=15, pool="gpu-ts", consolidate_after=1.0)
    assert short.blocker(120) == ""
    off = culling.CullPlan(timeout=None, every=None, pool="gpu-ts", consolidate_after=300.0)
    assert off.expected_seconds() is None and "the idle culler is off" in off.blocker(10**6)
    never = culling.CullPlan(timeout=30, every=15, pool="gpu-ts", consolidate_after=None)
    assert "never consolidates" in never.blocker(10**6)


class _Hub(HubClient):
    """A logged-in client whose server is whatever the test says (no hub behind it)."""

    def __init__(self, server):
        super().__init__("http://hub.invalid")
        self._server = server
        self.stopped = False

    def server(self):
        return self._server

    def stop(self, timeout=120.0):
        self.stopped = True
        self._server = None


def test_nothing_happens_when_the_option_is_off():
    (row,) = culling.watch_cull(object(), api=None, enabled=False)
    assert row["status"] == "skip" and "wait_for_cull" in row["detail"]


def test_what_it_watches_must_be_a_demo_or_a_client_with_params():
    with pytest.raises(TypeError, match="gpu_sharing.Demo or a HubClient"):
        culling.watch_cull("user-1", api=None)
    with pytest.raises(TypeError, match="params= and user="):
        culling.watch_cull(_Hub(None), api=None, user="user-1")


def test_no_running_server_is_a_skipped_row(monkeypatch):
    monkeypatch.setattr(culling, "_server_pod", lambda api, namespace, user: None)
    rows = culling.watch_cull(_Hub(None), None, "user-1", params=resolve(target="aws"))
    assert [(r["event"], r["status"]) for r in rows] == [(culling.EVENTS[0], "skip")]
    assert "no running server" in rows[0]["detail"]


def test_a_long_cull_timeout_waits_for_nothing_and_stops_no_server(monkeypatch):
    """The deployment's default (60 min) against a 15 min wait: one row with the fix, no server touched."""
    from eks_hub_runbook import gpu_sharing

    params = resolve(target="aws")
    pod = SimpleNamespace(spec=SimpleNamespace(node_name="ip-10-0-1-2.us-west-2.compute.internal"),
                          metadata=SimpleNamespace(name="jupyter-user-1"))
    monkeypatch.setattr(culling, "_server_pod", lambda api, namespace, user: pod)
    asked = []
    monkeypatch.setattr(culling, "plan", lambda p, api, node: asked.append((p.cull_timeout_minutes, node)) or
                        culling.CullPlan(3600, 300, "gpu-ts", 300.0))
    one, two = _Hub({"ready": True}), _Hub({"ready": True})
    demo = gpu_sharing.Demo(params, "http://hub", "gpu-time-slicing",
                            servers=[gpu_sharing.UserServer("user-1", one, "gpu-time-slicing"),
                                     gpu_sharing.UserServer("user-2", two, "gpu-time-slicing")])
    rows = culling.watch_cull(demo, None, timeout=15 * 60)
    assert asked == [(60.0, "ip-10-0-1-2.us-west-2.compute.internal")]  # the deployment's timeout, the server's node
    assert [r["status"] for r in rows] == ["skip"] and "re-run 02_deploy" in rows[0]["detail"]
    assert not one.stopped and not two.stopped


def test_the_other_demo_servers_are_stopped_so_the_node_can_empty(monkeypatch):
    """user-2 shares user-1's node: it is stopped first; user-1 is left alone until the culler stops it."""
    from eks_hub_runbook import gpu_sharing

    pod = SimpleNamespace(spec=SimpleNamespace(node_name="ip-10-0-1-2.us-west-2.compute.internal"),
                          metadata=SimpleNamespace(name="jupyter-user-1"))
    pods = iter([pod])  # found once (before the wait), then deleted
    monkeypatch.setattr(culling, "_server_pod", lambda api, namespace, user: next(pods, None))
    monkeypatch.setattr(culling, "plan", lambda p, api, node: culling.CullPlan(6, 3, "gpu-ts", 1.0))
    monkeypatch.setattr(culling, "_node_exists", lambda api, name: False)

    class Culled(_Hub):
        def server(self):  # running with its last activity, then gone (the culler stopped it)
            model, self._server = self._server, None
            return model

    one, two = Culled({"ready": True, "last_activity": "2026-01-01T00:00:00.000000Z"}), _Hub({"ready": True})
    demo = gpu_sharing.Demo(resolve(target="aws"), "http://hub", "gpu-time-slicing",
                            servers=[gpu_sharing.UserServer("user-1", one, "gpu-time-slicing"),
                                     gpu_sharing.UserServer("user-2", two, "gpu-time-slicing")])
    rows = culling.watch_cull(demo, None, timeout=60, interval=0)
    assert two.stopped and not one.stopped
    assert [(r["event"], r["status"]) for r in rows] == [(event, "pass") for event in culling.EVENTS]
    assert rows[0]["seconds since idle"] > 0 and rows[2]["detail"].startswith("ip-10-0-1-2")

"""Spawn: time to a ready server from the hub API, cold (new node) and warm (crowds: eks_hub_runbook.loadtest).

Each user logs in through the hub's login page, requests its server with a profile and
follows the hub's progress stream; every progress message is timestamped on arrival, so
one spawn splits into the phases the cluster reports (KubeSpawner relays the pod's
events): waiting for a node (Karpenter; the emulator's configured node delay), the image
pull (the emulator's configured pull delay), the container start, and the single-user
server answering the hub (a real ``jupyterhub-singleuser`` process starting).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from eks_hub_runbook.hub import HubClient

# Progress messages (KubeSpawner relays pod events) that mark the end of each phase.
MARKERS = (
    ("scheduled", ("Successfully assigned",)),
    ("pulled", ("Successfully pulled", "already present", "Pulled")),
    ("started", ("Started container",)),
)


@dataclass
class Spawn:
    user: str
    profile: str
    login_s: float = 0.0
    ready_s: float = 0.0
    error: str = ""
    messages: list[tuple[float, str]] = field(default_factory=list)
    client: HubClient | None = field(default=None, repr=False)

    def phases(self) -> dict[str, float]:
        """Seconds from the spawn request to each marker, then to ready."""
        found: dict[str, float] = {}
        for name, needles in MARKERS:
            for stamp, message in self.messages:
                if any(n in message for n in needles):
                    found[name] = stamp
                    break
        return {**{k: round(v, 2) for k, v in found.items()}, "ready": round(self.ready_s, 2)}

    def split(self) -> dict[str, float]:
        """Durations of the phases: node, pull, container start, server start."""
        marks = self.phases()
        scheduled = marks.get("scheduled", 0.0)
        pulled = marks.get("pulled", scheduled)
        started = marks.get("started", pulled)
        return {"to scheduled (node)": scheduled, "image pull": max(pulled - scheduled, 0.0),
                "container start": max(started - pulled, 0.0), "server start to ready": max(self.ready_s - started, 0.0)}

    def row(self, label: str) -> dict[str, Any]:
        return {"user": self.user, "start": label, "login (s)": round(self.login_s, 2), "ready (s)": round(self.ready_s, 2),
                **{k: round(v, 2) for k, v in self.split().items()}, "error": self.error}


def spawn(hub_url: str, user: str, profile: str, timeout: float = 300.0, password: str = "bench") -> Spawn:
    """Log ``user`` in, start ``profile``, follow progress until ready. Never raises (see ``error``)."""
    result = Spawn(user, profile)
    try:
        started = time.monotonic()
        client = HubClient(hub_url)
        client.login(user, password)
        client.token()
        result.client = client
        result.login_s = time.monotonic() - started
        started = time.monotonic()
        client.spawn(profile)
        for event in client.progress(timeout=timeout):
            result.messages.append((time.monotonic() - started, str(event.get("message", ""))))
            if event.get("failed"):
                raise RuntimeError(f"spawn failed: {event.get('message', '')}")
        while time.monotonic() - started < timeout:
            model = client.server()
            if model and model.get("ready"):
                break
            time.sleep(0.2)
        else:
            raise TimeoutError(f"not ready within {timeout:.0f} s")
        result.ready_s = time.monotonic() - started
    except Exception as exc:  # a benchmark reports failures, it does not stop on them
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    return result


def stop_all(spawns: list[Spawn], timeout: float = 180.0) -> float:
    """Stop every server (concurrently); returns the wall time until all are gone."""
    def worker(item: Spawn) -> None:
        try:
            if item.client is not None:
                item.client.stop(timeout=timeout)
        except Exception:  # noqa: BLE001 - best effort; leftovers go with the sandbox
            pass

    threads = [threading.Thread(target=worker, args=(s,)) for s in spawns]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started

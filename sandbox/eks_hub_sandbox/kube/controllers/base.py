"""Base of the in-process controllers: level-triggered reconcile loops woken by store changes.

A controller names the collections it watches; any write to them marks it dirty
and its ``reconcile`` runs soon after (bursts of writes coalesce into one run).
Nothing runs while nothing changes, so an idle cluster costs no CPU. Controllers
that need time-based work schedule a wake-up with ``wake_at``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..store import Change

log = logging.getLogger(__name__)


class Controller:
    """One control loop. Subclasses set ``name`` and ``watches`` and implement ``reconcile``."""

    name = "controller"
    watches: Iterable[tuple[str, str]] = ()
    debounce = 0.05

    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime
        self.cluster = runtime.cluster
        self.settings = runtime.settings
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._stopping = False

    def start(self) -> None:
        if self.watches:
            self.cluster.store.subscribe(list(self.watches), self._on_change)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)
        self.kick()

    def _on_change(self, key, change: "Change") -> None:
        if self.interested(key, change):
            self._dirty.set()

    def interested(self, key, change: "Change") -> bool:
        """Whether a change needs a reconcile (default: every change to a watched collection)."""
        return True

    def kick(self) -> None:
        """Ask for a reconcile soon."""
        self._dirty.set()

    def wake_at(self, delay: float) -> None:
        """Ask for a reconcile after ``delay`` seconds."""
        loop = asyncio.get_running_loop()
        self._timers = [t for t in self._timers if not t.cancelled() and t.when() > loop.time()]
        self._timers.append(loop.call_later(max(delay, 0.0), self._dirty.set))

    async def _loop(self) -> None:
        while not self._stopping:
            await self._dirty.wait()
            if self._stopping:
                return
            await asyncio.sleep(self.debounce)
            self._dirty.clear()
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: reconcile failed", self.name)
                self.wake_at(1.0)

    async def reconcile(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop the loop (subclasses release what they hold, then call this)."""
        self._stopping = True
        for timer in self._timers:
            timer.cancel()
        self._dirty.set()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

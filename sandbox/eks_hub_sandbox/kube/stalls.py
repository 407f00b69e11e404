"""The emulator's event loop, watched from a thread.

Nearly everything the emulator does (API requests, watches, controllers) runs on one event
loop, so one slow step delays them all (kube-proxy's pipes have a loop of their own). A heartbeat on the loop and a thread that
checks it find each stall of ``threshold`` seconds or more; while it lasts, the thread samples
the loop thread's stack, and when it ends one warning names how long it was and where the
loop was (the innermost frames, most frequent first), as JupyterHub warns "Event loop was
unresponsive".
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)

FRAMES = 6  # innermost frames kept per sample


class StallWatch:
    """Start with :meth:`start` on the loop's own thread; :meth:`stop` ends it."""

    def __init__(self, threshold: float = 1.0, interval: float = 0.25):
        self.threshold = threshold
        self.interval = interval
        self.stalls: list[tuple[float, list[tuple[str, int]]]] = []  # (seconds, [(stack, samples)])
        self._beat = time.monotonic()
        self._done = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id = 0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._heartbeat()
        threading.Thread(target=self._watch, name="stall-watch", daemon=True).start()

    def stop(self) -> None:
        self._done.set()
        if self._handle:
            self._handle.cancel()

    def _heartbeat(self) -> None:
        self._beat = time.monotonic()
        assert self._loop is not None
        self._handle = self._loop.call_later(self.interval / 2, self._heartbeat)

    def _sample(self) -> str:
        frame = sys._current_frames().get(self._thread_id)
        if frame is None:
            return "(no frame)"
        return "".join(traceback.format_stack(frame)[-FRAMES:]).rstrip()

    def _watch(self) -> None:
        samples: collections.Counter[str] = collections.Counter()
        stalled_since = None
        while not self._done.wait(self.interval):
            beat = self._beat
            late = time.monotonic() - beat
            if late >= self.threshold:
                stalled_since = beat
                samples[self._sample()] += 1
            elif stalled_since is not None:
                self._report(beat - stalled_since, samples)
                samples, stalled_since = collections.Counter(), None

    def _report(self, seconds: float, samples: collections.Counter[str]) -> None:
        where = samples.most_common(3)
        self.stalls.append((seconds, where))
        log.warning("event loop stalled for %.1f s; where it was (%d samples):\n%s", seconds, sum(samples.values()),
                    "\n--\n".join(f"[{count}x]\n{stack}" for stack, count in where))

"""Live progress of a Terraform run: a progress bar with resource counts plus readable log
lines that go to a callback (stdout by default) and to a log file.

The bar is a terminal's (tqdm); notebooks pass ``bar=False`` and show their own ``nb.Progress``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .events import Event, describe

LogCallback = Callable[[str], None]


def print_line(line: str) -> None:
    """Default log callback: print to stdout (a notebook cell's output)."""
    print(line, file=sys.stdout, flush=True)


class RunProgress:
    """Consumes events of one terraform command; counts resources and writes the log.

    ``total`` is set from the planned changes the stream announces, ``done`` counts
    completed resource operations, ``failed`` the errored ones.
    """

    def __init__(self, title: str, log_file: Path, callback: LogCallback | None = print_line, bar: bool = True):
        self.title = title
        self.callback = callback
        self.total = 0
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self._log: TextIO = log_file.open("a", encoding="utf-8")
        self._bar = None
        self._bar_enabled = bar
        self._write(f"=== {title} ({time.strftime('%Y-%m-%d %H:%M:%S')})")

    # ---- event intake -------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if event.kind == "planned_change" and event.action not in ("noop", "read"):
            self.total += 1
            self._update_bar()
        elif event.kind == "change_summary" and event.changes.get("operation") in ("apply", "destroy"):
            pass
        elif event.kind == "apply_complete" and event.action != "read":
            self.done += 1
            self._update_bar()
        elif event.kind == "apply_errored":
            self.failed += 1
            self._update_bar()
        line = describe(event)
        if line:
            self._write(line)

    def line(self, text: str) -> None:
        """Log a line that did not come from the event stream (stderr, runner notes)."""
        if text.strip():
            self._write(text.rstrip())

    # ---- output ---------------------------------------------------------------------

    def _write(self, text: str) -> None:
        self._log.write(text + "\n")
        self._log.flush()
        if self.callback is None:
            return
        if self._bar is not None and self.callback is print_line:
            self._bar.write(text)  # keeps the bar below the printed lines in a terminal
        else:
            self.callback(text)

    def _update_bar(self) -> None:
        if not self._bar_enabled or self.total == 0:
            return
        if self._bar is None:
            from tqdm.std import tqdm  # a terminal's bar (notebooks show their own Progress, bar=False);
            # tqdm.auto would pick the widget bar whenever an IPython shell is alive in the process

            self._bar = tqdm(total=self.total, desc=self.title, unit="resource", leave=True, file=sys.stdout)
        if self._bar.total != self.total:
            self._bar.total = self.total
        self._bar.n = self.done + self.failed
        self._bar.set_postfix_str(f"done={self.done} failed={self.failed}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        elapsed = time.monotonic() - self.started
        self._write(f"=== {self.title}: {self.done} done, {self.failed} failed, {elapsed:.0f}s")
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._log.close()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

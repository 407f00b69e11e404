"""Live output of a run: cell output in the terminal as it happens (papermill's
``--log-output``), copied to the run's log, with known secrets redacted on the way.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from .redact import redact

_CELL_START = re.compile(r"^Executing Cell (\d+)-*$")
_CELL_END = re.compile(r"^Ending Cell (\d+)-*$")


class Console:
    """Writes lines to the terminal and to a log file, redacted."""

    def __init__(self, stream: IO[str] | None = None, log_path: Path | None = None):
        self.stream = stream if stream is not None else sys.stdout
        self.log_path = log_path
        self._log: IO[str] | None = None
        self._lock = threading.Lock()
        self.notebook = ""

    def open_log(self, path: Path) -> None:
        """(Re)direct the log copy to ``path`` (appending)."""
        self.close()
        self.log_path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def close(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    def write(self, text: str) -> None:
        text = redact(text)
        if text and not text.endswith("\n"):
            text += "\n"
        with self._lock:
            self.stream.write(text)
            self.stream.flush()
            if self._log:
                self._log.write(text)
                self._log.flush()

    def cell(self, number: int, total: int, source: str) -> None:
        """Announce a code cell: ``[02_deploy 5/23] first line of code``."""
        lines = [line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
        first = lines[0] if lines else ""
        if len(first) > 70:
            first = first[:67] + "..."
        self.write(f"[{self.notebook} {number}/{total}] {first}")

    def rule(self, title: str) -> None:
        self.write(f"\n── {title} " + "─" * max(0, 72 - len(title)))


class _PapermillHandler(logging.Handler):
    """Turns papermill's log records (cell markers and cell output) into console lines."""

    def __init__(self, console: Console):
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # pragma: no cover - malformed record
            return
        if _CELL_START.match(message) or _CELL_END.match(message) or message.startswith(("Input Notebook:", "Output Notebook:", "Working directory:")):
            return
        if message.startswith("Passed unknown parameter"):
            return
        self.console.write(message)


@contextmanager
def papermill_output(console: Console) -> Iterator[None]:
    """Route papermill's ``log_output`` records to ``console`` for the duration."""
    from . import engine

    logger = logging.getLogger("papermill")
    handler = _PapermillHandler(console)
    engine.add_listener(console.cell)
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        engine.remove_listener(console.cell)
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]

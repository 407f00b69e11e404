"""A papermill engine that announces each code cell as it starts (for the live terminal view).

It is papermill's own nbclient engine; only ``cell_start`` is wrapped so the runner
can print ``[02_deploy 5/23] terraform.apply(...)`` before the cell's output streams.
Registered with papermill as ``runbook``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable

from nbclient.exceptions import DeadKernelError

from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

ENGINE_NAME = "runbook"
CellListener = Callable[[int, int, str], None]
_listeners: list[CellListener] = []


def add_listener(listener: CellListener) -> None:
    """Call ``listener(number, total, source)`` when a code cell starts (1-based number)."""
    _listeners.append(listener)


def remove_listener(listener: CellListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


class RunbookClient(PapermillNotebookClient):
    """papermill's client, with a livelier live view.

    - markdown displays are shown as markdown, not as their repr;
    - displays updated in place (progress of a Terraform apply, a spawn) are followed:
      each new or changed line of their text is shown as it arrives, once.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shown_lines: dict[str, set[str]] = {}

    def papermill_execute_cells(self):
        # the kernel leads its own process group (jupyter_client starts it in a new session);
        # what it started (terraform, helm, port-forwards) is in that group too
        pgid = getattr(getattr(self.km, "provisioner", None), "pgid", None)
        try:
            return super().papermill_execute_cells()
        except DeadKernelError:
            left = stop_process_group(pgid)
            if left:
                self.log.warning(f"the kernel died; stopped {left} process(es) it had started")
            raise
        except KeyboardInterrupt:
            # Without this the kernel is shut down at once and whatever it runs (terraform mid-apply) is
            # killed with it, leaving resources that exist in AWS but not in the state.
            if interrupt_kernel_and_wait(pgid):
                self.log.warning("interrupted: the running cell was stopped and its commands saved their work")
            raise

    def process_message(self, *args, **kwargs):
        msg = args[0] if args else kwargs.get("msg")
        output = super().process_message(*args, **kwargs)
        if self.log_output and isinstance(msg, dict):
            content = msg.get("content", {})
            display_id = (content.get("transient") or {}).get("display_id")
            if display_id and msg.get("msg_type") in ("display_data", "update_display_data"):
                self._follow_display(display_id, content, log=msg.get("msg_type") == "update_display_data")
        return output

    def _follow_display(self, display_id: str, content: dict, log: bool) -> None:
        text = content.get("data", {}).get("text/plain", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        seen = self._shown_lines.setdefault(display_id, set())
        new = [line for line in text.splitlines() if line.strip() and line not in seen]
        seen.update(new)
        if log and new:
            self.log.info("\n".join(new))

    def log_output_message(self, output):
        data = output.get("data", {})
        if self.log_output and output.output_type in ("display_data", "execute_result") and "text/markdown" in data:
            self.log.info("".join(data["text/markdown"]))
            return
        super().log_output_message(output)


def stop_process_group(pgid: int | None, grace: float = 60.0) -> int:
    """Stop what is left of a dead kernel's process group: SIGTERM (Terraform then saves
    its state and releases its lock), SIGKILL after ``grace`` seconds. Returns how many
    processes were found."""
    if not pgid or pgid == os.getpgrp():
        return 0
    members = _group_members(pgid)
    if not members:
        return 0
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return 0
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_members(pgid):
        time.sleep(0.5)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return len(members)


# Commands that save their work when interrupted (Terraform writes its state and releases its
# lock), matched on the process name (its provider plugins start with the same name).
GRACEFUL_COMMANDS = ("terraform",)


def interrupt_kernel_and_wait(pgid: int | None, grace: float = 150.0) -> bool:
    """Interrupt the kernel that leads ``pgid`` and give the commands it runs that stop gracefully
    (``GRACEFUL_COMMANDS``) up to ``grace`` seconds to do so: the running cell's own interrupt
    handling asks Terraform to stop and save its state. Anything else the kernel started goes with
    the kernel when it is shut down. Returns whether such a command was running."""
    if not pgid or pgid == os.getpgrp():
        return False
    graceful = _graceful_members(pgid)
    try:
        os.kill(pgid, signal.SIGINT)  # the kernel only: the cell forwards it to its command once
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + grace
    while graceful and time.monotonic() < deadline and _graceful_members(pgid):
        time.sleep(0.2)
    return bool(graceful)


def _graceful_members(pgid: int) -> list[int]:
    members = []
    for pid in _group_members(pgid):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if pid != pgid and name.startswith(GRACEFUL_COMMANDS):
            members.append(pid)
    return members


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group (Linux /proc; empty elsewhere)."""
    members = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


class RunbookEngine(NBClientEngine):
    """papermill's nbclient engine plus cell-start announcements."""

    @classmethod
    def _execute_with_client(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                             start_timeout=60, execution_timeout=None, **kwargs):
        # NBClientEngine.execute_managed_notebook, with RunbookClient
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        return RunbookClient(nb_man, **final_kwargs).execute()

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
        code_cells = [c for c in nb_man.nb.cells if c.cell_type == "code"]
        numbers = {id(c): i for i, c in enumerate(code_cells, 1)}
        original = nb_man.cell_start

        def cell_start(cell, cell_index=None, **kw):
            number = numbers.get(id(cell))
            if number is not None:
                for listener in list(_listeners):
                    listener(number, len(code_cells), cell.source)
            return original(cell, cell_index, **kw)

        nb_man.cell_start = cell_start
        try:
            return cls._execute_with_client(nb_man, kernel_name, **kwargs)
        finally:
            nb_man.cell_start = original


papermill_engines.register(ENGINE_NAME, RunbookEngine)

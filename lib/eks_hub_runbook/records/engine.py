"""A papermill engine that announces each code cell as it starts (for the live terminal view).

It is papermill's own nbclient engine; only ``cell_start`` is wrapped so the runner
can print ``[02_deploy 5/23] terraform.apply(...)`` before the cell's output streams.
Registered with papermill as ``runbook``.
"""

from __future__ import annotations

from typing import Callable

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
    """papermill's client; the live view shows markdown displays as markdown, not their repr."""

    def log_output_message(self, output):
        data = output.get("data", {})
        if self.log_output and output.output_type in ("display_data", "execute_result") and "text/markdown" in data:
            self.log.info("".join(data["text/markdown"]))
            return
        super().log_output_message(output)


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

"""A papermill engine that announces each code cell as it starts (for the live terminal view).

It is papermill's own nbclient engine; only ``cell_start`` is wrapped so the runner
can print ``[02_deploy 5/23] terraform.apply(...)`` before the cell's output streams.
Registered with papermill as ``runbook``.
"""

from __future__ import annotations

from typing import Callable

from papermill.engines import NBClientEngine, papermill_engines

ENGINE_NAME = "runbook"
CellListener = Callable[[int, int, str], None]
_listeners: list[CellListener] = []


def add_listener(listener: CellListener) -> None:
    """Call ``listener(number, total, source)`` when a code cell starts (1-based number)."""
    _listeners.append(listener)


def remove_listener(listener: CellListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


class RunbookEngine(NBClientEngine):
    """papermill's nbclient engine plus cell-start announcements."""

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
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
        finally:
            nb_man.cell_start = original


papermill_engines.register(ENGINE_NAME, RunbookEngine)

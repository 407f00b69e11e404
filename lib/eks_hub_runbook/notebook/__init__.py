"""Helpers the runbooks call from their cells: parameter forms, tables, notes, progress.

A runbook imports this module as ``nb``::

    from eks_hub_runbook import notebook as nb
    form = nb.parameter_form(globals())          # widgets only when interactive=True
    params = nb.resolve_from(form)               # validated DeploymentParameters (every problem at once)
    nb.table(nb.parameter_rows(form))            # what it runs with, and where each value came from
    nb.table(rows)                               # a DataFrame with a pass/fail column
    nb.archive(form)                             # last cell: in JupyterLab, into the session's run record

The names are loaded from their submodules on first use (PEP 562), so a process that only
needs ``notebook.contract`` or ``notebook.validation`` (the runner) does not import pandas
with ``display``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the submodule that defines it
_EXPORTS = {
    **dict.fromkeys(("STATUS_MARKS", "ChecksFailed", "Progress", "checks", "failures", "note", "require_pass", "show",
                     "table", "target_note"), "display"),
    "archive": "record",
    **dict.fromkeys(("OPTIONS", "ParameterForm", "options_from", "parameter_form", "parameter_rows", "resolve_from",
                     "runbook_parameter_names"), "forms"),
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what type checkers and IDEs see: the eager imports
    from .display import (STATUS_MARKS, ChecksFailed, Progress, checks, failures, note, require_pass, show, table,
                          target_note)
    from .forms import (OPTIONS, ParameterForm, options_from, parameter_form, parameter_rows, resolve_from,
                        runbook_parameter_names)
    from .record import archive


def __getattr__(name: str) -> Any:
    submodule = _EXPORTS.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{submodule}", __name__), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

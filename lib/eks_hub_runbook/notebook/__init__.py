"""Helpers the runbooks call from their cells: parameter forms, tables, notes, progress.

A runbook imports this module as ``nb``::

    from eks_hub_runbook import notebook as nb
    form = nb.parameter_form(globals())          # widgets only when interactive=True
    params = nb.resolve_from(form)               # validated DeploymentParameters (every problem at once)
    nb.table(nb.parameter_rows(form))            # what it runs with, and where each value came from
    nb.table(rows)                               # a DataFrame with a pass/fail column
    nb.archive(form)                             # last cell: in JupyterLab, into the session's run record
"""

from .display import (
    STATUS_MARKS,
    ChecksFailed,
    Progress,
    checks,
    failures,
    note,
    require_pass,
    show,
    table,
    target_note,
)
from .record import archive
from .forms import (
    OPTIONS,
    ParameterForm,
    options_from,
    parameter_form,
    parameter_rows,
    resolve_from,
    runbook_parameter_names,
)

__all__ = [
    "OPTIONS", "STATUS_MARKS", "ChecksFailed", "ParameterForm", "Progress", "archive", "checks", "failures", "note",
    "options_from", "parameter_form", "parameter_rows", "require_pass", "resolve_from", "runbook_parameter_names",
    "show", "table", "target_note",
]

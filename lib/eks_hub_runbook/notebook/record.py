"""A runbook's last cell: the notebook joins the session's run record when a person ran it."""

from __future__ import annotations

from .forms import ParameterForm


def archive(form: ParameterForm) -> None:
    """In JupyterLab: archive this notebook, as saved, into the session's run record and show where
    (:mod:`..records.interactive`). Under papermill (``runbook run``, nbval) it shows nothing:
    those runs are recorded by their runner.

    The notebook has ended: the deployment it held (:mod:`..locks`) is free again, whatever the
    archive does."""
    from .. import locks

    if form.validated is None:  # the parameters were refused: nothing ran to record, nothing was held
        return
    params = form.validated.params
    try:
        _archive(form, params)
    finally:
        locks.leave_notebook(params.deployment)


def _archive(form: ParameterForm, params) -> None:
    from ..records import interactive

    current = form.current()
    given = {name: current[name] for name in sorted(form.given()) if name in current and name not in form.secrets}
    rows = interactive.archive_notebook(params.deployment, params.target, given)
    if rows:
        from IPython.display import display

        from .display import table

        display(table(rows, index="item"))

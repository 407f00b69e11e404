"""A runbook's last cell: the notebook joins the session's run record when a person ran it."""

from __future__ import annotations

from .forms import ParameterForm


def archive(form: ParameterForm) -> None:
    """In JupyterLab: archive this notebook, as saved, into the session's run record and show where
    (:mod:`..records.interactive`). Under papermill (``runbook run``, nbval) it shows nothing:
    those runs are recorded by their runner."""
    from ..records import interactive

    if form.validated is None:  # the parameters were refused: nothing ran to record
        return
    params = form.validated.params
    current = form.current()
    given = {name: current[name] for name in sorted(form.given()) if name in current and name not in form.secrets}
    rows = interactive.archive_notebook(params.deployment, params.target, given)
    if rows:
        from IPython.display import display

        from .display import table

        display(table(rows, index="item"))

"""Run records of notebooks a person runs in JupyterLab: the workshop's archive.

Each runbook ends with ``nb.archive(form)``. Under papermill it does nothing (``runbook run``
writes the record). In a kernel that a Jupyter server runs, it finds the notebook through that
server (the kernel's id -> the server's sessions -> the notebook's path), waits until the
server has a copy saved after the previous cell finished (a workshop's JupyterLab autosaves
every 2 s, see :mod:`..lab`), and archives that copy into
``outputs/<deployment>/<run-id>/`` exactly as ``runbook run`` would: scrubbed, summarized into
``run.json`` (same fields; per-cell timings from JupyterLab's ``recordTiming``), the HTML
report rewritten. The six notebooks of one JupyterLab session share one run record: the run id
comes from ``RUNBOOK_RUN_ID`` (``runbook lab`` sets it), else one is made per server.

Screenshots (the forms as the presenter saw them, the hub's pages) join the record with
:func:`add_screenshots`; the report shows them in walkthrough order.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import RunbookError, SecretLeakError
from ..paths import RUNBOOKS_DIR, state_dir
from . import archive, scrub
from .archive import Run, iso
from .model import Failure, NotebookEntry, Status

RUN_ID_ENV = "RUNBOOK_RUN_ID"
SCREENSHOTS_DIR = "screenshots"
COMMAND = "runbook lab"


@dataclass(frozen=True)
class LabNotebook:
    """The notebook this kernel runs, as the Jupyter server serving it knows it."""

    server: dict[str, Any]  # the server's runtime info (url, token, pid, root_dir)
    path: str  # the notebook's path relative to the server's root

    @property
    def name(self) -> str:
        return Path(self.path).stem

    def api(self, endpoint: str, **query: str) -> Any:
        """GET ``/api/<endpoint>`` of the server (JSON)."""
        url = self.server["url"].rstrip("/") + "/api/" + endpoint
        if query:
            url += "?" + urllib.parse.urlencode(query)
        return _get_json(url, self.server.get("token", ""))


def _get_json(url: str, token: str, timeout: float = 10.0) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def this_notebook() -> LabNotebook | None:
    """The Jupyter server running this kernel and the notebook's path there; None under
    papermill, nbval or outside a kernel."""
    try:
        from ipykernel.connect import get_connection_file

        connection = get_connection_file()
    except Exception:  # noqa: BLE001 - not in an ipykernel
        return None
    kernel_id = Path(connection).stem.removeprefix("kernel-")
    from jupyter_core.paths import jupyter_runtime_dir

    if not any(Path(jupyter_runtime_dir()).glob("jpserver-*.json")):
        return None  # no Jupyter server runs here (papermill, nbval): skip importing jupyter_server
    from jupyter_server.serverapp import list_running_servers

    for server in list_running_servers():
        try:
            sessions = _get_json(server["url"].rstrip("/") + "/api/sessions", server.get("token", ""), timeout=3)
        except (OSError, ValueError):
            continue
        for session in sessions:
            if (session.get("kernel") or {}).get("id") == kernel_id and session.get("type", "notebook") == "notebook":
                return LabNotebook(server=server, path=session["path"])
    return None


def saved_copy(notebook: LabNotebook, since: float | None, timeout: float = 30.0) -> tuple[dict, str, bool]:
    """The notebook as the server saved it: ``(notebook, saved_at, fresh)``; ``fresh`` when saved
    after ``since`` (the previous cell's end) with that cell shown as run, waited for up to
    ``timeout`` seconds (a busy machine's autosave can lag behind quick cells)."""
    quoted = urllib.parse.quote(notebook.path)
    deadline = time.monotonic() + timeout
    while True:
        model = notebook.api(f"contents/{quoted}", content="1", type="notebook")
        saved = dt.datetime.fromisoformat(model["last_modified"].replace("Z", "+00:00"))
        fresh = since is None or (saved.timestamp() >= since and _previous_cell_ran(model["content"]))
        if fresh or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return model["content"], saved.isoformat(timespec="seconds"), fresh


def _previous_cell_ran(content: dict) -> bool:
    """The code cell before the archiving one (``nb.archive(...)``) has its execution count in this copy."""
    code = [c for c in content.get("cells", []) if c.get("cell_type") == "code"]
    last = next((i for i in range(len(code) - 1, -1, -1) if "nb.archive(" in "".join(code[i].get("source", ""))), None)
    return last is None or last == 0 or code[last - 1].get("execution_count") is not None


def _run_id(notebook: LabNotebook) -> str:
    given = os.environ.get(RUN_ID_ENV, "").strip()
    if given:
        return given
    marker = state_dir() / "lab" / "runs" / f"{notebook.server.get('pid')}-{notebook.server.get('port')}"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(archive.new_run_id())
    return marker.read_text().strip()


def workshop_run(deployment: str, target: str, run_id: str, server_pid: int | None) -> Run:
    """The session's run record of ``deployment``, made on the first notebook archived."""
    from . import versions
    from .runner import discover

    directory = archive.outputs_root() / deployment / run_id
    if (directory / archive.RUN_FILE).exists():
        return Run.load(directory)
    run = Run.create(deployment, discover(all_notebooks=True, notebook_dir=RUNBOOKS_DIR), {}, target=target,
                     command=COMMAND, run_id=run_id)
    run.record.runner = {"pid": server_pid or os.getpid(), "host": socket.gethostname(), "jupyter": True}
    run.record.versions = versions.collect(deployment)
    run.record.git = versions.git_info()
    run.save()
    return run


def _entry(run: Run, name: str, path: str) -> NotebookEntry:
    try:
        return run.entry(name)
    except RunbookError:
        entry = NotebookEntry.new(name, archive.relative(RUNBOOKS_DIR / path))
        run.notebooks.append(entry)
        return entry


def record_notebook(run: Run, name: str, notebook: dict, parameters: dict[str, Any]) -> NotebookEntry:
    """Archive one notebook (as JupyterLab saved it) into ``run``; returns its entry."""
    entry = _entry(run, name, f"{name}.ipynb")
    if entry.attempt and entry.output and (run.dir / entry.output).exists():  # run again: keep the earlier one
        run.set_aside(entry)
    staged = run.staging_dir / f"{name}.ipynb"
    staged.write_text(json.dumps(notebook))
    summary = archive.summarize_notebook(staged)
    entry.begin(parameters, started_at=summary.started_at or iso())
    outcome, reason = Status.SUCCEEDED, None
    try:
        scrub.archive_notebook(staged, run.dir / entry.output)
    except SecretLeakError as exc:
        outcome, reason = Status.REFUSED, str(exc)
    finally:
        staged.unlink(missing_ok=True)
    code = summary.cells[:-1]  # the last cell is this archive call, running now
    not_run = [cell.index for cell in code if cell.status == "pending"]
    failure = summary.failure
    if outcome == Status.SUCCEEDED and (failure or not_run):
        outcome = Status.FAILED
        failure = failure or Failure(reason=f"cells {', '.join(map(str, not_run))} were not run")
    entry.status = outcome
    entry.cells = summary.cells
    entry.failure = None if outcome == Status.SUCCEEDED else (failure or Failure(reason=reason))
    if reason and entry.failure:
        entry.failure.reason = reason
    entry.ended_at = summary.ended_at or iso()
    entry.duration_s = summary.duration_s
    if (run.dir / entry.output).exists():
        entry.scraps = archive.read_scraps(run.dir / entry.output)
    else:
        entry.output = None
    for key, value in parameters.items():
        run.record.parameters.setdefault(key, value)
    _settle(run)
    return entry


def _settle(run: Run) -> None:
    """The run's status from its notebooks' (failed, succeeded when all did, else running)."""
    record = run.record
    failed = next((e for e in run.notebooks if e.status in (Status.FAILED, Status.REFUSED)), None)
    done = all(e.status == Status.SUCCEEDED for e in run.notebooks)
    record.status = Status.FAILED if failed else Status.SUCCEEDED if done else Status.RUNNING
    record.failure = (failed.failure or Failure()).in_notebook(failed.name) if failed else None
    ended = [archive.parse_time(e.ended_at) for e in run.notebooks if e.ended_at]
    record.ended_at = iso(max(ended)) if ended and record.status != Status.RUNNING else None
    started = archive.parse_time(record.started_at)
    latest = max(ended) if ended else archive.now()
    record.duration_s = round((latest - started).total_seconds(), 3) if started else None
    run.save()


def add_screenshots(run: Run, notebook: str, shots: Sequence[tuple[str, Path]]) -> list[dict[str, str]]:
    """Copy ``(caption, png)`` screenshots into the record, listed under ``notebook`` (the step of
    the walkthrough they show); rewrites the report. Returns what ``run.json`` lists."""
    from .report import write_report

    folder = run.dir / SCREENSHOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    listed = run.record.extra.setdefault("screenshots", [])
    for caption, source in shots:
        target = folder / f"{notebook}-{len(listed) + 1:02d}-{Path(source).stem}.png"
        shutil.copyfile(source, target)
        listed.append({"notebook": notebook, "caption": str(caption), "path": str(target.relative_to(run.dir))})
    run.save()
    write_report(run)
    return listed


def archive_notebook(deployment: str, target: str, parameters: dict[str, Any]) -> list[dict[str, str]] | None:
    """Archive the notebook this kernel runs in JupyterLab; rows ``item, value`` to show, or None
    when no Jupyter server runs this kernel (papermill: ``runbook run`` records those runs)."""
    from .. import kernel
    from .report import write_index, write_report

    notebook = this_notebook()
    if notebook is None:
        return None
    content, saved_at, fresh = saved_copy(notebook, kernel.last_cell_finished())
    run = workshop_run(deployment, target, _run_id(notebook), notebook.server.get("pid"))
    entry = record_notebook(run, notebook.name, content, parameters)
    write_report(run)
    write_index()
    done = sum(e.status == Status.SUCCEEDED for e in run.notebooks)
    rows = [
        {"item": "run record", "value": archive.relative(run.dir)},
        {"item": "this notebook", "value": f"{entry.name}: {entry.status}"},
        {"item": "notebooks archived", "value": f"{done} of {len(run.notebooks)} succeeded"},
        {"item": "saved copy", "value": saved_at + ("" if fresh else " (older than the last cell: save with Ctrl+S and run this cell again)")},
        {"item": "report", "value": archive.relative(run.dir / "report" / "index.html")},
    ]
    return rows

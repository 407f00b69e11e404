"""The run archive: one folder per run, ``outputs/<deployment>/<run-id>/``.

A run folder holds the executed notebooks (scrubbed, see ``scrub``), the run's log
(``run.log``), earlier attempts of notebooks that were re-run by ``--resume``
(``attempts/<n>/``) and ``run.json``::

    {
      "schema": 1,
      "run_id": "20260128-134501-3fa2",
      "deployment": "jupyterhub-on-eks",
      "target": "sandbox",
      "status": "running | succeeded | failed | killed | interrupted | refused",
      "started_at": ISO-8601 UTC, "ended_at": ..., "duration_s": float,
      "command": "runbook run --all -p auth cognito",
      "parameters": {...},                # as given (secrets are never parameters)
      "secrets": {"oauth_client_secret": "env:RUNBOOK_OAUTH_CLIENT_SECRET"},  # sources only
      "notebooks": [
        {"name": "02_deploy", "input": "runbooks/02_deploy.ipynb", "output": "02_deploy.ipynb",
         "status": "pending | running | succeeded | failed | killed | interrupted | refused",
         "attempt": 1, "started_at": ..., "ended_at": ..., "duration_s": ...,
         "parameters": {...},             # the ones injected into this notebook
         "cells": [{"index": 3, "execution_count": 2, "status": "completed",
                    "duration_s": 0.41, "first_line": "plan = terraform.plan(p)"}],
         "failure": null | {"cell_index", "execution_count", "ename", "evalue", "first_line", "reason"},
         "scraps": {"cluster_name": "..."},
         "previous_attempts": [{"attempt": 1, "status": "failed", "failure": {...},
                                "output": "attempts/1/02_deploy.ipynb", ...}]}
      ],
      "failure": null | {"notebook": "02_deploy", ...the notebook's failure...},
      "attempts": [{"attempt": 1, "started_at": ..., "ended_at": ..., "status": ..., "resumed_from": null}],
      "versions": {"python", "terraform", "providers", "charts", "packages"},
      "git": {"commit", "branch", "dirty"},
      "runner": {"pid": 1234, "host": "..."},
      "estimated_cost": {"usd": 1.23, "items": [...], "source": "price table (us-west-2, 2026-11-28)", ...}
    }                                     # estimated_cost: once 05_cleanup glued it (RUN_SCRAPS)

The types of ``model`` (``RunRecord``, ``NotebookEntry``, ``Attempt``, ``Failure``, ``Status``)
read and write exactly this shape. Everything written here goes through ``scrub`` first.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import secrets as _random
import socket
from pathlib import Path
from typing import Any, Iterator

from ..errors import RunNotFoundError
from ..paths import REPO_ROOT, state_dir
from ..processes import pid_alive
from . import scrub
from .model import FINISHED, RESUMABLE, SCHEMA_VERSION  # noqa: F401 - re-exported (archive.RESUMABLE, ...)
from .model import Cell, Failure, NotebookEntry, NotebookSummary, RunRecord, Status
from .redact import redact

RUN_FILE = "run.json"
# Scraps that describe the whole run, not one notebook: run.json also holds them at its top level
# (the latest notebook that glued one wins). 05_cleanup glues the run's estimated spend.
RUN_SCRAPS = ("estimated_cost",)
LOG_FILE = "run.log"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(moment: dt.datetime | None = None) -> str:
    return (moment or now()).isoformat(timespec="milliseconds")


def parse_time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def outputs_root() -> Path:
    """``outputs/`` (``RUNBOOK_OUTPUTS_DIR`` overrides it, read at call time)."""
    return Path(os.environ.get("RUNBOOK_OUTPUTS_DIR") or REPO_ROOT / "outputs")


def new_run_id(moment: dt.datetime | None = None) -> str:
    """A sortable, unique run id: ``YYYYMMDD-HHMMSS-xxxx`` (UTC)."""
    return f"{(moment or now()).strftime('%Y%m%d-%H%M%S')}-{_random.token_hex(2)}"


def relative(path: Path | str) -> str:
    """A path relative to the repository when inside it (records stay portable)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def input_path(entry: NotebookEntry) -> Path:
    """The source notebook of a run's notebook entry."""
    path = Path(entry.input)
    return path if path.is_absolute() else REPO_ROOT / path


class Run:
    """One run folder and its ``run.json`` (``record``)."""

    def __init__(self, directory: Path, record: RunRecord):
        self.dir = Path(directory)
        self.record = record

    # -- creation and loading -------------------------------------------------

    @classmethod
    def create(
        cls,
        deployment: str,
        notebooks: list[tuple[str, Path]],
        parameters: dict[str, Any],
        *,
        target: str,
        secret_sources: dict[str, str] | None = None,
        command: str = "",
        root: Path | None = None,
        run_id: str | None = None,
    ) -> "Run":
        """A new run folder with every notebook ``pending``."""
        run_id = run_id or new_run_id()
        directory = (root or outputs_root()) / deployment / run_id
        directory.mkdir(parents=True, exist_ok=False)
        record = RunRecord(
            run_id=run_id,
            deployment=deployment,
            target=target,
            status=Status.RUNNING,
            started_at=iso(),
            command=redact(command),
            parameters=parameters,
            secrets=dict(secret_sources or {}),
            notebooks=[NotebookEntry.new(name, relative(path)) for name, path in notebooks],
            runner={"pid": os.getpid(), "host": socket.gethostname()},
        )
        run = cls(directory, record)
        run.save()
        return run

    @classmethod
    def load(cls, directory: Path) -> "Run":
        path = Path(directory) / RUN_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise RunNotFoundError(f"{directory} is not a run folder (no {RUN_FILE})") from None
        try:
            return cls(Path(directory), RunRecord.from_dict(data))
        except (KeyError, TypeError, AttributeError) as exc:  # ValueError (an unknown status) passes as it is
            raise ValueError(f"{path} is not a run record ({exc.__class__.__name__}: {exc})") from None

    def save(self) -> None:
        """Write run.json (scrubbed: a secret in it raises SecretLeakError), with the notebooks' :data:`RUN_SCRAPS`
        at its top level."""
        for entry in self.record.notebooks:
            for name in RUN_SCRAPS:
                if name in (entry.scraps or {}):
                    self.record.extra[name] = entry.scraps[name]
        scrub.write_json(self.record.to_dict(), self.dir / RUN_FILE, where=f"{self.run_id}/{RUN_FILE}")

    # -- properties -----------------------------------------------------------

    @property
    def data(self) -> dict[str, Any]:
        """``run.json`` as a dict, a copy: for readers that want the JSON (change the run through ``record``)."""
        return copy.deepcopy(self.record.to_dict())

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def deployment(self) -> str:
        return self.record.deployment

    @property
    def status(self) -> Status:
        """The recorded status, or ``abandoned`` for a run whose runner is gone."""
        status, runner = self.record.status, self.record.runner
        if status == Status.RUNNING and runner.get("host") == socket.gethostname() and not (runner.get("pid") and pid_alive(runner["pid"])):
            return Status.ABANDONED
        return Status(status)

    @property
    def notebooks(self) -> list[NotebookEntry]:
        return self.record.notebooks

    def entry(self, name: str) -> NotebookEntry:
        """The record of the run's notebook ``name``."""
        for entry in self.notebooks:
            if entry.name == name:
                return entry
        raise RunNotFoundError(f"run {self.run_id} has no notebook {name!r}")

    def notebook(self, name: str) -> dict[str, Any]:
        """The notebook ``name`` as run.json has it, a copy (:meth:`entry` is the record itself)."""
        return copy.deepcopy(self.entry(name).to_dict())

    @property
    def staging_dir(self) -> Path:
        """Private folder where notebooks execute before the scrub lets them into the record."""
        path = state_dir() / "runs" / self.deployment / self.run_id
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def set_aside(self, entry: NotebookEntry) -> None:
        """Keep the entry's latest attempt as an earlier one: its notebook moves to
        ``attempts/<n>/`` and the entry is ``pending`` again."""
        kept = None
        current = self.dir / entry.output if entry.output else None
        if current and current.exists():
            target = self.dir / "attempts" / str(entry.attempt) / current.name
            target.parent.mkdir(parents=True, exist_ok=True)
            current.replace(target)
            kept = str(target.relative_to(self.dir))
        entry.set_aside(kept)

    @property
    def log_path(self) -> Path:
        return self.dir / LOG_FILE

    def summary_row(self) -> dict[str, Any]:
        """One line of ``runbook records list``."""
        record = self.record
        done = [n for n in self.notebooks if n.status == Status.SUCCEEDED]
        parameters = ", ".join(f"{k}={v}" for k, v in sorted(record.parameters.items()))
        return {
            "run": f"{self.deployment}/{self.run_id}",
            "status": str(self.status),
            "target": record.target,
            "started": (record.started_at or "")[:19].replace("T", " "),
            "duration": format_duration(record.duration_s),
            "notebooks": f"{len(done)}/{len(self.notebooks)}",
            "parameters": parameters if len(parameters) <= 60 else parameters[:57] + "...",
        }


def format_duration(seconds: float | None) -> str:
    """``1m 49s`` style; empty when unknown."""
    if seconds is None:
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


# -- finding runs --------------------------------------------------------------


def iter_runs(root: Path | None = None, deployment: str | None = None) -> Iterator[Run]:
    """Every run under ``outputs/`` (or ``root``), oldest first."""
    root = root or outputs_root()
    if not root.is_dir():
        return
    pattern = f"{deployment}/*/{RUN_FILE}" if deployment else f"*/*/{RUN_FILE}"
    runs = []
    for path in root.glob(pattern):
        try:
            runs.append(Run.load(path.parent))
        except (ValueError, RunNotFoundError):
            continue
    yield from sorted(runs, key=lambda r: (r.record.started_at or "", r.run_id))


def find_run(ref: str, root: Path | None = None) -> Run:
    """A run by id, ``deployment/run-id``, folder path, unique id prefix, or ``latest``."""
    root = root or outputs_root()
    candidate = Path(ref)
    if (candidate / RUN_FILE).is_file():
        return Run.load(candidate)
    if (root / ref / RUN_FILE).is_file():
        return Run.load(root / ref)
    runs = list(iter_runs(root))
    if ref == "latest":
        if not runs:
            raise RunNotFoundError(f"no runs under {root}")
        return runs[-1]
    matches = [r for r in runs if r.run_id == ref] or [r for r in runs if r.run_id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFoundError(f"no run {ref!r} under {root}: see `runbook records list`")
    raise RunNotFoundError(f"{ref!r} matches {len(matches)} runs: give the full id ({', '.join(r.run_id for r in matches[:5])})")


def latest_resumable(deployment: str | None = None, root: Path | None = None) -> Run | None:
    """The most recent run that did not finish successfully, if it is the latest run."""
    runs = list(iter_runs(root, deployment))
    if not runs:
        return None
    latest = runs[-1]
    return latest if latest.status.resumable else None


# -- what an executed notebook says --------------------------------------------


_ERROR_MARKER = "papermill-error-cell-tag"


def _first_line(source: str | list[str]) -> str:
    text = "".join(source) if isinstance(source, list) else source
    for line in text.splitlines():
        if line.strip() and not line.strip().startswith("#"):
            line = line.strip()
            return redact(line if len(line) <= 100 else line[:97] + "...")
    return ""


def _duration(meta: dict) -> float | None:
    if meta.get("duration") is not None:
        return round(float(meta["duration"]), 3)
    start, end = parse_time(meta.get("start_time")), parse_time(meta.get("end_time"))
    return round((end - start).total_seconds(), 3) if start and end else None


def _clean_exit(output: dict) -> bool:
    """``SystemExit(0)``: the notebook stopped itself on purpose (02_deploy's ``plan_only``); papermill agrees."""
    return output.get("output_type") == "error" and output.get("ename") == "SystemExit" and output.get("evalue") in ("", "0")


def _error_output(cell: dict) -> dict | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error" and not _clean_exit(output):
            return output
    return None


def _lab_timing(cell: dict) -> dict[str, Any]:
    """A JupyterLab-run cell's timing (``recordTiming``) in papermill's terms, or {}."""
    execution = cell.get("metadata", {}).get("execution") or {}
    start = execution.get("iopub.execute_input") or execution.get("iopub.status.busy")
    end = execution.get("shell.execute_reply") or execution.get("iopub.status.idle")
    if not start:
        return {}
    timing = {"start_time": start, "end_time": end, "status": "completed" if end else "running"}
    return {**timing, "duration": _duration(timing)} if end else timing


def summarize_notebook(path: Path) -> NotebookSummary:
    """Timings, per-cell status and the failing cell of an executed notebook (papermill's metadata,
    or JupyterLab's cell timings for a notebook a person ran)."""
    nb = json.loads(Path(path).read_text())
    meta = nb.get("metadata", {}).get("papermill", {})
    lab = not meta
    lab_timings: list[dict[str, Any]] = []
    cells: list[Cell] = []
    failure: Failure | None = None
    # papermill inserts error-marker cells on failure; count cells as they were executed
    executed = [c for c in nb.get("cells", []) if _ERROR_MARKER not in c.get("metadata", {}).get("tags", [])]
    for index, cell in enumerate(executed):
        if cell.get("cell_type") != "code":
            continue
        pm = cell.get("metadata", {}).get("papermill", {}) if not lab else _lab_timing(cell)
        if lab:
            lab_timings.append(pm)
        status = pm.get("status", "pending")
        if lab and status == "pending" and cell.get("execution_count") is not None:
            status = "completed"  # run before timings were recorded
        if lab and _error_output(cell) is not None:
            status = "failed"
        if status == "failed" and _error_output(cell) is None and any(_clean_exit(o) for o in cell.get("outputs", [])):
            status = "stopped"  # papermill marks the cell that stopped the notebook failed, yet records no error
        if not lab and status == "completed" and not pm.get("start_time"):
            status = "pending"  # papermill marks never-started cells completed at the end
        cells.append(Cell(
            index=index,
            execution_count=cell.get("execution_count"),
            status=status,
            duration_s=_duration(pm),
            tags=cell.get("metadata", {}).get("tags", []),
            first_line=_first_line(cell.get("source", "")),
        ))
        error = _error_output(cell)
        if failure is None and (error is not None or status == "failed"):
            failure = Failure(
                cell_index=index,
                execution_count=cell.get("execution_count"),
                ename=(error or {}).get("ename", "CellExecutionError"),
                evalue=redact(str((error or {}).get("evalue", "")))[:2000],
                first_line=_first_line(cell.get("source", "")),
            )
    if lab:
        starts = sorted(t["start_time"] for t in lab_timings if t.get("start_time"))
        ends = sorted(t["end_time"] for t in lab_timings if t.get("end_time"))
        meta = {"start_time": _utc(starts[0]) if starts else None, "end_time": _utc(ends[-1]) if ends else None}
    return NotebookSummary(
        started_at=meta.get("start_time"),
        ended_at=meta.get("end_time"),
        duration_s=_duration(meta),
        parameters=meta.get("parameters", {}),
        cells=cells,
        failure=failure,
    )


def _utc(text: str) -> str:
    return iso(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def read_scraps(path: Path) -> dict[str, Any]:
    """Scraps glued in an executed notebook (scrapbook), as JSON-friendly values."""
    import scrapbook as sb

    try:
        scraps = sb.read_notebook(str(path)).scraps
    except Exception as exc:  # scrapbook is unmaintained; a bad scrap must not lose the record
        return {"_error": f"could not read scraps: {exc.__class__.__name__}"}
    values = {}
    for name, scrap in scraps.items():
        if scrap.encoder in ("json", "text"):
            values[name] = scrap.data
        else:
            values[name] = {"encoder": scrap.encoder, "summary": redact(repr(scrap.data))[:200]}
    return values

"""Run notebooks in order with papermill and archive every step (``runbook run``).

For each notebook: inject the parameters it declares, execute it in a private staging
folder with live output in the terminal, then let the scrub copy it into the run
folder and record timings, status, failing cell and scraps in ``run.json``. The run
stops at the first notebook that does not succeed; ``resume`` continues it from there,
keeping the earlier notebooks' records.

Secrets never become papermill parameters: they are exported to the kernel's
environment for the duration of the run (from the environment or a secrets file)
and registered for redaction.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

import papermill as pm
from nbclient.exceptions import DeadKernelError
from papermill.exceptions import PapermillExecutionError

from .. import environment, locks, params as deployment_params, targets
from ..errors import ParameterError, RunFailed, RunInterrupted, RunbookError, SecretLeakError, raise_all
from ..notebook import contract
from ..notebook.forms import recorded_parameters
from ..notebook.validation import validate
from ..params import Problems
from ..paths import RUNBOOKS_DIR, deployment_dir
from . import archive, engine, scrub, versions
from .archive import Run, iso, now
from .console import Console, papermill_output
from .inputs import check_not_secret, is_secret_name, secret_environment, secret_sources
from .model import Attempt, Failure, NotebookEntry, NotebookSummary, Status
from .redact import find_secrets, redact


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# -- choosing notebooks and parameters -------------------------------------------


def discover(names: list[str] | None = None, all_notebooks: bool = False, notebook_dir: Path = RUNBOOKS_DIR) -> list[tuple[str, Path]]:
    """``(name, path)`` of the notebooks to run, in order.

    A name may be a path, a file name, a stem (``02_deploy``), a number prefix (``02``)
    or the part after it (``deploy``).
    """
    available = sorted(p for p in Path(notebook_dir).glob("*.ipynb") if not p.name.startswith("."))
    if all_notebooks:
        if names:
            raise RunbookError("give notebook names or --all, not both")
        if not available:
            raise RunbookError(f"no notebooks in {notebook_dir}")
        return [(p.stem, p) for p in available]
    if not names:
        raise RunbookError("name the notebooks to run (e.g. `runbook run 00 01 02`) or pass --all")
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append((path.stem, path.resolve()))
            continue
        stem = path.name.removesuffix(".ipynb")
        matches = [p for p in available if p.stem == stem] or [
            p for p in available if p.stem.split("_", 1)[0] == stem or p.stem.split("_", 1)[-1] == stem
        ]
        if len(matches) != 1:
            known = ", ".join(p.stem for p in available) or "none"
            problem = "matches several notebooks" if matches else "is not a notebook"
            raise RunbookError(f"{name!r} {problem}; notebooks in {notebook_dir}: {known}")
        chosen.append((matches[0].stem, matches[0]))
    return chosen


def declared_parameters(path: Path) -> dict[str, Any]:
    """The notebook's parameters (name -> default value where it is a literal)."""
    return contract.read(path).declared


def plan_parameters(contracts: list[contract.Contract], parameters: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Which of ``parameters`` goes into which notebook, after validating every notebook of the run.

    Each ``-p`` goes to the notebooks that declare it; a name none of them declares, a
    secret, and every value a runbook's validation cell would refuse (05_cleanup's
    ``confirm`` included) is reported here, all at once (:class:`ParameterErrors`), before
    the first notebook starts. Notebooks that work on an existing deployment are checked
    against what 02_deploy recorded, or will record earlier in this run.
    """
    per_notebook = {c.name: {k: v for k, v in parameters.items() if k in c.declared} for c in contracts}
    known = sorted({name for c in contracts for name in c.declared})
    problems = Problems()
    for name, value in parameters.items():
        if is_secret_name(name):
            problems.check(check_not_secret, name)
        elif name not in known:
            problems.errors.append(deployment_params.unknown_parameter(
                name, known, f"a parameter of any notebook of this run ({', '.join(c.name for c in contracts)})"))
        elif find_secrets(value):
            problems.add(name, "its value equals a known secret",
                         "pass secrets only through the environment or --secrets-file, never as -p values")
    problems.raise_all()

    deployment = str(parameters.get("deployment") or _default(contracts, "deployment", deployment_params.DeploymentParameters.deployment))
    problems.check(deployment_params.deployment_name, deployment)  # it names the run's records, whatever the notebooks
    problems.raise_all()
    record = recorded_parameters(deployment)
    found: dict[tuple[str, str, str], list[str]] = {}
    for c in (c for c in contracts if c.validates):  # a plain notebook has no validation cell to mirror
        given = per_notebook[c.name]
        try:
            validated = validate({**c.declared, **given}, declared=c.declared, given=given, record=record,
                                 from_record=c.from_record, confirm_action=f"{c.name} {c.confirm}" if c.confirm else None,
                                 where=c.name)
        except ParameterError as exc:
            for error in exc.errors:
                found.setdefault((error.parameter, error.problem, error.fix), []).append(c.name)
            if c.records_parameters:
                record = None  # what it would record is unknown: later notebooks are not held against a missing one
        else:
            if c.records_parameters:
                record = validated.params.as_dict()
    raise_all([ParameterError(name, f"{problem} (in {', '.join(where)})", fix) for (name, problem, fix), where in found.items()])
    return per_notebook


def _default(contracts: list[contract.Contract], name: str, fallback: Any) -> Any:
    for c in contracts:
        value = c.declared.get(name)
        if value not in (None, ""):
            return value
    return fallback


# -- process plumbing -------------------------------------------------------------


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the run like Ctrl-C, so the record is written (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise RunInterrupted("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _mark_stopped(staged: Path, ename: str, evalue: str) -> None:
    """Record in the notebook itself which cell was running when execution stopped.

    papermill marks a cell ``completed`` when the kernel dies under it, and every
    cell after it too; put the truth back: the stopped cell failed, later ones are pending.
    """
    nb = json.loads(staged.read_text())
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    started = [c for c in code if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    if started:
        cell = started[-1]
        pmeta = cell["metadata"]["papermill"]
        pmeta.update(status="failed", exception=True)
        cell.setdefault("outputs", []).append(
            {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}
        )
    for cell in code:
        pmeta = cell.get("metadata", {}).get("papermill", {})
        if not pmeta.get("start_time"):
            pmeta["status"] = "pending"
    nb.setdefault("metadata", {}).setdefault("papermill", {})["exception"] = True
    staged.write_text(json.dumps(nb, indent=1))


# -- the run ----------------------------------------------------------------------


class Runner:
    """Executes the notebooks of one run and keeps its record up to date."""

    def __init__(self, run: Run, console: Console, kernel_name: str | None = None, execution_timeout: float | None = None):
        self.run = run
        self.console = console
        self.kernel_name = kernel_name
        self.execution_timeout = execution_timeout
        self.staged_log = run.staging_dir / archive.LOG_FILE

    def _sync_log(self) -> None:
        if self.staged_log.exists():
            try:
                scrub.archive_text(self.staged_log, self.run.log_path)
            except SecretLeakError as exc:
                self.console.write(f"WARNING: {exc}")

    def execute(self, start: int, paths: dict[str, Path], per_notebook: dict[str, dict[str, Any]]) -> Run:
        """Run notebooks ``start..`` of the record; returns the finished record."""
        run, record = self.run, self.run.record
        if not self.staged_log.exists() and run.log_path.exists():
            shutil.copyfile(run.log_path, self.staged_log)  # resume: keep one continuous log
        self.console.open_log(self.staged_log)
        attempt = Attempt(attempt=len(record.attempts) + 1, started_at=iso(),
                          resumed_from=run.notebooks[start].name if record.attempts else None)
        record.attempts.append(attempt)
        record.status, record.ended_at, record.failure = Status.RUNNING, None, None
        record.runner["pid"] = os.getpid()
        run.save()
        self.console.write(f"run {run.deployment}/{run.run_id} -> {run.dir}")
        try:
            for entry in run.notebooks[start:]:
                outcome = self._execute_one(entry, paths[entry.name], per_notebook.get(entry.name, {}))
                if outcome != Status.SUCCEEDED:
                    record.status = outcome
                    record.failure = (entry.failure or Failure()).in_notebook(entry.name)
                    break
            else:
                record.status = Status.SUCCEEDED
        except KeyboardInterrupt:
            record.status = Status.INTERRUPTED
            failed = next((n for n in run.notebooks if n.status == Status.INTERRUPTED), None)
            record.failure = (failed.failure or Failure()).in_notebook(failed.name) if failed else Failure(reason="interrupted")
            raise
        finally:
            ended = now()
            record.ended_at = iso(ended)
            started = archive.parse_time(record.started_at)
            record.duration_s = round((ended - started).total_seconds(), 3)
            attempt.ended_at, attempt.status = iso(ended), record.status
            self.console.write(f"run {run.deployment}/{run.run_id}: {record.status} "
                               f"in {archive.format_duration(record.duration_s)}")
            self.console.close()
            self._sync_log()
            run.save()
            if record.status == Status.SUCCEEDED:
                shutil.rmtree(run.staging_dir, ignore_errors=True)
        return run

    def _execute_one(self, entry: NotebookEntry, path: Path, parameters: dict[str, Any]) -> Status:
        run, name = self.run, entry.name
        staged = run.staging_dir / f"{name}.ipynb"
        staged.unlink(missing_ok=True)
        entry.begin(parameters, started_at=iso())
        run.save()
        self.console.notebook = name
        self.console.rule(f"{name} ({archive.relative(path)})")
        outcome, reason, interrupted = Status.SUCCEEDED, None, None
        try:
            with papermill_output(self.console):
                pm.execute_notebook(
                    str(path), str(staged), parameters=parameters, log_output=True, progress_bar=False,
                    cwd=str(path.parent), kernel_name=self.kernel_name, execution_timeout=self.execution_timeout,
                    engine_name=engine.ENGINE_NAME,
                    # ipykernel 7 logs an unencrypted-loopback warning on every start and an error on every
                    # shutdown interrupt: noise in the live view (cell errors still arrive as outputs)
                    extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
                )
        except PapermillExecutionError as exc:
            outcome = Status.FAILED
            self.console.write(_ANSI.sub("", "\n".join(exc.traceback or [f"{exc.ename}: {exc.evalue}"])))
        except DeadKernelError:
            outcome = Status.KILLED
            reason = "the kernel died while this cell was running (killed, or out of memory)"
            if staged.exists():
                _mark_stopped(staged, "DeadKernelError", reason)
        except KeyboardInterrupt as exc:
            outcome, interrupted = Status.INTERRUPTED, exc
            reason = f"the run was interrupted ({exc or 'Ctrl-C'}) while this cell was running"
            if staged.exists():
                _mark_stopped(staged, "KeyboardInterrupt", reason)
        except Exception as exc:  # kernel did not start, notebook unreadable, ...
            outcome = Status.FAILED
            reason = redact(f"{exc.__class__.__name__}: {exc}")[:2000]

        self._archive(entry, staged, outcome, reason)
        self.console.write(f"{name}: {entry.status} in {archive.format_duration(entry.duration_s)}"
                           + (f" - {self._describe(entry.failure)}" if entry.failure else ""))
        self._sync_log()
        if interrupted is not None:
            raise interrupted
        return entry.status

    @staticmethod
    def _describe(failure: Failure) -> str:
        where = f"cell {failure.cell_index}" if failure.cell_index is not None else "before any cell"
        what = failure.reason or f"{failure.ename}: {failure.evalue}"
        return f"{where}: {what}"

    def _archive(self, entry: NotebookEntry, staged: Path, outcome: Status, reason: str | None) -> None:
        """Scrub the staged notebook into the record and fill in its entry."""
        run = self.run
        summary = NotebookSummary()
        if staged.exists():
            summary = archive.summarize_notebook(staged)
            try:
                scrub.archive_notebook(staged, run.dir / entry.output)
            except SecretLeakError as exc:
                outcome, reason = Status.REFUSED, str(exc)
                (run.dir / entry.output).unlink(missing_ok=True)
            finally:
                staged.unlink(missing_ok=True)
        ended = iso()
        failure = summary.failure
        if outcome == Status.SUCCEEDED and failure:
            outcome = Status.FAILED
        if outcome != Status.SUCCEEDED:
            failure = failure or Failure()
            if reason:
                failure.reason = reason
        entry.status = outcome
        entry.started_at = summary.started_at or entry.started_at
        entry.ended_at = summary.ended_at or ended
        entry.cells = summary.cells
        entry.failure = failure if outcome != Status.SUCCEEDED else None
        start, end = archive.parse_time(entry.started_at), archive.parse_time(entry.ended_at)
        entry.duration_s = summary.duration_s or (round((end - start).total_seconds(), 3) if start and end else None)
        if (run.dir / entry.output).exists():
            entry.scraps = archive.read_scraps(run.dir / entry.output)
        else:  # refused by the scrub, or the kernel never started
            entry.output = None
        run.save()


def _prepare_resume(run: Run) -> int:
    """Move the records of the notebooks to re-run aside; return the index to start from."""
    start = next((i for i, n in enumerate(run.notebooks) if n.status != Status.SUCCEEDED), None)
    if start is None:
        raise RunbookError(f"run {run.run_id} has nothing left to run: every notebook succeeded")
    for entry in run.notebooks[start:]:
        if entry.status == Status.RUNNING:  # the runner itself died
            entry.status = Status.KILLED
            entry.failure = Failure(reason="the runner stopped while this notebook was running")
            staged = run.staging_dir / f"{entry.name}.ipynb"
            if staged.exists():
                summary = archive.summarize_notebook(staged)
                entry.cells = summary.cells
                stopped = [c for c in summary.cells if c.status in ("running", "completed", "failed")]
                if stopped:
                    entry.failure.cell_index = stopped[-1].index
                    entry.failure.execution_count = stopped[-1].execution_count
                    entry.failure.first_line = stopped[-1].first_line
                try:
                    scrub.archive_notebook(staged, run.dir / entry.output)
                except SecretLeakError:
                    pass
                staged.unlink(missing_ok=True)
        if entry.status == Status.PENDING or entry.attempt == 0:
            continue
        run.set_aside(entry)
    run.save()
    return start


def run(
    notebooks: list[tuple[str, Path]] | None,
    parameters: dict[str, Any] | None = None,
    *,
    secrets_file: str | Path | None = None,
    resume: bool = False,
    run_ref: str | None = None,
    console: Console | None = None,
    root: Path | None = None,
    command: str = "",
    kernel_name: str | None = None,
    execution_timeout: float | None = None,
) -> Run:
    """Execute ``notebooks`` (``(name, path)`` pairs, see ``discover``) and archive the run.

    With ``resume``, continue the latest unfinished run (or ``run_ref``) from its first
    notebook that did not succeed, with its recorded parameters. Raises
    :class:`RunFailed` (carrying the record) when a notebook does not succeed.
    """
    parameters = dict(parameters or {})
    console = console or Console()
    exported = secret_environment(secrets_file)
    sources = secret_sources(secrets_file)

    if resume:
        archived = _find_resumable(notebooks, parameters, run_ref, root)
        notebooks = [(n.name, archive.input_path(n)) for n in archived.notebooks]
        parameters = dict(archived.record.parameters)
        archived.record.secrets.update(sources)
    else:
        if not notebooks:
            raise RunbookError("no notebooks to run")
        archived = None

    contracts = [contract.read(path) for _, path in notebooks]
    per_notebook = plan_parameters(contracts, parameters)
    deployment = str(parameters.get("deployment") or _default(contracts, "deployment", deployment_params.DeploymentParameters.deployment))
    target = str(parameters.get("target") or recorded_parameters(deployment).get("target") or _default(contracts, "target", targets.DEFAULT))

    with locks.hold(deployment, _holder_command(command, resume)) as lease, environment.exported(exported), \
            _sigterm_interrupts():
        if lease.note():
            console.write(f"NOTE: {lease.note()}")
        if archived is None:
            archived = Run.create(deployment, notebooks, parameters, target=target, secret_sources=sources,
                                  command=command, root=root)
            start = 0
        else:
            start = _prepare_resume(archived)
        archived.record.versions = versions.collect(deployment)
        archived.record.git = versions.git_info()
        runner = Runner(archived, console, kernel_name=kernel_name, execution_timeout=execution_timeout)
        runner.execute(start, dict(notebooks), per_notebook)
        archived.record.versions["providers"] = versions.provider_versions(deployment)  # init may have run
        archived.save()

    if archived.record.status != Status.SUCCEEDED:
        raise RunFailed(archived)
    return archived


def _holder_command(command: str, resume: bool) -> str:
    """How this run is named to a second one it refuses: ``runbook run`` and its notebooks, no values."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    named = []
    for word in words[2:]:  # the notebooks come first (cli._command_line), then the options
        if word[:1] == "-":
            break
        named.append(word)
    named += ["--all"] if "--all" in words else []
    return " ".join(["runbook run", *named[:7], *(["--resume"] if resume else [])])


def _find_resumable(notebooks, parameters, run_ref, root) -> Run:
    if run_ref:
        archived = archive.find_run(run_ref, root)
    else:
        deployment = parameters.get("deployment")
        archived = archive.latest_resumable(str(deployment) if deployment else None, root)
        if archived is None:
            scope = f"deployment {deployment!r}" if deployment else "any deployment"
            raise RunbookError(f"nothing to resume: the latest run of {scope} did not fail (see `runbook records list`); "
                               "start a new run without --resume")
    if not archived.status.resumable:
        raise RunbookError(f"run {archived.run_id} is {archived.status}; only failed, killed, interrupted or abandoned runs can be resumed")
    recorded = archived.record.parameters
    for name, value in parameters.items():
        if name not in recorded or recorded[name] != value:
            raise ParameterError(name, f"differs from the run being resumed ({recorded.get(name, '<not set>')!r})",
                                 "resume with the run's own parameters, or start a new run without --resume")
    if notebooks and [n for n, _ in notebooks] != [n.name for n in archived.notebooks]:
        raise RunbookError(f"run {archived.run_id} ran {', '.join(n.name for n in archived.notebooks)}; "
                           "resume it without naming notebooks")
    return archived


__all__ = ["run", "discover", "declared_parameters", "plan_parameters", "RunFailed", "RunInterrupted", "Runner"]

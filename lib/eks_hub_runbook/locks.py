"""One run per deployment at a time: a lock file in the deployment's state folder.

Two runs on one deployment would share its Terraform state, its recorded parameters and its
resources, so the second is refused at once, before it creates anything, with who holds the
deployment and since when (:class:`~eks_hub_runbook.errors.DeploymentInUse`).

The lock is ``fcntl.flock`` on ``<state>/deployments/<name>/deployment.lock``: the kernel
releases it when its holder dies, however it dies (SIGKILL included), so a killed run never
blocks the next one. The holder writes who it is into the file (command, pid, host, since);
a holder that ends normally empties it, so holder information found by the next one to take
the lock is the mark of a run that was killed: the taker says so (:attr:`Lease.took_over`).

- ``runbook run`` holds the lock for the whole run (:func:`hold`) and gives the notebooks it
  runs a token (``RUNBOOK_LOCK_TOKEN``, inherited by their kernels): a notebook whose token is
  the holder's runs under the runner's lock.
- A notebook run on its own (papermill, JupyterLab) takes it in its validation cell
  (:func:`enter_notebook`, called by ``nb.resolve_from``) and gives it back when the notebook
  ends: its last cell (``nb.archive``), a cell that fails (an IPython ``post_run_cell`` hook),
  or the kernel's death.

Within one process the lock is re-entrant: taking it again only counts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import socket
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Iterator

from .errors import DeploymentInUse
from .paths import deployment_dir
from .processes import pid_alive, start_time

TOKEN_ENV = "RUNBOOK_LOCK_TOKEN"
LOCK_FILE = "deployment.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a deployment: what runs (``runbook run ...``, ``notebook 02_deploy``), where, since when."""

    deployment: str
    command: str
    pid: int
    host: str
    since: str  # ISO 8601, UTC
    token: str = ""
    pid_start: str | None = None  # the pid's start time: with the pid, the process's identity

    def describe(self) -> str:
        """``runbook run (pid 123 on host, since 2026-12-07T01:02:03Z)``."""
        return f"{self.command} (pid {self.pid} on {self.host}, since {self.since})"

    def alive(self) -> bool:
        """True while the holder's process exists (a pid reused since counts as gone)."""
        if self.host != socket.gethostname():
            return True  # another host's process (a shared state folder): this one cannot tell
        if not pid_alive(self.pid):
            return False
        return self.pid_start is None or start_time(self.pid) == self.pid_start


@dataclass
class Lease:
    """This process's hold on one deployment."""

    holder: Holder
    took_over: Holder | None = None  # a killed run's holder found in the file when the lock was taken
    under_runner: bool = False  # a notebook of ``runbook run``: the runner holds the lock

    def note(self) -> str | None:
        """What a user should know about how the lock was taken (a killed run's lock taken over)."""
        if self.took_over is None:
            return None
        return (f"deployment {self.holder.deployment!r} was left locked by {self.took_over.describe()}, "
                "which is no longer running (killed?): lock taken over")


@dataclass
class _Held:
    handle: IO[str]
    lease: Lease
    depth: int = 1


_held: dict[str, _Held] = {}
_mutex = threading.RLock()


def lock_path(deployment: str) -> Path:
    """The deployment's lock file."""
    return deployment_dir(deployment) / LOCK_FILE


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _read(handle: IO[str]) -> Holder | None:
    handle.seek(0)
    text = handle.read().strip()
    if not text:
        return None
    try:
        data = json.loads(text)
        return Holder(**{k: data[k] for k in Holder.__dataclass_fields__ if k in data})
    except (ValueError, TypeError, KeyError):
        return None


def holder(deployment: str) -> Holder | None:
    """Who holds ``deployment`` now; None when it is free (or only a killed run's record is left)."""
    path = deployment_dir(deployment, create=False) / LOCK_FILE
    if not path.exists():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(handle)
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def _refusal(deployment: str, found: Holder | None) -> DeploymentInUse:
    who = found.describe() if found else "another process"
    return DeploymentInUse(deployment, found,
                           f"deployment {deployment!r} is in use by {who}: wait for it to finish, or stop it "
                           "(a notebook holds it until its last cell; stop its kernel to free it)")


def acquire(deployment: str, command: str) -> Lease:
    """Take ``deployment`` for this process, or raise :class:`DeploymentInUse` at once.

    Re-entrant: a process that holds it already only counts one more :func:`release`. Under
    ``runbook run`` (its token in ``RUNBOOK_LOCK_TOKEN``) a notebook runs under the runner's lock.
    """
    with _mutex:
        held = _held.get(deployment)
        if held is not None:
            held.depth += 1
            return held.lease
        handle = open(lock_path(deployment), "a+")  # not inherited by child processes (PEP 446)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            found = _read(handle)
            handle.close()
            token = os.environ.get(TOKEN_ENV, "")
            if found is not None and found.token and token == found.token:
                return Lease(found, under_runner=True)
            raise _refusal(deployment, found) from None
        left = _read(handle)  # a holder that ended normally leaves the file empty
        me = Holder(deployment, command, os.getpid(), socket.gethostname(), _now(), secrets.token_hex(16),
                    start_time(os.getpid()))
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(asdict(me)))
        handle.flush()
        lease = Lease(me, took_over=left)
        _held[deployment] = _Held(handle, lease)
        return lease


def release(deployment: str, all_holds: bool = False) -> bool:
    """Give back one hold of ``deployment`` (every hold with ``all_holds``); the last one empties
    the file and unlocks it. Returns True when the deployment is free of this process."""
    with _mutex:
        held = _held.get(deployment)
        if held is None:
            return True
        held.depth = 0 if all_holds else held.depth - 1
        if held.depth > 0:
            return False
        del _held[deployment]
        try:
            held.handle.seek(0)
            held.handle.truncate()
            held.handle.flush()
        finally:
            fcntl.flock(held.handle, fcntl.LOCK_UN)
            held.handle.close()
        return True


def held_here(deployment: str) -> bool:
    """True while this process holds ``deployment``."""
    return deployment in _held


@contextlib.contextmanager
def hold(deployment: str, command: str) -> Iterator[Lease]:
    """Hold ``deployment`` for a block, with ``RUNBOOK_LOCK_TOKEN`` exported so child processes
    (the kernels of ``runbook run``) run under this lock."""
    lease = acquire(deployment, command)
    saved = os.environ.get(TOKEN_ENV)
    if not lease.under_runner:
        os.environ[TOKEN_ENV] = lease.holder.token
    try:
        yield lease
    finally:
        if not lease.under_runner:
            if saved is None:
                os.environ.pop(TOKEN_ENV, None)
            else:
                os.environ[TOKEN_ENV] = saved
        release(deployment)


# -- notebooks ------------------------------------------------------------------------------


def notebook_command() -> str:
    """How this kernel's notebook is named in a refusal: ``notebook 02_deploy (JupyterLab)``,
    ``papermill 02_deploy.ipynb``, or ``a notebook kernel``."""
    session = os.environ.get("JPY_SESSION_NAME")  # set by jupyter_server for the kernels it starts
    if session:
        return f"notebook {Path(session).stem} (JupyterLab)"
    from .notebook.injection import papermill_input_path

    source = papermill_input_path()
    return f"papermill {Path(source).name}" if source else "a notebook kernel"


def enter_notebook(deployment: str) -> Lease:
    """A notebook's validation cell takes ``deployment`` until the notebook ends: its last cell
    (:func:`leave_notebook`), a failing cell, or its kernel's death. Taking it again in the same
    kernel (Run All) is no second hold."""
    with _mutex:
        if held_here(deployment):
            return _held[deployment].lease
        lease = acquire(deployment, notebook_command())
    if not lease.under_runner:
        _release_on_error(deployment)
    return lease


def leave_notebook(deployment: str) -> None:
    """The notebook ended: free ``deployment`` (nothing when the runner holds it)."""
    release(deployment, all_holds=True)


_hooked: set[str] = set()


def _release_on_error(deployment: str) -> None:
    """A cell that fails ends the notebook's run: free the deployment then (IPython only)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - the product depends on IPython
        return
    shell = get_ipython()
    if shell is None or deployment in _hooked:
        return

    def after_cell(result) -> None:
        if result.error_before_exec is not None or result.error_in_exec is not None:
            release(deployment, all_holds=True)

    _hooked.add(deployment)
    shell.events.register("post_run_cell", after_cell)

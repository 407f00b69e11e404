"""Container processes: started in their own session and process group (so the whole
tree can be signalled), killed with the parent if the emulator dies (PR_SET_PDEATHSIG),
and marked with environment variables so a restarted emulator can find and stop
leftovers of a previous run that was killed hard. No orphan processes, ever."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

CLUSTER_MARKER = "RUNBOOK_SANDBOX_CLUSTER"
POD_MARKER = "RUNBOOK_SANDBOX_POD_UID"
_PR_SET_PDEATHSIG = 1

try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
    _PRCTL = _LIBC.prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


def child_setup(niceness: int = 0) -> None:
    """Runs in the child between fork and exec: die with the emulator; lower its CPU priority by
    ``niceness``."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if niceness:
        os.nice(niceness)


SETPRIV, NICE = shutil.which("setpriv"), shutil.which("nice")  # util-linux, coreutils


def _setup_argv(argv: list[str], niceness: int) -> list[str]:
    """``argv`` behind ``setpriv --pdeathsig KILL`` (and ``nice``): what :func:`child_setup` does, done
    by programs the child execs, so that Python starts it with vfork instead of forking the whole
    emulator (tens of milliseconds each, the event loop blocked, for a crowd of pods starting)."""
    return [SETPRIV, "--pdeathsig", "KILL", "--", *([NICE, "-n", str(niceness)] if niceness else []), *argv]


class ContainerProcess:
    """A container's main process, started off the event loop (:func:`spawn`): its ``pid``, its
    ``returncode`` (None while it runs) and ``await wait()``, as :class:`asyncio.subprocess.Process`
    has them. The loop learns of the exit from a pidfd (Linux 5.3+), so no thread waits per process."""

    def __init__(self, popen: subprocess.Popen, loop: asyncio.AbstractEventLoop):
        self._popen = popen
        self.pid = popen.pid
        self._loop = loop
        self._exited: asyncio.Future[int] = loop.create_future()
        self._pidfd = os.pidfd_open(self.pid)
        loop.add_reader(self._pidfd, self._reap)

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def _reap(self) -> None:
        if self._popen.poll() is None:
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        if not self._exited.done():
            self._exited.set_result(self._popen.returncode)

    async def wait(self) -> int:
        """The exit code (negative: the signal that ended it), once the process is reaped."""
        return await asyncio.shield(self._exited)


async def spawn(argv: list[str], env: dict[str, str], cwd: Path, log_path: Path,
                niceness: int = 0) -> ContainerProcess:
    """Start a container process writing stdout and stderr to ``log_path``, ``niceness`` below the
    emulator's CPU priority; it dies with the emulator.

    The process is created in a worker thread: a crowd of pods starting at once otherwise held
    the event loop in fork/exec for seconds at a time (up to 11 s measured with 100 user servers),
    and with it every API request, watch and kube-proxy connection."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    wrap = SETPRIV is not None and NICE is not None
    setup = {} if wrap else {"preexec_fn": functools.partial(child_setup, niceness)}
    command = _setup_argv(argv, niceness) if wrap else argv
    with open(log_path, "ab") as output:
        popen = await asyncio.to_thread(
            subprocess.Popen, command, env=env, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True, **setup)
    return ContainerProcess(popen, asyncio.get_running_loop())


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def terminate(process: ContainerProcess | asyncio.subprocess.Process, grace: float) -> int | None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds, and reap it."""
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=max(grace, 0.1))
        except asyncio.TimeoutError:
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()
    _signal_group(process.pid, signal.SIGKILL)  # anything the process left behind in its group
    return process.returncode


def kill_leftovers(cluster_marker: str) -> int:
    """SIGKILL process groups a previous run of this emulator left behind. Returns how many."""
    killed = 0
    needle = f"{CLUSTER_MARKER}={cluster_marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pid = int(entry.name)
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    if killed:
        log.warning("kubelet: killed %d leftover process group(s) of a previous run", killed)
    return killed


def _tty_child_setup() -> None:
    """Like ``child_setup``, and make the terminal on stdin the session's controlling one."""
    import fcntl
    import termios
    child_setup()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def spawn_exec(argv: list[str], env: dict[str, str], cwd: Path, stdin, stdout, stderr,
                     tty: bool = False, controlling_tty: bool = True) -> asyncio.subprocess.Process:
    """Start a process in a container's environment (``kubectl exec``), in its own session and
    process group like the container's, killed with the emulator; with ``tty`` the stdio
    handles are a PTY's slave side, which becomes the controlling terminal here (or, with
    ``controlling_tty=False``, where the command itself takes it: inside the namespaces)."""
    return await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=str(cwd), stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True,
        preexec_fn=_tty_child_setup if tty and controlling_tty else child_setup)


def signal_group(pid: int, sig: int) -> None:
    """Signal a process group started by this module (gone already: nothing to do)."""
    _signal_group(pid, sig)

"""``pods/<name>/exec`` over a WebSocket (``v5.channel.k8s.io``, or ``v4``; see ``channels``).

The command runs as the kubelet runs the container's own process: its environment
(container env, service-account and JupyterHub variables, the sandbox markers), its
working folder inside the pod's root folder, in a process group of its own that dies with
the emulator. ``tty=true`` runs it on a PTY (resize messages set the window size).
The command ends when it exits, when the client goes away, or when the container stops.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import shutil
import struct
import termios
from pathlib import Path

from aiohttp import WSMsgType, web

from ..controllers.kubelet import isolation, processes
from . import channels
from .sockets import MessageSender

log = logging.getLogger(__name__)

CHUNK = 32 * 1024
KILL_GRACE = 1.0
DRAIN_TIMEOUT = 1.0


def find_executable(name: str, env: dict[str, str]) -> str | None:
    """The local file for ``name`` on the container's PATH (an absolute path in the image that
    is not here falls back to its file name on that PATH, as the kubelet resolves commands)."""
    path = env.get("PATH")
    if "/" in name:
        if os.access(name, os.X_OK) and not os.path.isdir(name):
            return name
        name = Path(name).name
    return shutil.which(name, path=path)


TIOCSPTLCK, TIOCGPTPEER = 0x40045431, 0x5441


def _container_pty(pid: int) -> tuple[int, int]:
    """A terminal of the container's own ``/dev/pts`` (so ``tty`` there names it): master, slave."""
    master = os.open(f"/proc/{pid}/root/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        os.close(master)
        raise
    return master, slave


class ExecSession:
    """One ``kubectl exec``: the process, its stdio on channels, the exit status at the end."""

    def __init__(self, ws: web.WebSocketResponse, context, command: list[str], stdin: bool, stdout: bool,
                 stderr: bool, tty: bool):
        self.ws = ws
        self.context = context
        self.command = command
        self.want = {"stdin": stdin, "stdout": stdout, "stderr": stderr and not tty}
        self.tty = tty
        self.v5 = ws.ws_protocol == channels.V5
        self.process: asyncio.subprocess.Process | None = None
        self.master: int | None = None
        self.send = MessageSender(ws).send  # one channel message at a time, dropped once the client is gone

    async def run(self, closing: asyncio.Event) -> None:
        """Run the command to its end and report its exit status."""
        executable = find_executable(self.command[0], self.context.env)
        if executable is None:
            await self.send(channels.status_message(channels.failure_status(
                "Internal error occurred: error executing command in container: failed to exec in container: "
                f'exec: "{self.command[0]}": executable file not found in $PATH')))
            return
        try:
            await self._spawn([executable, *self.command[1:]])
        except OSError as exc:
            await self.send(channels.status_message(channels.failure_status(
                f"Internal error occurred: error executing command in container: {exc}")))
            return
        loop = asyncio.get_running_loop()
        outputs = self._output_tasks()
        inputs = loop.create_task(self._read_client())
        exited = loop.create_task(self.process.wait())
        stoppers = [inputs, loop.create_task(closing.wait()), loop.create_task(self.context.process.wait())]
        try:
            done, _ = await asyncio.wait([exited, *stoppers], return_when=asyncio.FIRST_COMPLETED)
            if exited not in done:  # the client left, the server stops, or the container stopped
                await processes.terminate(self.process, KILL_GRACE)
            code = await exited
            if outputs:
                await asyncio.wait(outputs, timeout=DRAIN_TIMEOUT)
            if code < 0:
                code = 128 - code  # killed by a signal, as a shell reports it
            await self.send(channels.status_message(channels.exit_status(code, self.command)))
        finally:
            for task in [*outputs, *stoppers]:
                task.cancel()
            if self.process.returncode is None:
                await processes.terminate(self.process, 0)
            else:
                processes.signal_group(self.process.pid, 9)  # whatever it left running in its group
            if self.master is not None:
                loop.remove_reader(self.master)
                os.close(self.master)
                self.master = None

    async def _spawn(self, argv: list[str]) -> None:
        env, cwd = self.context.env, self.context.cwd
        plan = self.context.plan
        if plan is not None:  # join the container's namespaces, then become its user there
            pid = isolation.init_pid(self.context.process.pid)
            if pid is None:
                raise OSError("the container's process is gone")
            argv = isolation.enter_argv(pid, argv)
            env = {**env, isolation.PLAN_VARIABLE: plan.to_json(), isolation.TTY_VARIABLE: "1" if self.tty else "0"}
            cwd = Path("/")
        if self.tty:
            self.master, slave = _container_pty(pid) if plan is not None else os.openpty()
            env = {**env, "TERM": env.get("TERM", "xterm")}
            try:
                self.process = await processes.spawn_exec(argv, env, cwd, slave, slave, slave, tty=True,
                                                          controlling_tty=plan is None)
            finally:
                os.close(slave)
            os.set_blocking(self.master, False)
            return
        pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        self.process = await processes.spawn_exec(
            argv, env, cwd, pipe if self.want["stdin"] else null, pipe if self.want["stdout"] else null,
            pipe if self.want["stderr"] else null)

    def _output_tasks(self) -> list[asyncio.Task]:
        loop = asyncio.get_running_loop()
        if self.tty:
            return [loop.create_task(self._pump_pty())]
        tasks = []
        if self.want["stdout"]:
            tasks.append(loop.create_task(self._pump(self.process.stdout, channels.STDOUT)))
        if self.want["stderr"]:
            tasks.append(loop.create_task(self._pump(self.process.stderr, channels.STDERR)))
        return tasks

    async def _pump(self, stream: asyncio.StreamReader, channel: int) -> None:
        while True:
            chunk = await stream.read(CHUNK)
            if not chunk:
                return
            await self.send(channels.encode(channel, chunk))

    async def _pump_pty(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def readable() -> None:
            try:
                chunk = os.read(self.master, CHUNK)
            except BlockingIOError:
                return
            except OSError:  # EIO: every holder of the terminal's other side is gone
                chunk = b""
            if not chunk:
                loop.remove_reader(self.master)
            queue.put_nowait(chunk)
        loop.add_reader(self.master, readable)
        while True:
            chunk = await queue.get()
            if not chunk:
                return
            await self.send(channels.encode(channels.STDOUT, chunk))

    async def _read_client(self) -> None:
        """Client messages until the client closes the connection."""
        async for message in self.ws:
            if message.type != WSMsgType.BINARY or not message.data:
                continue
            try:
                channel, data = channels.decode(message.data)
                if channel == channels.STDIN:
                    await self._write_stdin(data)
                elif channel == channels.RESIZE and self.master is not None:
                    width, height = channels.parse_resize(data)
                    fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
                elif self.v5 and channels.closed_channel(channel, data) == channels.STDIN:
                    self._close_stdin()
            except channels.ProtocolError as exc:
                log.debug("exec: %s", exc)
            except OSError:
                pass  # the process is gone: its stdin with it

    async def _write_stdin(self, data: bytes) -> None:
        if self.master is not None:
            os.write(self.master, data)
        elif self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.write(data)
            await self.process.stdin.drain()

    def _close_stdin(self) -> None:
        if self.master is not None:
            os.write(self.master, b"\x04")  # end of input for the program reading the terminal
        elif self.process.stdin is not None:
            self.process.stdin.close()


async def serve(request: web.Request, context, command: list[str], stdin: bool, stdout: bool, stderr: bool,
                tty: bool, closing: asyncio.Event) -> web.WebSocketResponse:
    """Upgrade ``request`` and run ``command`` in the container described by ``context``."""
    ws = web.WebSocketResponse(protocols=channels.PROTOCOLS, autoping=True, max_msg_size=0)
    await ws.prepare(request)
    try:
        await ExecSession(ws, context, command, stdin, stdout, stderr, tty).run(closing)
    except Exception:  # the upgrade is done: an error can only be logged, not answered
        log.exception("exec %s failed", command)
    finally:
        await ws.close()
    return ws

"""Container processes (kubelet/processes.py): started off the event loop, their exit seen through a pidfd."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading

from eks_hub_sandbox.kube.controllers.kubelet import processes


def test_a_container_process_is_created_off_the_loop_and_its_exit_code_awaited(tmp_path, monkeypatch):
    created_on: list[int] = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        created_on.append(threading.get_ident())
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(processes.subprocess, "Popen", recording_popen)

    async def main():
        code = "import os, sys; print(os.getpgid(0) == os.getpid()); sys.exit(3)"
        exits = await processes.spawn([sys.executable, "-c", code], {}, tmp_path, tmp_path / "log" / "a.log")
        sleeps = await processes.spawn(["sleep", "30"], {}, tmp_path, tmp_path / "log" / "b.log")
        assert sleeps.returncode is None
        waited = await asyncio.wait_for(exits.wait(), 10)
        returned = await processes.terminate(sleeps, grace=5)
        return threading.get_ident(), exits, waited, sleeps, returned

    loop_thread, exits, waited, sleeps, returned = asyncio.run(main())
    assert len(created_on) == 2 and loop_thread not in created_on
    assert waited == exits.returncode == 3
    assert returned == sleeps.returncode == -signal.SIGTERM
    assert (tmp_path / "log" / "a.log").read_text() == "True\n"  # its own session and process group

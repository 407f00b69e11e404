"""The notebook-overhead breakdown (benchmarks/notebooks.py): the in-process probe of papermill's CLI
and how its timers become the parts item 3 reports. Structure only: timings are never asserted."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

from benchmarks import notebooks
from benchmarks.harness import REPO_ROOT

TINY = REPO_ROOT / "tests" / "fixtures" / "benchmarks" / "tiny.ipynb"


def test_timers_time_functions_coroutines_and_blocks():
    class Owner:
        def work(self, x):
            time.sleep(0.01)
            return x * 2

        async def later(self, x):
            await asyncio.sleep(0.01)
            return x + 1

    timers = notebooks.Timers()
    timers.wrap(Owner, "work", "work")
    timers.wrap(Owner, "later", "later")
    owner = Owner()
    assert owner.work(2) == 4 and owner.work(3) == 6
    assert asyncio.run(owner.later(1)) == 2
    with timers.timed("block"):
        time.sleep(0.01)
    assert timers.calls == {"work": 2, "later": 1, "block": 1}
    assert all(seconds >= 0.009 for seconds in timers.seconds.values())
    assert len(timers.spans["work"]) == 2 and all(end >= start for start, end in timers.spans["work"])


def _startup_hook_installed() -> bool:
    from eks_hub_runbook import lazyimports

    return lazyimports.startup_hook_path().exists() and not os.environ.get(lazyimports.EAGER_IMPORTS)


def test_papermill_probe_splits_a_real_run(tmp_path):
    probe_file, output = tmp_path / "probe.json", tmp_path / "out.ipynb"
    spawned = time.time()
    done = subprocess.run([sys.executable, "-m", "benchmarks.notebooks", "probe", "papermill", str(probe_file),
                           str(TINY), str(output), "-y", json.dumps({"n": 3}), "--no-progress-bar"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    exited = time.time()
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(probe_file.read_text())
    # as papermill's own CLI: the library is in the process only through the venv's startup hook
    assert data["library_in_process"] is _startup_hook_installed()
    assert data["calls"]["kernel spawn"] == 1 and data["calls"]["kernel ready"] == 1
    assert data["calls"]["kernel shutdown"] == 1 and data["calls"]["read"] == 1
    assert data["calls"]["saves"] >= 2 * 3  # at least each code cell's start and end
    assert data["cpu_self_s"] > 0 and data["cpu_children_s"] > 0  # the kernel was reaped: its CPU counts

    parts = notebooks.breakdown(probe_file, output, spawned, exited)
    assert all(value >= 0 for value in parts.values())
    assert parts["kernel start: until it answers (ipykernel, IPython, extension)"] > 0
    assert parts["kernel shutdown"] > 0
    saves = next(key for key in parts if key.startswith("notebook saves"))
    assert saves.startswith(f"notebook saves ({data['calls']['saves']};")
    timed = sum(v for k, v in parts.items() if not k.startswith("CPU"))
    assert timed <= (exited - spawned) + 0.5  # the parts do not overlap


def test_runbook_breakdown_lists_the_runner_parts(tmp_path):
    now = time.time()
    probe_file = tmp_path / "probe.json"
    probe_file.write_text(json.dumps({
        "way": "runbook", "started_at": now, "ended_at": now + 10, "cpu_self_s": 1.5, "cpu_children_s": 2.0,
        "library_in_process": True, "error": "",
        "seconds": {"import": 0.5, "notebook (papermill)": 7.0, "kernel ready": 0.6, "kernel shutdown": 0.4,
                    "saves": 0.3, "HTML report": 1.0, "scrub": 0.1, "summary": 0.05, "run.json saves": 0.06},
        "calls": {"saves": 10, "run.json saves": 6}, "spans": {"saves": []}}))
    parts = notebooks.breakdown(probe_file, tmp_path / "missing.ipynb", now - 0.2, now + 10.3)
    assert parts["runner: HTML report"] == 1.0
    assert parts["runner: run.json saves (6)"] == 0.06
    assert parts["runner: record (summary, scrub + copy, scraps, log)"] == 0.15
    assert parts["process start (interpreter, site)"] == 0.2 and parts["process exit (interpreter teardown)"] == 0.3
    assert parts["CPU: this process"] == 1.5

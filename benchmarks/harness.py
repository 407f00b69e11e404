"""What every benchmark needs: a private sandbox, timers, machine-load sampling, result rows.

The benchmarks run with their own ``RUNBOOK_STATE_DIR`` and ``RUNBOOK_OUTPUTS_DIR`` (temporary
folders), so they never touch a developer's sandbox, Terraform state or ``outputs/``; the
sandbox they start is always stopped again (``runbook sandbox down`` on that state folder).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from eks_hub_runbook import environment

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# The emulator's waits are read from these variables by the kube service when it starts;
# the benchmarks use its defaults (the walkthrough's), and say so in the results.
EMULATOR_DELAYS = {"RUNBOOK_SANDBOX_NODE_DELAY": 5.0, "RUNBOOK_SANDBOX_PULL_DELAY": 3.0}


@dataclass
class Row:
    """One line of the results table: our way vs the bare tool, side by side."""

    item: str
    measure: str
    ours_s: float | None
    bare_s: float | None = None
    ours_label: str = ""
    bare_label: str = ""
    note: str = ""
    unit: str = "s"  # how both values are shown: s, ms, events/s, pods/s

    @property
    def ratio(self) -> float | None:
        if self.ours_s is None or not self.bare_s:
            return None
        return self.ours_s / self.bare_s

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        for key in ("ours_s", "bare_s"):
            if data[key] is not None:
                data[key] = round(data[key], 3)  # in ``unit`` (seconds unless said otherwise)
        return data


@dataclass
class Item:
    """One numbered benchmark: its rows, detail tables and notes (what dominates, what is ours)."""

    number: int
    title: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def row(self, measure: str, ours: float | None, bare: float | None = None, **kwargs: str) -> Row:
        row = Row(f"{self.number}", measure, ours, bare, **kwargs)
        self.rows.append(row)
        return row

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "title": self.title, "rows": [r.as_dict() for r in self.rows],
                "details": self.details, "notes": self.notes, "load": self.load, "error": self.error}


# --- timing and load ------------------------------------------------------------------------


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (monotonic wall time)."""

    def __enter__(self) -> "Stopwatch":
        self.started = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.started


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


class LoadSampler:
    """Samples the machine's load while a benchmark runs: 1-min load average and CPU busy %.

    Other engineers' tests run on the same two cores, so every item carries the load it
    was measured under.
    """

    def __init__(self, interval: float = 2.0):
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu_start = (0.0, 0.0)

    def __enter__(self) -> "LoadSampler":
        self._cpu_start = _cpu_times()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(os.getloadavg()[0])

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        busy0, total0 = self._cpu_start
        busy1, total1 = _cpu_times()
        self.cpu_busy = 100.0 * (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0

    def summary(self) -> dict[str, float]:
        samples = self.samples or [os.getloadavg()[0]]
        return {"load1_mean": round(sum(samples) / len(samples), 2), "load1_max": round(max(samples), 2),
                "cpu_busy_pct": round(getattr(self, "cpu_busy", 0.0), 1), "cores": os.cpu_count() or 0}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import platform

    versions = {}
    for tool, argv in (("terraform", ["terraform", "version"]), ("kubectl", ["kubectl", "version", "--client"])):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
            versions[tool] = out.splitlines()[0].strip() if out else "?"
        except (OSError, subprocess.SubprocessError):
            versions[tool] = "not found"
    return {"host": platform.node(), "python": platform.python_version(), "cores": os.cpu_count(),
            "load_at_start": [round(x, 2) for x in os.getloadavg()], **versions,
            "emulator_delays": {k: float(os.environ.get(k, v)) for k, v in EMULATOR_DELAYS.items()}}


# --- the private sandbox ------------------------------------------------------------------------


@contextlib.contextmanager
def private_environment(keep: bool = False) -> Iterator[dict[str, Path]]:
    """Point this process (and everything it starts) at temporary state and outputs folders.

    Restores the environment afterwards; removes the folders unless ``keep``.
    """
    root = Path(tempfile.mkdtemp(prefix="runbook-bench-"))
    folders = {"root": root, "state": root / "state", "outputs": root / "outputs", "work": root / "work"}
    for path in folders.values():
        path.mkdir(parents=True, exist_ok=True)
    wanted = {"RUNBOOK_STATE_DIR": str(folders["state"]), "RUNBOOK_OUTPUTS_DIR": str(folders["outputs"]),
              **{k: os.environ.get(k, str(v)) for k, v in EMULATOR_DELAYS.items()}}
    try:
        with environment.exported(wanted):
            yield folders
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def running_sandbox() -> Iterator[None]:
    """The core sandbox services of the private state folder; everything stopped afterwards."""
    import eks_hub_sandbox as sandbox

    try:
        sandbox.up()
        sandbox.apply_environment()
        yield
    finally:
        sandbox.down()
        leftovers = own_processes()
        if leftovers:
            print(f"warning: processes still running under the benchmark state folder: {leftovers}", file=sys.stderr)


def own_processes() -> list[int]:
    """Pids whose command line mentions this run's private state folder (should be none at the end)."""
    state = os.environ.get("RUNBOOK_STATE_DIR", "")
    found = []
    if not state:
        return found
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state in cmdline:
            found.append(int(entry))
    return found


def run_process(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT,
                timeout: float = 900.0) -> tuple[int, float]:
    """Run a command with its output in ``log``; returns (exit code, wall seconds)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out, Stopwatch() as sw:
        process = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)
    return process.returncode, sw.seconds


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""

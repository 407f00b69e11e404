"""Notebook overhead: one runbook notebook three ways, same parameters, same library calls.

- ``plain``: the notebook's code cells run in order in a plain Python process
  (``python -m benchmarks.notebooks run ...``), with the parameters injected after the
  parameters cell as papermill does; a cell's trailing expression is printed, as a
  console would show it. Each cell is timed.
- ``papermill``: the papermill CLI on the same notebook (kernel start, per-cell
  notebook saves, output capture, kernel shutdown).
- ``runbook run``: the project's runner (papermill + live view + scrub + run.json).

The split of the papermill side comes from its own metadata: process start to the
notebook's ``start_time`` (imports, reading, parameterising), ``start_time`` to the first
cell (kernel start), the cells themselves, the gaps between cells (bookkeeping), and the
last cell to process exit (kernel shutdown, final save).

The breakdown (``probe``, ``breakdown``) runs papermill's CLI and ``runbook run`` once more
each in a process of their own with timers around their parts (the same code, wrapped, not
changed): imports, kernel spawn and readiness, the cells, each notebook save and its nbformat
validation, the engine's bookkeeping between cells, kernel shutdown, the final write, process
exit; for ``runbook run`` also its validation, versions, ``run.json`` saves, the record (scrub,
summary, scraps, log) and the HTML report; and the CPU seconds of the process and of the kernel.
The papermill probe's process never imports ``eks_hub_runbook`` (papermill's CLI does not).
"""

from __future__ import annotations

import ast
import json
import sys
import time
from pathlib import Path
from typing import Any

# as in .harness, which is imported only where a process is started: the probe's papermill process
# must not import eks_hub_runbook (harness does), which would change what papermill's CLI imports
REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUNBOOKS = REPO_ROOT / "runbooks"


def run_process(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT,
                timeout: float = 900.0) -> tuple[int, float]:
    """:func:`.harness.run_process` (imported on first use)."""
    from .harness import run_process as run

    return run(argv, log, env=env, cwd=cwd, timeout=timeout)


# --- the plain side -----------------------------------------------------------------------------


def code_cells(notebook: Path, parameters: dict[str, Any]) -> list[str]:
    """The notebook's code cells, with an injected-parameters cell after the ``parameters`` cell."""
    nb = json.loads(Path(notebook).read_text())
    cells = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        cells.append("".join(source) if isinstance(source, list) else source)
        if "parameters" in cell.get("metadata", {}).get("tags", []) and parameters:
            cells.append("\n".join(f"{name} = {value!r}" for name, value in parameters.items()))
    return cells


def run_cells(cells: list[str], timings_file: Path) -> int:
    """Execute cells in one namespace, timing each; write the timings as JSON. Exit code 0/1."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    timings: list[dict[str, Any]] = []
    code = 0
    for index, source in enumerate(cells):
        started = time.perf_counter()
        try:
            tree = ast.parse(source)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, f"<cell {index}>", "exec"), namespace)
            if last is not None:
                value = eval(compile(ast.Expression(last.value), f"<cell {index}>", "eval"), namespace)
                if value is not None:
                    print(repr(value))
        except BaseException as exc:  # a failing cell ends the run, as in a notebook
            timings.append({"index": index, "seconds": time.perf_counter() - started, "first_line": _first(source),
                            "error": f"{type(exc).__name__}: {exc}"[:500]})
            code = 1
            break
        timings.append({"index": index, "seconds": time.perf_counter() - started, "first_line": _first(source)})
    Path(timings_file).write_text(json.dumps(timings, indent=1))
    return code


def _first(source: str) -> str:
    return next((line for line in source.splitlines() if line.strip() and not line.startswith("#")), "")[:80]


# --- the three ways -----------------------------------------------------------------------------


def _seconds(meta: dict[str, Any], start: str = "start_time", end: str = "end_time") -> float | None:
    from .tfevents import parse_timestamp

    if not meta.get(start) or not meta.get(end):
        return None
    return parse_timestamp(meta[end]) - parse_timestamp(meta[start])


def papermill_split(output: Path, process_start: float, process_end: float) -> dict[str, float]:
    """Where a papermill process's time went, from the executed notebook's metadata (seconds)."""
    from .tfevents import parse_timestamp

    nb = json.loads(Path(output).read_text())
    meta = nb.get("metadata", {}).get("papermill", {})
    cells = [c.get("metadata", {}).get("papermill", {}) for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    cells = [c for c in cells if c.get("start_time") and c.get("end_time")]
    if not meta.get("start_time") or not cells:
        return {}
    nb_start = parse_timestamp(meta["start_time"])
    first = parse_timestamp(cells[0]["start_time"])
    last = parse_timestamp(cells[-1]["end_time"])
    in_cells = sum(parse_timestamp(c["end_time"]) - parse_timestamp(c["start_time"]) for c in cells)
    return {
        "process start to notebook start (imports, read, parameterise)": nb_start - process_start,
        "kernel start (to the first cell)": first - nb_start,
        "cells": in_cells,
        "between cells (per-cell saves, message handling)": (last - first) - in_cells,
        "after the last cell (kernel shutdown, final save, exit)": process_end - last,
    }


def kernel_cells(output: Path) -> list[float]:
    """Seconds of each executed code cell of a papermill output notebook, in order."""
    if not Path(output).exists():
        return []
    nb = json.loads(Path(output).read_text())
    return [_seconds(c.get("metadata", {}).get("papermill", {})) or 0.0
            for c in nb.get("cells", []) if c.get("cell_type") == "code"]


def measure(notebook: str, parameters: dict[str, Any], work: Path, runbook: bool = True,
            breakdowns: bool = True) -> dict[str, Any]:
    """Run one notebook plain, with papermill, and (optionally) with ``runbook run``; timings and splits.

    With ``breakdowns``, papermill and ``runbook run`` once more each under :func:`probe`: where their
    time goes (imports, kernel start and shutdown, saves, bookkeeping, records, report, CPU), in
    ``result[way]["breakdown"]`` and, for the report, in the papermill split."""
    path = RUNBOOKS / f"{notebook}.ipynb"
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"notebook": notebook, "parameters": parameters}

    cells_file = work / f"{notebook}.cells.json"
    cells_file.write_text(json.dumps(code_cells(path, parameters)))
    timings_file = work / f"{notebook}.plain-timings.json"
    code, seconds = run_process([sys.executable, "-m", "benchmarks.notebooks", "run", str(cells_file), str(timings_file)],
                                work / f"{notebook}.plain.log", cwd=RUNBOOKS, env={"PYTHONPATH": str(REPO_ROOT)})
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else []
    result["plain"] = {"seconds": seconds, "ok": code == 0, "cells_s": sum(t["seconds"] for t in timings),
                       "cells": timings, "log": str(work / f"{notebook}.plain.log")}

    output = work / f"{notebook}.papermill.ipynb"
    argv = [str(BIN / "papermill"), str(path), str(output), "--cwd", str(RUNBOOKS), "--no-progress-bar"]
    if parameters:
        argv += ["-y", json.dumps(parameters)]
    started = time.time()
    code, seconds = run_process(argv, work / f"{notebook}.papermill.log")
    split = papermill_split(output, started, started + seconds) if output.exists() else {}
    result["papermill"] = {"seconds": seconds, "ok": code == 0, "split": split, "cells": kernel_cells(output),
                           "log": str(work / f"{notebook}.papermill.log")}

    if runbook:
        argv = [str(BIN / "runbook"), "run", notebook, "--no-report"]
        for name, value in parameters.items():
            argv += ["-r" if isinstance(value, str) else "-p", name, value if isinstance(value, str) else json.dumps(value)]
        code, seconds = run_process(argv, work / f"{notebook}.runbook.log")
        record = latest_run_json()
        entry = next((n for n in (record or {}).get("notebooks", []) if n.get("name") == notebook), {})
        result["runbook"] = {"seconds": seconds, "ok": code == 0, "notebook_s": entry.get("duration_s"),
                             "run_s": (record or {}).get("duration_s"), "log": str(work / f"{notebook}.runbook.log")}

    if breakdowns:
        # one more run each, instrumented in-process (the same code paths), for where the time goes;
        # shown by item 3 in the "papermill's time" table, after the parts of the uninstrumented run
        ways = ("papermill", "runbook") if runbook else ("papermill",)
        for way in ways:
            probed = measure_breakdown(way, notebook, parameters, work / "breakdown")
            result[way]["breakdown"] = probed
            label = "papermill CLI" if way == "papermill" else "runbook run (with its HTML report)"
            result["papermill"]["split"].update(
                {f"{label}, instrumented ({probed['seconds']:.1f} s): {part}": seconds
                 for part, seconds in probed["parts"].items()})
    return result


def latest_run_json() -> dict[str, Any] | None:
    """The newest run.json under the (private) outputs folder."""
    import os

    root = Path(os.environ.get("RUNBOOK_OUTPUTS_DIR") or REPO_ROOT / "outputs")
    runs = sorted(root.glob("*/*/run.json"), key=lambda p: p.parent.name)
    return json.loads(runs[-1].read_text()) if runs else None


# --- the breakdown: papermill and ``runbook run`` in this process, with timers --------------------


class Timers:
    """Seconds spent in wrapped functions, by label: wall time, calls, and each call's span.

    Nested labels count in each (a save's nbformat validation is in ``saves`` too)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.spans: dict[str, list[tuple[float, float]]] = {}

    def _add(self, label: str, started: float, ended: float) -> None:
        self.seconds[label] = self.seconds.get(label, 0.0) + (ended - started)
        self.calls[label] = self.calls.get(label, 0) + 1
        self.spans.setdefault(label, []).append((started, ended))

    def wrap(self, owner: Any, name: str, label: str) -> None:
        """Time every call of ``owner.name`` (a function, a method or a coroutine function) as ``label``."""
        import functools
        import inspect

        original = getattr(owner, name)
        if inspect.iscoroutinefunction(original):
            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.time()
                try:
                    return await original(*args, **kwargs)
                finally:
                    self._add(label, started, time.time())

            setattr(owner, name, timed_async)
            return

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.time()
            try:
                return original(*args, **kwargs)
            finally:
                self._add(label, started, time.time())

        setattr(owner, name, timed)

    def timed(self, label: str):
        """``with timers.timed(label):`` for a block."""
        import contextlib

        @contextlib.contextmanager
        def block():
            started = time.time()
            try:
                yield
            finally:
                self._add(label, started, time.time())

        return block()


PAPERMILL_PARTS = {  # label -> (module, owner attribute path, function)
    "read": ("papermill.execute", "", "load_notebook_node"),
    "parameterise": ("papermill.execute", "", "parameterize_notebook"),
    "saves": ("papermill.engines", "NotebookExecutionManager", "save"),
    "validation": ("nbformat", "", "validate"),
    # the synchronous names papermill calls (nbclient binds them to the coroutines at class creation)
    "kernel spawn": ("nbclient.client", "NotebookClient", "start_new_kernel"),
    "kernel ready": ("nbclient.client", "NotebookClient", "start_new_kernel_client"),
    "kernel shutdown": ("nbclient.client", "NotebookClient", "_cleanup_kernel"),
    "final write": ("papermill.execute", "", "write_ipynb"),
}
RUNBOOK_PARTS = {
    "contracts": ("eks_hub_runbook.notebook.contract", "", "read"),
    "run validation": ("eks_hub_runbook.records.runner", "", "plan_parameters"),
    "run.json saves": ("eks_hub_runbook.records.archive", "Run", "save"),
    "versions": ("eks_hub_runbook.records.versions", "", "collect"),
    "git": ("eks_hub_runbook.records.versions", "", "git_info"),
    "providers": ("eks_hub_runbook.records.versions", "", "provider_versions"),
    "notebook (papermill)": ("papermill", "", "execute_notebook"),
    "summary": ("eks_hub_runbook.records.archive", "", "summarize_notebook"),
    "scrub": ("eks_hub_runbook.records.scrub", "", "archive_notebook"),
    "log": ("eks_hub_runbook.records.scrub", "", "archive_text"),
    "scraps": ("eks_hub_runbook.records.archive", "", "read_scraps"),
    "HTML report": ("eks_hub_runbook.records.report", "", "write_report"),
}


def _wrap_parts(timers: Timers, parts: dict[str, tuple[str, str, str]]) -> None:
    import importlib

    for label, (module, owner, name) in parts.items():
        target: Any = importlib.import_module(module)
        for attribute in filter(None, owner.split(".")):
            target = getattr(target, attribute)
        timers.wrap(target, name, label)


def probe(way: str, argv: list[str], breakdown_file: Path) -> int:
    """Run ``papermill ARGV`` (its CLI's own code) or ``runbook ARGV`` in this process with timers
    around its parts; write them (and this process's and the kernel's CPU seconds) as JSON."""
    import resource

    started, cpu_started = time.time(), time.process_time()
    timers = Timers()
    with timers.timed("import"):
        if way == "papermill":
            from papermill.cli import papermill as command
        else:
            from eks_hub_runbook.cli import app as command
            from eks_hub_runbook.records import report, runner  # noqa: F401  (imported by `runbook run`)
    _wrap_parts(timers, PAPERMILL_PARTS if way == "papermill" else {**PAPERMILL_PARTS, **RUNBOOK_PARTS})
    error = ""
    try:
        code = command.main(args=argv, standalone_mode=False) if way == "papermill" else command(args=argv, standalone_mode=False)
        code = code if isinstance(code, int) else 0
    except Exception as exc:  # noqa: BLE001  (a failing notebook: the timings still count)
        code, error = 1, f"{type(exc).__name__}: {exc}"[:500]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(breakdown_file).write_text(json.dumps({
        # papermill's CLI never imports it itself; the venv's startup hook (lazyimports) does, at start
        "library_in_process": "eks_hub_runbook" in sys.modules,
        "way": way, "started_at": started, "ended_at": time.time(), "cpu_self_s": time.process_time() - cpu_started,
        "cpu_children_s": children.ru_utime + children.ru_stime, "seconds": timers.seconds, "calls": timers.calls,
        "spans": timers.spans, "error": error}, indent=1))
    return code


def breakdown(probe_file: Path, output: Path, spawned_at: float, exited_at: float) -> dict[str, float]:
    """Where an instrumented run's time went (seconds), from the probe's timers and the executed
    notebook's metadata: start-up, imports, kernel start, cells, saves, bookkeeping, shutdown, exit, CPU."""
    from .tfevents import parse_timestamp

    data = json.loads(Path(probe_file).read_text())
    seconds, calls, spans = data["seconds"], data["calls"], data["spans"]
    cells: list[tuple[float, float]] = []
    if Path(output).exists():
        nb = json.loads(Path(output).read_text())
        for cell in nb.get("cells", []):
            meta = cell.get("metadata", {}).get("papermill", {})
            if cell.get("cell_type") == "code" and meta.get("start_time") and meta.get("end_time"):
                cells.append((parse_timestamp(meta["start_time"]), parse_timestamp(meta["end_time"])))
    saves = spans.get("saves", [])
    in_cells = sum(min(e, ce) - max(s, cs) for s, e in saves for cs, ce in cells if s < ce and e > cs)
    cell_s = sum(e - s for s, e in cells)
    window = (cells[-1][1] - cells[0][0]) if cells else 0.0
    saves_between = sum(e - s for s, e in saves if cells and cells[0][0] <= s <= cells[-1][1]) - in_cells
    g = seconds.get
    parts = {
        "process start (interpreter, site)": data["started_at"] - spawned_at,
        "imports (papermill: nbformat, jsonschema, nbclient, its I/O handlers)" if data["way"] == "papermill"
        else "imports (runbook CLI, runner, papermill)": g("import", 0.0),
        "read + parameterise": g("read", 0.0) + g("parameterise", 0.0),
        "kernel start: spawn": g("kernel spawn", 0.0),
        "kernel start: until it answers (ipykernel, IPython, extension)": g("kernel ready", 0.0),
        "cells: execution in the kernel + messages": cell_s - in_cells,
        f"notebook saves ({calls.get('saves', 0)}; nbformat validation {g('validation', 0.0):.2f} s of them)": g("saves", 0.0),
        "between cells, other than saves (engine bookkeeping)": max(window - cell_s - saves_between, 0.0),
        "kernel shutdown": g("kernel shutdown", 0.0),
        "final write": g("final write", 0.0),
    }
    if data["way"] == "runbook":
        notebook = g("notebook (papermill)", 0.0)
        inside = sum(v for k, v in parts.items() if k.startswith(("read", "kernel", "cells", "notebook saves", "between", "final")))
        parts.update({
            "papermill's own (inside execute_notebook, not listed above)": max(notebook - inside, 0.0),
            "runner: contracts + validation of the run": g("contracts", 0.0) + g("run validation", 0.0),
            "runner: versions + git": g("versions", 0.0) + g("git", 0.0) + g("providers", 0.0),
            f"runner: run.json saves ({calls.get('run.json saves', 0)})": g("run.json saves", 0.0),
            "runner: record (summary, scrub + copy, scraps, log)": sum(g(k, 0.0) for k in ("summary", "scrub", "scraps", "log")),
            "runner: HTML report": g("HTML report", 0.0),
        })
        listed = g("import", 0.0) + notebook + sum(v for k, v in parts.items() if k.startswith("runner"))
        parts["runner: other (locks, live view, console)"] = max(data["ended_at"] - data["started_at"] - listed, 0.0)
    else:
        listed = g("import", 0.0) + sum(v for k, v in parts.items() if not k.startswith("process start"))
        parts["other in the process (CLI, engine set-up)"] = max(data["ended_at"] - data["started_at"] - listed, 0.0)
    parts["process exit (interpreter teardown)"] = max(exited_at - data["ended_at"], 0.0)
    parts["CPU: this process"] = data["cpu_self_s"]
    parts["CPU: the kernel (and what it started)"] = data["cpu_children_s"]
    return {k: round(v, 3) for k, v in parts.items()}


def measure_breakdown(way: str, notebook: str, parameters: dict[str, Any], work: Path) -> dict[str, Any]:
    """One instrumented run (``probe``) of ``notebook`` by papermill or ``runbook run``; its breakdown."""
    work.mkdir(parents=True, exist_ok=True)
    probe_file = work / f"{notebook}.{way}-probe.json"
    if way == "papermill":
        output = work / f"{notebook}.papermill-probe.ipynb"
        argv = [str(RUNBOOKS / f"{notebook}.ipynb"), str(output), "--cwd", str(RUNBOOKS), "--no-progress-bar"]
        argv += ["-y", json.dumps(parameters)] if parameters else []
    else:
        output = work / "unknown.ipynb"  # the archived copy, found after the run
        argv = ["run", notebook]
        for name, value in parameters.items():
            argv += ["-r" if isinstance(value, str) else "-p", name, value if isinstance(value, str) else json.dumps(value)]
    spawned = time.time()
    code, seconds = run_process([sys.executable, "-m", "benchmarks.notebooks", "probe", way, str(probe_file), *argv],
                                work / f"{notebook}.{way}-probe.log", env={"PYTHONPATH": str(REPO_ROOT)})
    if way == "runbook":
        output = _record_dir(notebook)
    if not probe_file.exists():
        return {"ok": False, "seconds": seconds, "parts": {}, "log": str(work / f"{notebook}.{way}-probe.log")}
    return {"ok": code == 0, "seconds": seconds, "parts": breakdown(probe_file, output, spawned, spawned + seconds),
            "log": str(work / f"{notebook}.{way}-probe.log")}


def _record_dir(notebook: str) -> Path:
    """The newest archived copy of ``notebook`` under the (private) outputs folder."""
    import os

    root = Path(os.environ.get("RUNBOOK_OUTPUTS_DIR") or REPO_ROOT / "outputs")
    copies = sorted(root.glob(f"*/*/{notebook}.ipynb"), key=lambda p: p.parent.name)
    return copies[-1] if copies else root / "missing.ipynb"


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        sys.exit(run_cells(json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3])))
    if len(sys.argv) >= 5 and sys.argv[1] == "probe" and sys.argv[2] in ("papermill", "runbook"):
        sys.exit(probe(sys.argv[2], sys.argv[4:], Path(sys.argv[3])))
    print("usage: python -m benchmarks.notebooks run CELLS.json TIMINGS.json\n"
          "       python -m benchmarks.notebooks probe papermill|runbook BREAKDOWN.json ARGS...", file=sys.stderr)
    sys.exit(2)

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
"""

from __future__ import annotations

import ast
import json
import sys
import time
from pathlib import Path
from typing import Any

from .harness import BIN, REPO_ROOT, run_process

RUNBOOKS = REPO_ROOT / "runbooks"


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


def measure(notebook: str, parameters: dict[str, Any], work: Path, runbook: bool = True) -> dict[str, Any]:
    """Run one notebook plain, with papermill, and (optionally) with ``runbook run``; timings and splits."""
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
    return result


def latest_run_json() -> dict[str, Any] | None:
    """The newest run.json under the (private) outputs folder."""
    import os

    root = Path(os.environ.get("RUNBOOK_OUTPUTS_DIR") or REPO_ROOT / "outputs")
    runs = sorted(root.glob("*/*/run.json"), key=lambda p: p.parent.name)
    return json.loads(runs[-1].read_text()) if runs else None


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        sys.exit(run_cells(json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3])))
    print("usage: python -m benchmarks.notebooks run CELLS.json TIMINGS.json", file=sys.stderr)
    sys.exit(2)

"""An HTML report of a run, for reviewers: each executed notebook converted with
nbconvert, and an index page with the run's status, parameters, per-notebook and
per-cell timings, the failing cell, scraps and versions.

A workshop's record (``runbook lab``) also shows its screenshots (the forms as the room saw
them, the hub's pages), grouped by notebook in walkthrough order.

``write_report(run)`` writes ``<run>/report/index.html`` and one page per notebook;
``write_index(root)`` writes ``outputs/index.html`` linking every run's report.
Every page goes through the scrub before it is written.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Iterable

from . import scrub
from .archive import Run, format_duration, iter_runs, outputs_root
from .model import Failure, NotebookEntry

REPORT_DIR = "report"

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } code, pre { font-family: Menlo, Consolas, monospace; font-size: .85rem; }
pre { background: #f7f7f7; padding: .6rem; overflow-x: auto; }
.status { font-weight: 600; padding: .1rem .5rem; border-radius: .3rem; }
.succeeded { background: #e3f6e5; color: #17692a; } .failed, .killed, .refused { background: #fde7e7; color: #9b1c1c; }
.interrupted, .abandoned, .running, .pending { background: #fff4d6; color: #7a5b00; }
.bar { background: #4c78a8; height: .7rem; display: inline-block; }
figure { display: inline-block; margin: .4rem; vertical-align: top; } figure img { max-width: 34rem; border: 1px solid #ddd; }
figcaption { font-size: .85rem; color: #555; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _badge(status: str) -> str:
    return f'<span class="status {_e(status)}">{_e(status)}</span>'


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>\n")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.staged")
    staged.write_text(text)
    try:
        scrub.archive_text(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def notebook_html(notebook: Path, exporter: Any = None) -> str:
    """One executed notebook as a standalone HTML page (nbconvert, lab template). Pass the
    ``exporter`` of :func:`html_exporter` to render several: its templates are compiled once."""
    import warnings

    import nbformat

    exporter = exporter or html_exporter()
    with warnings.catch_warnings():
        # scrapbook scraps have no HTML representation; they are listed on the index page
        warnings.filterwarnings("ignore", message=".*is not able to be represented", category=UserWarning)
        body, _ = exporter.from_notebook_node(nbformat.read(str(notebook), as_version=4))
    return body


def html_exporter() -> Any:
    """nbconvert's HTML exporter with the lab template, as :func:`notebook_html` uses it."""
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab")


def _cells_table(entry: NotebookEntry, page: str | None) -> str:
    cells = entry.cells
    if not cells:
        return "<p>No cells executed.</p>"
    longest = max((c.duration_s or 0) for c in cells) or 1
    rows = []
    for cell in cells:
        duration = cell.duration_s
        width = int(200 * (duration or 0) / longest)
        rows.append([
            _e(cell.index), _e(cell.execution_count or ""), _badge(cell.status),
            f'{_e(format_duration(duration))} <span class="bar" style="width:{width}px"></span>',
            f"<code>{_e(cell.first_line)}</code>",
        ])
    return _table(["cell", "In", "status", "duration", "code"], rows)


def _index_body(run: Run, pages: dict[str, str]) -> str:
    record = run.record
    parts = [f"<h1>Run {_e(run.deployment)}/{_e(run.run_id)} {_badge(run.status)}</h1>"]
    overview = [
        ["target", _e(record.target)],
        ["started", _e(record.started_at)], ["ended", _e(record.ended_at)],
        ["duration", _e(format_duration(record.duration_s))],
        ["command", f"<code>{_e(record.command)}</code>"],
        ["git", _e(" ".join(str(v) for v in (record.git.get("commit"), record.git.get("branch")) if v)
                 + (" (uncommitted changes)" if record.git.get("dirty") else ""))],
        ["attempts", _e(len(record.attempts))],
    ]
    parts.append(_table(["", ""], overview))
    failure = record.failure
    if failure:
        link = pages.get(failure.notebook or "")
        where = f'<a href="{_e(link)}#papermill-error-cell">{_e(failure.notebook)}</a>' if link else _e(failure.notebook)
        what = failure.reason or f"{failure.ename or ''}: {failure.evalue or ''}"
        cell = "?" if failure.cell_index is None else failure.cell_index
        parts.append(f"<h2>Failure</h2><p>{where}, cell {_e(cell)} "
                     f"(In [{_e(failure.execution_count or ' ')}])</p><pre>{_e(what)}</pre>"
                     f"<p>Continue with <code>runbook run --resume --run {_e(run.run_id)}</code>.</p>")

    rows = []
    for entry in run.notebooks:
        link = pages.get(entry.name)
        name = f'<a href="{_e(link)}">{_e(entry.name)}</a>' if link else _e(entry.name)
        fail = entry.failure or Failure()
        rows.append([name, _badge(entry.status), _e(entry.attempt), _e(format_duration(entry.duration_s)),
                     _e(f"cell {fail.cell_index}" if fail.cell_index is not None else fail.reason or "")])
    parts.append("<h2>Notebooks</h2>" + _table(["notebook", "status", "attempt", "duration", "stopped at"], rows))

    parameters = record.parameters
    parts.append("<h2>Parameters</h2>" + (_table(["name", "value"], ([_e(k), f"<code>{_e(json.dumps(v))}</code>"]
                                                                       for k, v in sorted(parameters.items())))
                                          if parameters else "<p>Notebook defaults.</p>"))
    if record.secrets:
        parts.append("<p>Secrets (values never recorded): "
                     + ", ".join(f"{_e(k)} from {_e(v)}" for k, v in sorted(record.secrets.items())) + "</p>")

    parts.append(_screenshots(run))

    for entry in run.notebooks:
        if entry.attempt:
            parts.append(f"<h2>Cells of {_e(entry.name)}</h2>" + _cells_table(entry, pages.get(entry.name)))
            for previous in entry.previous_attempts:
                link = pages.get(f"{entry.name}@{previous.attempt}")
                label = f"attempt {previous.attempt}: {previous.status}"
                parts.append(f"<p>Earlier {(_e(label) if not link else f'<a href={_e(link)!r}>{_e(label)}</a>')}</p>")

    scraps = {e.name: e.scraps for e in run.notebooks if e.scraps}
    if scraps:
        rows = [[_e(nb), _e(name), f"<code>{_e(json.dumps(value, default=str)[:300])}</code>"]
                for nb, values in scraps.items() for name, value in values.items()]
        parts.append("<h2>Scraps</h2>" + _table(["notebook", "name", "value"], rows))

    versions = record.versions
    if versions:
        rows = [["python", _e(versions.get("python"))], ["terraform", _e(versions.get("terraform"))]]
        rows += [[f"provider {_e(k)}", _e(v)] for k, v in versions.get("providers", {}).items()]
        rows += [[f"chart {_e(k)}", _e(v)] for k, v in versions.get("charts", {}).items()]
        rows += [[_e(k), _e(v)] for k, v in versions.get("packages", {}).items()]
        parts.append("<h2>Versions</h2>" + _table(["component", "version"], rows))
    return "\n".join(parts)


def screenshots_in_order(run: Run) -> list[dict[str, str]]:
    """The record's screenshots (``run.json``'s ``screenshots``), in the order of its notebooks."""
    order = {entry.name: i for i, entry in enumerate(run.notebooks)}
    listed = list(run.record.extra.get("screenshots") or [])
    return sorted(listed, key=lambda shot: (order.get(shot.get("notebook"), len(order)), listed.index(shot)))


def _screenshots(run: Run) -> str:
    shots = screenshots_in_order(run)
    if not shots:
        return ""
    parts, current = ["<h2>The workshop, as it looked</h2>"], None
    for shot in shots:
        if shot.get("notebook") != current:
            current = shot.get("notebook")
            parts.append(f"<h3>{_e(current)}</h3>")
        parts.append(f'<figure><img src="../{_e(shot["path"])}" alt="{_e(shot["caption"])}">'
                     f"<figcaption>{_e(shot['caption'])}</figcaption></figure>")
    return "\n".join(parts)


def write_report(run: Run) -> Path:
    """Write the run's HTML report; returns the index page."""
    out = run.dir / REPORT_DIR
    pages: dict[str, str] = {}
    exporter = None
    for entry in run.notebooks:
        if entry.output and (run.dir / entry.output).is_file():
            page = f"{entry.name}.html"
            exporter = exporter or html_exporter()
            _write(out / page, notebook_html(run.dir / entry.output, exporter))
            pages[entry.name] = page
        for previous in entry.previous_attempts:
            if previous.output and (run.dir / previous.output).is_file():
                page = f"{entry.name}.attempt-{previous.attempt}.html"
                exporter = exporter or html_exporter()
                _write(out / page, notebook_html(run.dir / previous.output, exporter))
                pages[f"{entry.name}@{previous.attempt}"] = page
    if run.log_path.is_file():
        pages["run.log"] = "../run.log"
    index = out / "index.html"
    _write(index, _page(f"Run {run.run_id}", _index_body(run, pages)))
    return index


def write_index(root: Path | None = None) -> Path:
    """``outputs/index.html``: every run, newest first, linking its report when there is one."""
    root = root or outputs_root()
    rows = []
    for run in reversed(list(iter_runs(root))):
        row = run.summary_row()
        report = run.dir / REPORT_DIR / "index.html"
        name = (f'<a href="{_e(report.relative_to(root))}">{_e(row["run"])}</a>' if report.is_file() else _e(row["run"]))
        rows.append([name, _badge(row["status"]), _e(row["target"]), _e(row["started"]), _e(row["duration"]),
                     _e(row["notebooks"]), _e(row["parameters"])])
    body = "<h1>Runbook runs</h1>" + (_table(["run", "status", "target", "started", "duration", "notebooks", "parameters"], rows)
                                      if rows else "<p>No runs yet.</p>")
    index = root / "index.html"
    _write(index, _page("Runbook runs", body))
    return index

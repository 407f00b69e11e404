"""Tables, notes and progress for the runbooks' output.

Output is for people and for regression runs (nbval compares it), so:

- tables are plain pandas DataFrames (no Styler: its HTML carries random ids), with
  a ``status`` column rendered as ``✔ pass`` / ``✘ fail`` / ``! warn`` / ``i info``;
- progress is one display that is updated in place: live detail while waiting, a
  final state without times (times go to ``Progress.rows()`` for a separate cell).
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from ..errors import ChecksFailed
from ..params import DeploymentParameters

STATUS_MARKS = {"pass": "✔ pass", "fail": "✘ fail", "warn": "! warn", "info": "i info", "skip": "- skip"}

pd.set_option("display.max_colwidth", None)
pd.set_option("display.max_rows", 200)
pd.set_option("display.width", 200)


def _rows(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, pd.DataFrame):
        return data.reset_index().to_dict("records") if data.index.name else data.to_dict("records")
    return [dict(row) for row in data]


def table(rows: Iterable[Mapping[str, Any]] | pd.DataFrame, columns: Sequence[str] | None = None,
          status: str = "status", index: str | None = None) -> pd.DataFrame:
    """A DataFrame for display: optional column order, status marks, a meaningful index.

    ``index`` names the column to use as the index (default: a plain 1-based count).
    Empty input gives an empty frame with the given columns.
    """
    data = _rows(rows)
    frame = pd.DataFrame(data, columns=list(columns) if columns else None)
    if status in frame.columns:
        frame[status] = [STATUS_MARKS.get(str(v), v) for v in frame[status]]
    if index and index in frame.columns:
        frame = frame.set_index(index)
    else:
        frame.index = pd.RangeIndex(1, len(frame) + 1)
    return frame


def checks(*row_lists: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Several lists of check rows as one table."""
    combined: list[dict[str, Any]] = []
    for rows in row_lists:
        combined.extend(_rows(rows))
    return table(combined, columns=columns)


def failures(rows: Iterable[Mapping[str, Any]] | pd.DataFrame, status: str = "status") -> list[dict[str, Any]]:
    """Rows whose status is fail (raw or marked)."""
    return [r for r in _rows(rows) if str(r.get(status, "")) in ("fail", STATUS_MARKS["fail"])]


def require_pass(rows: Iterable[Mapping[str, Any]] | pd.DataFrame, what: str, name_column: str | None = None) -> None:
    """Raise ``ChecksFailed`` if any row failed, naming the failed checks."""
    failed = failures(rows)
    if not failed:
        return
    key = name_column or next(iter(failed[0]))
    names = ", ".join(str(r.get(key, "?")) for r in failed)
    raise ChecksFailed(f"{what}: {len(failed)} check(s) failed: {names}. See the table above for details.")


def show(obj: Any) -> None:
    """Display anything (a DataFrame, a matplotlib Figure as PNG, Markdown) from inside a cell."""
    from IPython.display import Image, display

    if hasattr(obj, "savefig"):
        import io

        buffer = io.BytesIO()
        obj.savefig(buffer, format="png", metadata={"Software": None})
        display(Image(data=buffer.getvalue(), format="png"))
        return
    display(obj)


def note(markdown: str) -> None:
    """Display a Markdown note."""
    from IPython.display import Markdown, display

    display(Markdown(markdown))


def target_note(params: DeploymentParameters, *topics: str) -> None:
    """What this run can and cannot show, for the target (its ``limits``: general + ``topics``
    such as ``gpu``, ``network``; on AWS a reminder that resources are billable)."""
    from .. import targets

    note(targets.of(params).note(params, topics))


# --------------------------------------------------------------------------- progress


@dataclass
class _Step:
    name: str
    state: str = "pending"  # pending | running | done | failed | skipped
    detail: str = ""
    started: float | None = None
    ended: float | None = None


_ICONS = {"pending": "·", "running": "▶", "done": "✔", "failed": "✘", "skipped": "-"}


@dataclass
class Progress:
    """A progress display updated in place; also a callback ``progress(step, state, detail)``.

    Library functions that wait take an optional ``progress`` callable and call it
    with a step name, a state (``running``, ``done``, ``failed``, ``skipped``) and a
    short detail (e.g. the resource being created). The final rendering has no
    times; ``rows()`` gives durations for a separate table.
    """

    title: str
    steps: list[str] = field(default_factory=list)
    _steps: dict[str, _Step] = field(default_factory=dict, init=False)
    _handle: Any = field(default=None, init=False)
    _finished: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        for name in self.steps:
            self._steps[name] = _Step(name)
        self._handle = None

    def __enter__(self) -> "Progress":
        self.show()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            for step in self._steps.values():
                if step.state == "running":
                    step.state, step.ended = "failed", time.monotonic()
                    step.detail = str(exc).splitlines()[0][:200] if str(exc) else exc_type.__name__
        else:
            for step in self._steps.values():
                if step.state == "running":
                    step.state, step.ended = "done", time.monotonic()
            self._finished = True
        for step in self._steps.values():
            if step.state != "failed":
                step.detail = ""
        self._update()

    def show(self) -> None:
        from IPython.display import display

        self._handle = display(self, display_id=True)

    def __call__(self, step: str, state: str = "running", detail: str = "") -> None:
        item = self._steps.setdefault(step, _Step(step))
        now = time.monotonic()
        if state == "running" and item.started is None:
            item.started = now
        if state in ("done", "failed", "skipped"):
            item.ended = now
            item.started = item.started or now
        item.state = state
        item.detail = detail
        self._update()

    def _update(self) -> None:
        if self._handle is not None:
            self._handle.update(self)

    def _lines(self) -> list[str]:
        done = sum(1 for s in self._steps.values() if s.state in ("done", "skipped"))
        if not self._steps:
            return [f"{self.title}: {'nothing to do' if self._finished else 'starting'}"]
        lines = [f"{self.title}: {done} of {len(self._steps)} steps done"]
        for step in self._steps.values():
            detail = f"  ({step.detail})" if step.detail else ""
            lines.append(f"  {_ICONS.get(step.state, '?')} {step.name}{detail}")
        return lines

    def __repr__(self) -> str:
        return "\n".join(self._lines())

    def _repr_html_(self) -> str:
        total = max(len(self._steps), 1)
        done = sum(1 for s in self._steps.values() if s.state in ("done", "skipped"))
        if not self._steps:  # a wait that had nothing to wait for: full once it ended
            done = int(self._finished)
            return (f"<div><b>{html.escape(self.title)}</b> <progress value='{done}' max='1'></progress> "
                    f"{html.escape(self._lines()[0].split(': ', 1)[1])}</div>")
        lines = "<br>".join(html.escape(line).replace("  ", "&nbsp;&nbsp;") for line in self._lines()[1:])
        return (f"<div><b>{html.escape(self.title)}</b> <progress value='{done}' max='{total}'></progress> "
                f"{done}/{len(self._steps)}<br><code>{lines}</code></div>")

    @property
    def failed(self) -> bool:
        return any(s.state == "failed" for s in self._steps.values())

    def rows(self) -> list[dict[str, Any]]:
        """Each step's state and duration in seconds (volatile: show in its own cell)."""
        return [
            {"step": s.name, "state": s.state,
             "seconds": round(s.ended - s.started, 1) if s.started is not None and s.ended is not None else None}
            for s in self._steps.values()
        ]

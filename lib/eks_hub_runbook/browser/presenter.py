"""A workshop presenter in JupyterLab, driven with Playwright: open a runbook, fill its form, run it.

What a person does in front of a room, as calls: :meth:`Presenter.open` a runbook of the
session (``lab.Lab``), :meth:`~Presenter.show_form` (runs the cells up to the form),
:meth:`~Presenter.choose` / :meth:`~Presenter.type` / :meth:`~Presenter.tick` a field,
:meth:`~Presenter.run_all`, then :meth:`~Presenter.look`: what the page shows, as a
:class:`NotebookView` (widgets rendered or not, progress bars, the pass/fail columns, charts,
errors). :meth:`~Presenter.form_screenshot` keeps the form as the room saw it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunbookError

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from ..lab import Lab

IDLE = re.compile(r"\| Idle")

# What the visible notebook shows, read from its DOM in one pass.
_LOOK = """() => {
  const panel = [...document.querySelectorAll('.jp-NotebookPanel')].find(p => !p.classList.contains('lm-mod-hidden'));
  const q = s => panel ? [...panel.querySelectorAll(s)] : [];
  const statuses = [];
  for (const table of q('.jp-OutputArea-output table')) {
    const header = table.querySelector('thead tr');
    if (!header) continue;
    const column = [...header.children].findIndex(c => c.textContent.trim() === 'status');
    if (column < 0) continue;
    for (const row of table.querySelectorAll('tbody tr')) {
      const cell = row.children[column];
      if (cell) statuses.push(cell.textContent.trim());
    }
  }
  const prompts = q('.jp-CodeCell .jp-InputArea-prompt').map(p => p.textContent.trim());
  return {
    widgets: q('.jp-OutputArea-output .jupyter-widgets').length,
    loading: q('.jp-OutputArea-output').filter(o => o.textContent.includes('Loading widget')).length,
    reprs: q('.jp-OutputArea-output pre').filter(p => /^(VBox|HBox|Dropdown|Text|Checkbox)\\(/.test(p.textContent)).length,
    progress: q('.jp-OutputArea-output progress').map(p => [p.value, p.max]),
    statuses: statuses,
    images: q('.jp-OutputArea-output img').map(i => [i.naturalWidth, i.naturalHeight, i.complete]),
    // JupyterLab renders a cell's error (traceback or not) and its stderr with the stderr mime type
    errors: q('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').map(e => e.textContent.slice(0, 400)),
    prompts: prompts,
    problems: q('.runbook-problem').map(e => e.textContent.trim()),
  };
}"""

# Done running: the kernel is idle and no cell waits ("[*]") in the visible notebook.
_DONE = """() => {
  const panel = [...document.querySelectorAll('.jp-NotebookPanel')].find(p => !p.classList.contains('lm-mod-hidden'));
  if (!panel) return false;
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);
  return prompts.length > 0 && !prompts.some(t => t.includes('*')) && document.body.innerText.includes('| Idle');
}"""


@dataclass
class NotebookView:
    """What the presenter sees in a notebook after running it."""

    name: str
    widgets: int = 0  # rendered widget DOM elements
    loading: int = 0  # outputs still saying "Loading widget..."
    reprs: int = 0  # widgets shown as text (VBox(...)) instead of rendered
    progress: list[tuple[float, float]] = field(default_factory=list)  # each <progress>: value, max
    statuses: list[str] = field(default_factory=list)  # every cell of every status column
    images: list[tuple[int, int, bool]] = field(default_factory=list)  # natural size, loaded
    errors: list[str] = field(default_factory=list)  # error outputs and anything written to stderr
    prompts: list[str] = field(default_factory=list)  # each code cell's prompt, "[3]:" or "[ ]:"
    problems: list[str] = field(default_factory=list)  # the form's feedback beside its fields
    seconds: float | None = None

    @classmethod
    def read(cls, name: str, data: dict[str, Any]) -> "NotebookView":
        return cls(name=name, widgets=data["widgets"], loading=data["loading"], reprs=data["reprs"],
                   progress=[tuple(p) for p in data["progress"]], statuses=list(data["statuses"]),
                   images=[tuple(i) for i in data["images"]], errors=list(data["errors"]), prompts=list(data["prompts"]), problems=list(data["problems"]))

    @property
    def not_run(self) -> int:
        """Code cells without an execution count."""
        return sum(1 for p in self.prompts if re.fullmatch(r"\[\s*\]:", p))

    def shortcomings(self, chart: bool = False) -> list[str]:
        """What a presenter would call broken on the happy path (empty: all good)."""
        found = []
        if self.widgets == 0:
            found.append("the form did not render as widgets")
        if self.loading or self.reprs:
            found.append(f"{self.loading + self.reprs} widget outputs are not rendered")
        found += [f"a progress bar stopped at {value:g} of {top:g}" for value, top in self.progress if value < top]
        found += [f"a status column says {status!r}" for status in self.statuses if "fail" in status]
        if chart and not any(width > 0 and loaded for width, _, loaded in self.images):
            found.append("the chart image did not load")
        found += [f"error or stderr output: {text[:200]}" for text in self.errors]
        if self.not_run:
            found.append(f"{self.not_run} code cells did not run")
        return found


class Presenter:
    """One browser page on one JupyterLab, used as a presenter would."""

    def __init__(self, page: "Page", lab: "Lab", timeout: float = 60.0):
        self.page = page
        self.lab = lab
        self.timeout = timeout
        self.name: str | None = None
        page.set_default_timeout(timeout * 1000)

    def open(self, name: str) -> float:
        """Open runbook ``name`` and wait for its kernel; returns the seconds it took."""
        started = time.monotonic()
        self.page.goto(self.lab.notebook_url(name))
        self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.wait_for()
        self.page.get_by_text(IDLE).wait_for(timeout=self.timeout * 2000)
        self.name = name
        return time.monotonic() - started

    def _command(self, menu: str, command: str) -> None:
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
        self.page.locator(f"li.lm-Menu-item[data-command='{command}']").click()

    def _wait_done(self, timeout: float) -> None:
        self.page.wait_for_timeout(300)  # let the first cell go busy
        self.page.wait_for_function(_DONE, timeout=timeout * 1000, polling=500)

    def show_form(self) -> None:
        """Run the cells up to and including the form cell (the parameters cell first)."""
        cell = self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell",
                                 has_text="nb.parameter_form(").first
        cell.locator(".jp-InputArea-prompt").click()
        self._command("Run", "notebook:run-all-above")
        self._wait_done(self.timeout)
        cell.locator(".jp-InputArea-prompt").click()
        self._command("Run", "notebook:run-cell")
        self._wait_done(self.timeout)
        self.form().wait_for()

    def form(self):
        """The form's widget box."""
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output .widget-vbox").first

    def _field(self, kind: str, name: str):
        return self.form().locator(f".{kind}", has=self.page.locator(".widget-label, label", has_text=re.compile(f"^{re.escape(name)}$")))

    def choose(self, name: str, value: str) -> None:
        """Pick ``value`` in the dropdown ``name``."""
        self._field("widget-dropdown", name).locator("select").select_option(value)

    def type(self, name: str, value: str) -> None:
        """Type ``value`` into the text field ``name`` (replacing what is there)."""
        box = self._field("widget-text", name).locator("input")
        box.fill(value)
        box.press("Tab")

    def tick(self, name: str) -> None:
        """Tick the checkbox ``name``."""
        self.form().locator(".widget-checkbox", has_text=name).locator("input[type=checkbox]").check()

    def feedback(self) -> list[str]:
        """The problems the form shows beside its fields now."""
        self.page.wait_for_timeout(300)
        return [text.strip() for text in self.form().locator(".runbook-problem").all_inner_texts()]

    def run_all(self, timeout: float = 600.0) -> float:
        """Run -> Run All Cells and wait until nothing runs; the seconds it took."""
        started = time.monotonic()
        self._command("Run", "runmenu:run-all")
        self._wait_done(timeout)
        return time.monotonic() - started

    def look(self) -> NotebookView:
        """What the visible notebook shows now."""
        if self.name is None:
            raise RunbookError("open a notebook first")
        return NotebookView.read(self.name, self.page.evaluate(_LOOK))

    def form_screenshot(self, path: Path) -> Path:
        """A PNG of the form as it is on screen."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.form().screenshot(path=str(path))
        return path

    def screenshot(self, path: Path) -> Path:
        """A PNG of the JupyterLab window."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return path

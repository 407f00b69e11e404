"""nbval settings for the golden notebooks (loaded when pytest collects tests/golden/).

Two gaps between how the golden notebooks were executed (papermill/nbclient) and how
nbval 0.11 re-executes them are closed here, so the comparison is like for like:

1. Displays updated in place. A progress display (``display(..., display_id=True)``
   then ``handle.update(...)``) is stored by nbclient in its final state, but nbval
   ignores ``update_display_data`` messages ("unhandled iopub msg") and would compare
   the *first* state. Here an update replaces the output it refers to, as in
   JupyterLab and nbclient, so the final state is compared.
2. Tables. A pandas table is displayed as ``text/html`` and ``text/plain``; its text
   form is padded and wrapped to the terminal width, so a sanitised value of another
   length (an id, a duration) moves columns and wrap points. Tables are compared
   through their HTML form (every value still compared, after the sanitizer); outputs
   without HTML keep their text compared.

Both depend on nbval internals (``IPyNbFile.get_kernel_message``,
``IPyNbCell.runtest``/``test_outputs``/``compare_outputs``); nbval is pinned (0.11.0).
"""

from __future__ import annotations

from nbformat import NotebookNode
from nbval import plugin as _nbval

_PATCHED = "_runbook_golden_patched"


# -- 1. display updates ---------------------------------------------------------------

_runtest = _nbval.IPyNbCell.runtest
_get_kernel_message = _nbval.IPyNbFile.get_kernel_message


def _runtest_tracking_displays(self):
    self.parent._golden_cell = self
    self.parent._golden_msg_id = None
    self.parent._golden_displays = {}
    try:
        return _runtest(self)
    finally:
        self.parent._golden_cell = None


def _get_kernel_message_with_updates(self, timeout=None, stream="iopub"):
    msg = _get_kernel_message(self, timeout=timeout, stream=stream)
    cell = getattr(self, "_golden_cell", None)
    if cell is None or stream != "iopub":
        return msg
    msg_type, parent = msg["msg_type"], msg["parent_header"].get("msg_id")
    if msg_type == "execute_input":
        self._golden_msg_id = parent
        return msg
    if parent is None or parent != self._golden_msg_id:
        return msg
    display_id = (msg["content"].get("transient") or {}).get("display_id")
    outputs = getattr(cell, "test_outputs", None)
    if display_id and msg_type in ("display_data", "execute_result") and outputs is not None:
        # nbval appends this message's output next: remember where it will be
        self._golden_displays.setdefault(display_id, []).append(len(outputs))
    elif msg_type == "update_display_data":
        for index in self._golden_displays.get(display_id, []) if outputs is not None else []:
            if index < len(outputs):
                outputs[index]["data"] = NotebookNode(msg["content"]["data"])
                outputs[index]["metadata"] = NotebookNode(msg["content"].get("metadata", {}))
        msg = {**msg, "msg_type": "execute_input"}  # handled: nbval skips this type silently
    return msg


# -- 2. tables through their HTML form --------------------------------------------------

_compare_outputs = _nbval.IPyNbCell.compare_outputs


def _html_tables_only(outputs):
    result = []
    for output in outputs:
        data = output.get("data") if hasattr(output, "get") else None
        if data and "text/html" in data and "text/plain" in data:
            output = NotebookNode(output)
            output["data"] = NotebookNode({k: v for k, v in data.items() if k != "text/plain"})
        result.append(output)
    return result


def _compare_tables_as_html(self, test, ref, skip_compare=None):
    return _compare_outputs(self, _html_tables_only(test), _html_tables_only(ref), skip_compare)


if not getattr(_nbval, _PATCHED, False):
    _nbval.IPyNbCell.runtest = _runtest_tracking_displays
    _nbval.IPyNbFile.get_kernel_message = _get_kernel_message_with_updates
    _nbval.IPyNbCell.compare_outputs = _compare_tables_as_html
    setattr(_nbval, _PATCHED, True)

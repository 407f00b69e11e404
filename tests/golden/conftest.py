"""nbval settings for the golden notebooks (loaded when pytest collects tests/golden/).

A pandas table is displayed as ``text/html`` and ``text/plain``; its text form is
padded and wrapped to the terminal width, so a sanitised value of another length
(an id, a duration) moves columns and wrap points. Tables are compared through their
HTML form only (every value still compared, after the sanitizer); outputs without
HTML keep their text compared.
"""

from __future__ import annotations

from nbformat import NotebookNode
from nbval import plugin as _nbval

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


if getattr(_nbval.IPyNbCell.compare_outputs, "__name__", "") != _compare_tables_as_html.__name__:
    _nbval.IPyNbCell.compare_outputs = _compare_tables_as_html

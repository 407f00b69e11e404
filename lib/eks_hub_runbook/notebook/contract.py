"""What a runbook notebook takes and promises, read from the notebook file itself.

``runbook run`` validates every notebook of a run before it starts the first, with the
same rules the notebooks' validation cells apply. What those rules depend on is written
once, in the notebook: its ``parameters`` cell (names and defaults), the arguments of its
``nb.resolve_from(form, recorded=..., confirm=...)`` call, and whether it records the
deployment's parameters (``glue(..., "parameters", ...)``, as 02_deploy does). This module
reads them, so nothing about a notebook is typed a second time in the runner.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .validation import RECORDED


@dataclass(frozen=True)
class Contract:
    """A notebook's parameters and validation rules."""

    name: str
    declared: dict[str, Any] = field(default_factory=dict)  # parameter -> default (a literal where it is one)
    validates: bool = False  # it has a validation cell: nb.resolve_from(form, ...)
    from_record: bool = False  # nb.resolve_from(form, recorded=True)
    confirm: str | None = None  # nb.resolve_from(form, confirm="deletes ..."): what it destroys
    records_parameters: bool = False  # glue(<deployment>, "parameters", ...)


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def read(path: Path) -> Contract:
    """The contract of the notebook at ``path``."""
    import papermill as pm

    declared = {}
    for name, info in pm.inspect_notebook(str(path)).items():
        try:
            declared[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError, TypeError):
            declared[name] = info["default"]
    validates, from_record, confirm, records = False, False, None, False
    cells = json.loads(Path(path).read_text()).get("cells", [])
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", []))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            if name == "resolve_from":
                validates = True
                for keyword in node.keywords:
                    if keyword.arg == "recorded" and isinstance(keyword.value, ast.Constant):
                        from_record = bool(keyword.value.value)
                    if keyword.arg == "confirm" and isinstance(keyword.value, ast.Constant):
                        confirm = str(keyword.value.value)
            elif name == "glue" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                records = records or node.args[1].value == RECORDED
    return Contract(Path(path).stem, declared, validates, from_record, confirm, records)

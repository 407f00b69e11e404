"""What papermill injected into this kernel, read back from the kernel's own input history.

papermill puts its ``-p`` values in a cell of their own right after the notebook's
``parameters`` cell, starting with the comment ``# Parameters``, and warns about names the
notebook does not declare, then runs them anyway. The kernel's ``In`` list holds the
source of every cell it executed, so the validation cell can find both cells and refuse
what papermill only warned about: a name the notebook does not take, a secret.

The parent process of a kernel that papermill started is papermill itself
(``JPY_PARENT_PID``); its command line says where papermill writes the executed notebook,
which the secret error names so the user can delete it.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

INJECTED_MARKER = "# Parameters"  # papermill's translators start the injected cell with it

# papermill's command-line options that take values (how many), to find its positional arguments
_VALUE_OPTIONS = {
    "-p": 2, "--parameters": 2, "-r": 2, "--parameters_raw": 2, "-f": 1, "--parameters_file": 1,
    "-y": 1, "--parameters_yaml": 1, "-b": 1, "--parameters_base64": 1, "--cwd": 1, "-k": 1, "--kernel": 1,
    "-l": 1, "--language": 1, "--engine": 1, "--log-level": 1, "--start-timeout": 1, "--start_timeout": 1,
    "--execution-timeout": 1, "--autosave-cell-every": 1, "--stdout-file": 1, "--stderr-file": 1,
}


@dataclass(frozen=True)
class Injection:
    """The names a notebook's parameters cell declares and the names papermill injected."""

    declared: frozenset[str] = frozenset()
    injected: tuple[str, ...] = ()
    found: bool = False  # an injected cell was executed in this kernel
    cells: tuple[str, ...] = field(default=(), repr=False)

    def unknown(self) -> list[str]:
        """Injected names the notebook does not declare (papermill only warned about them)."""
        return [name for name in self.injected if name not in self.declared]


def _assigned(source: str, annotated: bool) -> list[str] | None:
    """Names a cell assigns, if every statement is a (annotated / plain) assignment to a name."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names = []
    for node in tree.body:
        if annotated and isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif not annotated and isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            names.extend(t.id for t in node.targets)
        else:
            return None
    return names


def read(history: Sequence[str]) -> Injection:
    """Find the last injected cell in a kernel's ``In`` and the parameters cell before it.

    The parameters cell is the nearest earlier cell made only of annotated assignments
    (``name: type = value  # help``), as the runbooks write it.
    """
    cells = [str(cell) for cell in history]
    for index in range(len(cells) - 1, -1, -1):
        if not cells[index].lstrip().startswith(INJECTED_MARKER):
            continue
        injected = _assigned(cells[index], annotated=False)
        if injected is None:
            continue
        declared: list[str] = []
        for earlier in range(index - 1, -1, -1):
            names = _assigned(cells[earlier], annotated=True)
            if names:
                declared = names
                break
        return Injection(frozenset(declared), tuple(dict.fromkeys(injected)), True, tuple(cells))
    return Injection()


def papermill_output_path(parent_pid: str | None = None) -> str | None:
    """Where the papermill that started this kernel writes the executed notebook.

    ``-`` means standard output. None when the kernel was not started by the papermill CLI
    (JupyterLab, nbval, ``runbook run``) or its command line cannot be read.
    """
    argv = _parent_argv(parent_pid)
    return None if argv is None else output_path_from_argv(argv)


def papermill_input_path(parent_pid: str | None = None) -> str | None:
    """The notebook the papermill that started this kernel runs (its INPUT_PATH), else None."""
    positional = _positional(_parent_argv(parent_pid) or [])
    return positional[0] if positional else None


def _parent_argv(parent_pid: str | None) -> list[str] | None:
    """The command line of the process that started this kernel (``JPY_PARENT_PID``), else None."""
    pid = parent_pid or os.environ.get("JPY_PARENT_PID")
    if not pid:
        return None
    try:
        return [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return None


def output_path_from_argv(argv: Sequence[str]) -> str | None:
    """The OUTPUT_PATH of a papermill command line (``-`` when it was left out), else None."""
    positional = _positional(argv)
    if positional is None:
        return None
    return positional[1] if len(positional) > 1 else "-"


def _positional(argv: Sequence[str]) -> list[str] | None:
    """The positional arguments of a papermill command line; None if it is not one."""
    start = next((i + 1 for i, arg in enumerate(argv)
                  if Path(arg).name == "papermill" or (arg == "papermill" and i > 0 and argv[i - 1] == "-m")), None)
    if start is None:
        return None
    positional, i = [], start
    while i < len(argv):
        arg = argv[i]
        if arg in _VALUE_OPTIONS:
            i += 1 + _VALUE_OPTIONS[arg]
            continue
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
        i += 1
    return positional

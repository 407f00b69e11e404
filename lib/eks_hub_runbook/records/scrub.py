"""The final scrub: nothing that contains a known secret value is written to a record.

Notebooks are executed into a private staging folder; ``archive_notebook`` and
``archive_text`` copy them into the run folder only after checking every string in
them (sources, outputs, metadata) against the known secrets (see ``redact``). A hit
raises :class:`SecretLeakError` naming *where* (cell, output, line), never the value,
and nothing is written. ``audit_tree`` re-checks a whole folder (a run, ``outputs/``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from ..errors import SecretLeakError
from ..paths import write_file
from .redact import SecretFinder, find_secrets


def _walk(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(location, text) for every string in a JSON-like value."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(key, f"{where} key")
            yield from _walk(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{where}[{i}]")


def notebook_leaks(nb: dict) -> list[str]:
    """Human-readable locations in a notebook (dict) where a known secret appears."""
    find_secrets = SecretFinder()  # the secrets and fingerprints as they are now, read once for the scan
    leaks: list[str] = []
    for index, cell in enumerate(nb.get("cells", [])):
        label = f"cell {index}"
        if cell.get("execution_count") is not None:
            label += f" (In [{cell['execution_count']}])"
        parts = [("source", cell.get("source", ""))]
        parts += [(f"output {i}", output) for i, output in enumerate(cell.get("outputs", []))]
        parts.append(("metadata", cell.get("metadata", {})))
        for part, value in parts:
            if any(find_secrets(text) for _, text in _walk(value, part)):
                leaks.append(f"{label} {part}")
    if any(find_secrets(text) for _, text in _walk(nb.get("metadata", {}), "metadata")):
        leaks.append("notebook metadata")
    return leaks


def text_leaks(text: str) -> list[str]:
    """Line numbers (1-based) of ``text`` that contain a known secret."""
    find_secrets = SecretFinder()
    if not find_secrets(text):  # a secret on a line is in the text: most texts are clean, scanned once
        return []
    return [f"line {n}" for n, line in enumerate(text.splitlines(), 1) if find_secrets(line)]


def check_notebook(path: Path) -> None:
    """Raise SecretLeakError if the notebook file at ``path`` contains a known secret."""
    nb = json.loads(Path(path).read_text())
    leaks = notebook_leaks(nb)
    if leaks:
        raise SecretLeakError(
            f"refusing to archive {Path(path).name}: a secret value appears in {', '.join(leaks)}. "
            "Nothing was written; print or display secrets nowhere (read them with params.secret())."
        )


def archive_notebook(staged: Path, destination: Path) -> Path:
    """Copy a staged notebook into the record after the scrub; raise SecretLeakError instead."""
    check_notebook(staged)
    write_file(Path(destination), Path(staged).read_text())
    return Path(destination)


def archive_text(staged: Path, destination: Path) -> Path:
    """Copy a staged log into the record after the scrub; raise SecretLeakError instead."""
    text = Path(staged).read_text(errors="replace")
    leaks = text_leaks(text)
    if leaks:
        raise SecretLeakError(f"refusing to archive {Path(staged).name}: a secret value appears on {', '.join(leaks[:5])}")
    write_file(Path(destination), text)
    return Path(destination)


def write_json(value: Any, destination: Path, where: str) -> Path:
    """Write JSON after the scrub (used for run.json)."""
    text = json.dumps(value, indent=2, sort_keys=False, default=str)
    # line check for where; value check for secrets JSON escaping would hide from the text
    leaks = text_leaks(text) or (["a value"] if find_secrets(value) else [])
    if leaks:
        raise SecretLeakError(f"refusing to write {where}: a secret value appears on {', '.join(leaks[:5])}")
    write_file(Path(destination), text + "\n")
    return Path(destination)


def audit_tree(root: Path) -> list[str]:
    """Every file under ``root`` that contains a known secret, with where (empty when clean)."""
    findings = []
    for path in sorted(Path(root).rglob("*")):
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        if path.suffix == ".ipynb":
            try:
                leaks = notebook_leaks(json.loads(text))
            except ValueError:
                leaks = text_leaks(text)
        else:
            leaks = text_leaks(text)
        findings.extend(f"{path}: {leak}" for leak in leaks)
    return findings

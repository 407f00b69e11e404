"""Upstream files carried unchanged as package data (see ``SOURCES.md`` beside this module).

Readers ask for a file by its folder and name here, so nothing outside the package is ever
read and an installed wheel works as a clone does.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

KARPENTER = "karpenter-v1.14.1"
Z2JH = "z2jh-4.4.0"
SOURCES_FILE = "SOURCES.md"

_ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| (?P<repository>\S+) \| (?P<tag>\S+) \| `(?P<path>[^`]+)` \| "
                  r"(?P<license>\S+) \| `(?P<sha256>[0-9a-f]{64})` \|$")


def folder(name: str = "") -> Path:
    """The third-party folder (or one of its subfolders, e.g. :data:`KARPENTER`)."""
    base = Path(str(resources.files(__name__)))
    path = base / name if name else base
    if not path.is_dir():
        raise FileNotFoundError(f"third-party data {name!r} is not in the package ({base}); reinstall eks-hub-runbook")
    return path


def file(name: str, filename: str) -> Path:
    """One upstream file, e.g. ``file(Z2JH, "values.yaml")``."""
    path = folder(name) / filename
    if not path.is_file():
        raise FileNotFoundError(f"third-party file {name}/{filename} is not in the package; reinstall eks-hub-runbook")
    return path


def sources() -> list[dict[str, str]]:
    """The rows of ``SOURCES.md``: file, repository, tag, upstream path, license, sha256."""
    text = (folder() / SOURCES_FILE).read_text()
    return [m.groupdict() for line in text.splitlines() if (m := _ROW.match(line.strip()))]

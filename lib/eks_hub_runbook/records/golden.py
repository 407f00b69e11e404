"""Golden notebooks for nbval (placeholder; filled in once the runbooks land)."""
from __future__ import annotations

from pathlib import Path

from ..errors import RunbookError


def regenerate(variants: list[str] | None = None) -> list[Path]:
    raise RunbookError("golden notebooks need the runbooks in runbooks/")

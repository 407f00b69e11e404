"""Debian's Chromium: finding the binary, the flags it runs with, and starting it under Playwright.

Only ``/usr/bin/chromium`` (``make browser``) or a binary named by the caller is used;
the walkthrough never downloads a browser build.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RunbookError

if TYPE_CHECKING:  # playwright is imported lazily: importing this module must stay cheap
    from playwright.sync_api import Browser, Playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Every browser context's window, hence the size of every screenshot.
VIEWPORT = {"width": 1024, "height": 640}


def chromium_path(executable: str | Path | None = None) -> Path:
    """Debian's Chromium binary, or a clear error saying how to install it."""
    candidates = [Path(executable)] if executable else [CHROMIUM]
    if not executable:
        found = shutil.which("chromium")
        if found:
            candidates.append(Path(found))
    for path in candidates:
        if path.is_file():
            return path
    raise RunbookError(
        f"Chromium is not installed at {candidates[0]}; run `make browser` "
        "(apt-get install chromium). The walkthrough never downloads a browser build."
    )


def launch(playwright: "Playwright", chromium: Path) -> "Browser":
    """Start headless ``chromium`` with :data:`CHROMIUM_FLAGS`; RunbookError if it does not start."""
    try:
        # launch() gives Chromium a fresh temporary user-data dir and deletes it on close
        return playwright.chromium.launch(executable_path=str(chromium), headless=True, args=list(CHROMIUM_FLAGS))
    except Exception as exc:  # noqa: BLE001 - Playwright raises a generic Error
        raise RunbookError(f"Chromium ({chromium}) did not start: {str(exc).splitlines()[0]}") from exc

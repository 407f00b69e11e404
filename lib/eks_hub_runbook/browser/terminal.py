"""The terminal step's shell side: the commands it types (the folder listing, then the
walkthrough's storage check ``df -h``) and how their output is read.

JupyterLab's terminal paints on a canvas, so the output is read from the terminal's own
websocket instead: ``["stdout", text]`` frames, escape sequences removed, the command's
output cut out between two marker lines. Everything here is pure text handling.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
from typing import Sequence

from ..errors import RunbookError

# Folders the terminal lists: the user's EFS home and the shared EFS folder. Relative names
# are under the parent of $HOME (/home in a user pod): `ls /home/jovyan /home/shared`.
DEFAULT_DIRECTORIES = ("jovyan", "shared")
POD_HOME_PARENT = "/home"
WEBSOCKET_PATH = "/terminals/websocket/"

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>]")


def is_terminal_websocket(url: str) -> bool:
    """Whether a websocket URL is a JupyterLab terminal's."""
    return WEBSOCKET_PATH in url


def stdout_text(payload: str | bytes) -> str | None:
    """The text of a terminal websocket frame ``["stdout", text]``; None for any other frame."""
    try:
        message = json.loads(payload)
    except (TypeError, ValueError):
        return None
    if isinstance(message, list) and len(message) >= 2 and message[0] == "stdout":
        return str(message[1])
    return None


def clean(text: str) -> str:
    """Terminal output without escape sequences and carriage returns."""
    return _ANSI.sub("", text).replace("\r", "")


def new_marker() -> str:
    """A fresh word that brackets one command's output (``walkthrough-<8 hex digits>``)."""
    return "walkthrough-" + secrets.token_hex(4)


def marked(command: str, mark: str) -> str:
    """``command`` with its output between ``<mark>-begin`` and ``<mark>-end`` lines."""
    # quotes split the markers in the echoed command line, so only the output matches
    return f'echo "{mark}"-begin; {command}; echo "{mark}"-end'


def listing_command(directories: Sequence[str], mark: str) -> str:
    """The shell line that lists ``directories`` (``ls -1A``) between ``<mark>-begin`` and ``<mark>-end``."""
    listing = " ".join(shlex.quote(d) for d in directories)
    cd = 'cd "$HOME/.." && ' if any(not d.startswith("/") for d in directories) else ""
    return marked(f"{cd}ls -1A {listing}", mark)


STORAGE_COMMAND = "df -h"  # the walkthrough's storage check, as typed


def parse_df(output: str) -> dict[str, str]:
    """``df -h`` output as ``{mounted on: filesystem}``."""
    mounts = {}
    for line in output.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 6 and fields[-1].startswith("/"):
            mounts[fields[-1]] = fields[0]
    return mounts


def command_finished(stdout: str, mark: str) -> bool:
    """Whether the raw terminal output shows the command's end marker."""
    return f"{mark}-end" in clean(stdout)


def command_output(stdout: str, mark: str) -> str:
    """What the command printed between its markers, cleaned, without surrounding blank lines."""
    output = clean(stdout)
    return output.split(f"{mark}-begin", 1)[1].split(f"{mark}-end", 1)[0].strip("\n")


def display_path(directory: str) -> str:
    """How a listed folder is named in results: its path inside the user pod."""
    return directory if directory.startswith("/") else f"{POD_HOME_PARENT}/{directory}"


def parse_listing(output: str, directories: Sequence[str]) -> dict[str, list[str]]:
    """Parse ``ls -1A DIR...`` output into ``{dir: [entries]}``; an unreadable folder raises."""
    problems = [line for line in output.splitlines() if line.startswith("ls: ")]
    if problems:
        raise RunbookError("listing the folders failed: " + "; ".join(problems))
    listing: dict[str, list[str]] = {d: [] for d in directories}
    if len(directories) == 1:
        listing[directories[0]] = [line for line in output.splitlines() if line.strip()]
        return listing
    current: str | None = None
    for line in output.splitlines():
        if line.endswith(":") and line[:-1] in listing:
            current = line[:-1]
        elif line.strip() and current is not None:
            listing[current].append(line)
    return listing

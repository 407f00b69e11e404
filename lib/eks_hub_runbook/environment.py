"""Process environment variables set for the duration of a block."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path


@contextlib.contextmanager
def exported(variables: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Set ``variables`` in ``os.environ`` (so child processes inherit them) for the duration;
    afterwards each is restored to its earlier value, or removed if it had none."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield dict(variables)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def isolated(root: Path) -> Iterator[dict[str, str]]:
    """A private state folder (its own local services) and outputs folder under ``root``, exported
    for the duration. Any local service a target started inside is stopped on the way out."""
    from . import targets

    with exported({"RUNBOOK_STATE_DIR": str(root / "state"), "RUNBOOK_OUTPUTS_DIR": str(root / "outputs")}) as env:
        try:
            yield env
        finally:
            targets.stop_local_services()

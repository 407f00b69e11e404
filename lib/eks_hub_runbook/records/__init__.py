"""Run records: values a notebook hands to later notebooks, and the archive of runs.

``glue`` records a value twice: as a scrapbook scrap in the executing notebook (so
the archived notebook carries it) and in the deployment's state folder (so a later
notebook for the same deployment finds it with ``recall``, however the earlier one
was run: ``runbook run``, plain papermill, or JupyterLab).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from ..paths import deployment_dir

_LOCK = threading.Lock()


def _scraps_file(deployment: str, create: bool = True) -> Path:
    return deployment_dir(deployment, create=create) / "scraps.json"


def recall_all(deployment: str) -> dict[str, Any]:
    """Every value glued so far for ``deployment`` (name -> value)."""
    path = _scraps_file(deployment, create=False)
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def recall(deployment: str, name: str, default: Any = None) -> Any:
    """A value an earlier notebook glued for ``deployment``, or ``default``."""
    return recall_all(deployment).get(name, default)


def remember(deployment: str, name: str, value: Any) -> None:
    """Persist a JSON-serialisable value for later notebooks of ``deployment`` (no scrap)."""
    with _LOCK:
        scraps = recall_all(deployment)
        scraps[name] = value
        path = _scraps_file(deployment)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(scraps, indent=2, sort_keys=True, default=str))
        tmp.replace(path)


def forget(deployment: str, *names: str) -> None:
    """Drop values (e.g. after cleanup) so later runs do not reuse stale ones."""
    with _LOCK:
        scraps = recall_all(deployment)
        for name in names or tuple(scraps):
            scraps.pop(name, None)
        _scraps_file(deployment).write_text(json.dumps(scraps, indent=2, sort_keys=True, default=str))


def glue(deployment: str, name: str, value: Any) -> None:
    """Record ``value`` as a scrapbook scrap and remember it for later notebooks.

    Never glue secrets: the scrubber refuses records that contain a known secret.
    """
    import scrapbook as sb

    from .redact import assert_no_secrets

    assert_no_secrets(value, where=f"scrap '{name}'")
    remember(deployment, name, value)
    sb.glue(name, value)

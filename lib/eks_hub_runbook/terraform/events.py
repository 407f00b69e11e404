"""Terraform's machine-readable UI (``-json``): one JSON object per line, parsed into events.

Only the fields the runbook uses are kept. Reference:
https://developer.hashicorp.com/terraform/internals/machine-readable-ui
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Event types that concern one resource, and the verb each action is shown with.
_ACTION_WORDS = {
    "create": ("creating", "created"),
    "update": ("updating", "updated"),
    "delete": ("destroying", "destroyed"),
    "replace": ("replacing", "replaced"),
    "read": ("reading", "read"),
    "noop": ("checking", "unchanged"),
}


@dataclass(frozen=True)
class Diagnostic:
    """An error or warning reported by Terraform or the provider."""

    severity: str
    summary: str
    detail: str = ""
    address: str = ""

    def text(self) -> str:
        where = f" ({self.address})" if self.address else ""
        detail = f": {self.detail.strip()}" if self.detail.strip() else ""
        return f"{self.severity}{where}: {self.summary.strip()}{detail}"


@dataclass(frozen=True)
class Event:
    """One line of the stream. ``kind`` is Terraform's ``type`` (``apply_start``, ``diagnostic``, ...)."""

    kind: str
    message: str
    address: str = ""
    action: str = ""
    elapsed: float | None = None
    id_value: str = ""
    diagnostic: Diagnostic | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def parse_line(line: str) -> Event:
    """Parse one line of ``-json`` output. A line that is not JSON becomes a ``text`` event."""
    line = line.strip()
    try:
        data = json.loads(line)
    except ValueError:
        return Event(kind="text", message=line)
    if not isinstance(data, dict):
        return Event(kind="text", message=line)
    kind = data.get("type", "log")
    message = str(data.get("@message", ""))
    hook = data.get("hook") or {}
    change = data.get("change") or {}
    resource = hook.get("resource") or change.get("resource") or {}
    diagnostic = None
    if kind == "diagnostic":
        d = data.get("diagnostic") or {}
        diagnostic = Diagnostic(
            severity=d.get("severity", "error"),
            summary=d.get("summary", ""),
            detail=d.get("detail", ""),
            address=d.get("address", ""),
        )
    return Event(
        kind=kind,
        message=message,
        address=resource.get("addr", ""),
        action=hook.get("action") or change.get("action") or "",
        elapsed=hook.get("elapsed_seconds"),
        id_value=str(hook.get("id_value") or ""),
        diagnostic=diagnostic,
        changes=data.get("changes") or {},
        raw=data,
    )


# Warnings every staged (-target) run produces; one short line is enough.
_EXPECTED_WARNINGS = {
    "Resource targeting is in effect": "note: -target in effect (staged run)",
    "Applied changes may be incomplete": None,
}


def describe(event: Event) -> str | None:
    """A readable log line for an event, or None for events not worth a line."""
    if event.kind in ("apply_start", "apply_complete") and event.action == "read":
        return None  # data sources: noise in a progress log
    if event.kind == "diagnostic" and event.diagnostic and event.diagnostic.severity == "warning":
        summary = event.diagnostic.summary.strip()
        if summary in _EXPECTED_WARNINGS:
            return _EXPECTED_WARNINGS[summary]
    if event.kind == "apply_start":
        return f"{event.address}: {_ACTION_WORDS.get(event.action, (event.action, ''))[0]}..."
    if event.kind == "apply_complete":
        done = _ACTION_WORDS.get(event.action, ("", event.action))[1]
        ident = f" [{event.id_value}]" if event.id_value else ""
        return f"{event.address}: {done} in {event.elapsed or 0:.0f}s{ident}"
    if event.kind == "apply_errored":
        return f"{event.address}: FAILED after {event.elapsed or 0:.0f}s"
    if event.kind == "apply_progress":
        return None
    if event.kind == "planned_change":
        return f"plan: {event.action} {event.address}" if event.action not in ("noop", "read") else None
    if event.kind == "diagnostic" and event.diagnostic:
        return event.diagnostic.text()
    if event.kind == "change_summary":
        return event.message
    if event.kind in ("refresh_start", "refresh_complete", "version", "outputs", "resource_drift"):
        return None
    if event.kind == "text":
        return event.message or None
    return event.message or None


@dataclass(frozen=True)
class PlannedChange:
    """One row of a plan's change summary."""

    address: str
    action: str

    def as_row(self) -> dict[str, str]:
        return {"address": self.address, "action": self.action}

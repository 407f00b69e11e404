"""The typed record of a run: what ``run.json`` holds (its layout is in ``archive``).

Every type reads and writes exactly the JSON shape the archive has always written:
``X.from_dict(d).to_dict() == d`` for any record the runner wrote, keys in the same
order except in a failure, whose keys now always come in one order (a resume after the
runner died used to write ``reason`` first). Statuses are :class:`Status`, a ``StrEnum``: a member equals its string, and
JSON, f-strings and HTML show its value. Free-form payloads (parameters, scraps,
versions, git, runner) stay plain dicts.

Keys a type does not know are kept in ``extra`` and written back after the known
ones, so rewriting a record never drops what a newer runner put in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1


class Status(StrEnum):
    """Where a run, a notebook of a run, or one attempt of a run stands."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"
    INTERRUPTED = "interrupted"
    REFUSED = "refused"  # the scrub found a secret: the notebook was not archived
    ABANDONED = "abandoned"  # never written: a run recorded as running whose runner is gone

    @property
    def finished(self) -> bool:
        """The run or notebook has ended (successfully or not)."""
        return self in FINISHED

    @property
    def resumable(self) -> bool:
        """``runbook run --resume`` may continue a run in this status."""
        return self in RESUMABLE


FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.KILLED, Status.INTERRUPTED, Status.REFUSED)
RESUMABLE = (Status.FAILED, Status.KILLED, Status.INTERRUPTED, Status.REFUSED, Status.ABANDONED)


def _known(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name != "extra")


def _extra(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    known = _known(cls)
    return {k: v for k, v in data.items() if k not in known}


def _optional(value: Any, read: Any) -> Any:
    return None if value is None else read(value)


def _status(value: Status | str) -> str:
    """The status as written: a plain string, checked (a field set to ``"failed"`` works too)."""
    return Status(value).value


@dataclass(kw_only=True)
class Failure:
    """Why a notebook, or the run, did not succeed: only what is known.

    A notebook's failure names its failing cell (papermill's error) and/or a ``reason``
    (the kernel died, the run was interrupted, the scrub refused it); the run's failure
    is its failing notebook's, with ``notebook`` added, or only a ``reason``.
    """

    notebook: str | None = None
    cell_index: int | None = None
    execution_count: int | None = None
    ename: str | None = None
    evalue: str | None = None
    first_line: str | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        """False for a failure that names nothing (run.json records it as ``{}``), like that dict."""
        return bool(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Failure":
        return cls(**{k: data.get(k) for k in _known(cls)}, extra=_extra(cls, data))

    def to_dict(self) -> dict[str, Any]:
        """The keys that are known; ``execution_count`` goes with ``cell_index`` (null: the cell had no number yet)."""
        out = {}
        for name in _known(Failure):
            value = getattr(self, name)
            if value is not None or (name == "execution_count" and self.cell_index is not None):
                out[name] = value
        return {**out, **self.extra}

    def in_notebook(self, name: str) -> "Failure":
        """This notebook failure as the run records it: the same, naming the notebook."""
        return replace(self, notebook=name, extra=dict(self.extra))


@dataclass(kw_only=True)
class Cell:
    """One code cell of an executed notebook; ``status`` is papermill's (pending, running, completed, failed)."""

    index: int
    execution_count: int | None = None
    status: str = "pending"
    duration_s: float | None = None
    tags: list[str] = field(default_factory=list)
    first_line: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cell":
        return cls(index=data["index"], execution_count=data.get("execution_count"), status=data.get("status", "pending"),
                   duration_s=data.get("duration_s"), tags=list(data.get("tags", [])), first_line=data.get("first_line", ""),
                   extra=_extra(cls, data))

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "execution_count": self.execution_count, "status": self.status,
                "duration_s": self.duration_s, "tags": list(self.tags), "first_line": self.first_line, **self.extra}


@dataclass(kw_only=True)
class NotebookSummary:
    """What an executed notebook says about itself (papermill's metadata), see ``archive.summarize_notebook``."""

    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    failure: Failure | None = None  # the first failing cell


@dataclass(kw_only=True)
class PreviousAttempt:
    """An earlier attempt of a notebook, set aside by ``--resume`` (its notebook under ``attempts/<n>/``)."""

    attempt: int
    status: Status
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    failure: Failure | None = None
    output: str | None = None  # absent when there was no notebook to keep
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PreviousAttempt":
        return cls(attempt=data.get("attempt"), status=Status(data.get("status")), started_at=data.get("started_at"),
                   ended_at=data.get("ended_at"), duration_s=data.get("duration_s"),
                   failure=_optional(data.get("failure"), Failure.from_dict), output=data.get("output"),
                   extra=_extra(cls, data))

    def to_dict(self) -> dict[str, Any]:
        out = {"attempt": self.attempt, "status": _status(self.status), "started_at": self.started_at,
               "ended_at": self.ended_at, "duration_s": self.duration_s,
               "failure": _optional(self.failure, Failure.to_dict)}
        if self.output is not None:
            out["output"] = self.output
        return {**out, **self.extra}


@dataclass(kw_only=True)
class NotebookEntry:
    """One notebook of a run: its latest attempt, and the earlier ones ``--resume`` set aside."""

    name: str
    input: str  # the source notebook, relative to the repository when inside it
    output: str | None  # its executed copy in the run folder; None when refused or never written
    status: Status = Status.PENDING
    attempt: int = 0
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)  # the ones injected into this notebook
    cells: list[Cell] = field(default_factory=list)
    failure: Failure | None = None
    scraps: dict[str, Any] = field(default_factory=dict)
    previous_attempts: list[PreviousAttempt] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, name: str, input: str) -> "NotebookEntry":
        """A notebook not run yet: ``pending``, attempt 0."""
        return cls(name=name, input=input, output=f"{name}.ipynb")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NotebookEntry":
        return cls(
            name=data["name"], input=data["input"], output=data.get("output"), status=Status(data.get("status", "pending")),
            attempt=data.get("attempt", 0), started_at=data.get("started_at"), ended_at=data.get("ended_at"),
            duration_s=data.get("duration_s"), parameters=dict(data.get("parameters") or {}),
            cells=[Cell.from_dict(c) for c in data.get("cells") or []],
            failure=_optional(data.get("failure"), Failure.from_dict), scraps=dict(data.get("scraps") or {}),
            previous_attempts=[PreviousAttempt.from_dict(p) for p in data.get("previous_attempts") or []],
            extra=_extra(cls, data),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "input": self.input, "output": self.output, "status": _status(self.status),
            "attempt": self.attempt, "started_at": self.started_at, "ended_at": self.ended_at,
            "duration_s": self.duration_s, "parameters": self.parameters, "cells": [c.to_dict() for c in self.cells],
            "failure": _optional(self.failure, Failure.to_dict), "scraps": self.scraps,
            "previous_attempts": [p.to_dict() for p in self.previous_attempts], **self.extra,
        }

    def begin(self, parameters: dict[str, Any], started_at: str) -> None:
        """A new attempt starts: ``running``, with nothing recorded of it yet."""
        self.status = Status.RUNNING
        self.attempt += 1
        self.started_at, self.ended_at, self.duration_s = started_at, None, None
        self.parameters, self.cells, self.failure, self.scraps = parameters, [], None, {}

    def set_aside(self, output: str | None) -> None:
        """Keep the latest attempt as a previous one (its notebook moved to ``output``); ``pending`` again."""
        self.previous_attempts.append(PreviousAttempt(
            attempt=self.attempt, status=self.status, started_at=self.started_at, ended_at=self.ended_at,
            duration_s=self.duration_s, failure=self.failure, output=output))
        self.status, self.output = Status.PENDING, f"{self.name}.ipynb"
        self.failure, self.cells, self.scraps = None, [], {}


@dataclass(kw_only=True)
class Attempt:
    """One ``runbook run`` (or ``--resume``) of the run: when, how it ended, where it resumed."""

    attempt: int
    started_at: str
    ended_at: str | None = None
    status: Status = Status.RUNNING
    resumed_from: str | None = None  # the first notebook it ran, when it continued an earlier attempt
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Attempt":
        return cls(attempt=data["attempt"], started_at=data.get("started_at"), ended_at=data.get("ended_at"),
                   status=Status(data.get("status", "running")), resumed_from=data.get("resumed_from"),
                   extra=_extra(cls, data))

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "started_at": self.started_at, "ended_at": self.ended_at,
                "status": _status(self.status), "resumed_from": self.resumed_from, **self.extra}


@dataclass(kw_only=True)
class RunRecord:
    """The whole of ``run.json``."""

    schema: int = SCHEMA_VERSION
    run_id: str
    deployment: str
    target: str
    status: Status = Status.RUNNING  # as recorded; ``Run.status`` also tells an abandoned run
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    command: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)  # as given (secrets are never parameters)
    secrets: dict[str, str] = field(default_factory=dict)  # name -> source, never a value
    notebooks: list[NotebookEntry] = field(default_factory=list)
    failure: Failure | None = None
    attempts: list[Attempt] = field(default_factory=list)
    versions: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] = field(default_factory=dict)
    runner: dict[str, Any] = field(default_factory=dict)  # {"pid", "host"} of the process running it
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunRecord":
        return cls(
            schema=data.get("schema", SCHEMA_VERSION), run_id=data["run_id"], deployment=data["deployment"],
            target=data["target"], status=Status(data["status"]), started_at=data.get("started_at"),
            ended_at=data.get("ended_at"), duration_s=data.get("duration_s"), command=data.get("command", ""),
            parameters=dict(data.get("parameters") or {}), secrets=dict(data.get("secrets") or {}),
            notebooks=[NotebookEntry.from_dict(n) for n in data.get("notebooks") or []],
            failure=_optional(data.get("failure"), Failure.from_dict),
            attempts=[Attempt.from_dict(a) for a in data.get("attempts") or []],
            versions=dict(data.get("versions") or {}), git=dict(data.get("git") or {}),
            runner=dict(data.get("runner") or {}), extra=_extra(cls, data),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict; free-form values (parameters, versions, ...) are shared, not copied."""
        return {
            "schema": self.schema, "run_id": self.run_id, "deployment": self.deployment, "target": self.target,
            "status": _status(self.status), "started_at": self.started_at, "ended_at": self.ended_at,
            "duration_s": self.duration_s, "command": self.command, "parameters": self.parameters,
            "secrets": self.secrets, "notebooks": [n.to_dict() for n in self.notebooks],
            "failure": _optional(self.failure, Failure.to_dict), "attempts": [a.to_dict() for a in self.attempts],
            "versions": self.versions, "git": self.git, "runner": self.runner, **self.extra,
        }


__all__ = ["Status", "FINISHED", "RESUMABLE", "SCHEMA_VERSION", "Failure", "Cell", "NotebookSummary",
           "PreviousAttempt", "NotebookEntry", "Attempt", "RunRecord"]

"""The typed run record (records/model.py): run.json read and written unchanged, statuses and their transitions."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from eks_hub_runbook.records import archive
from eks_hub_runbook.records.model import (
    FINISHED, RESUMABLE, Attempt, Cell, Failure, NotebookEntry, PreviousAttempt, RunRecord, Status)

REPO = Path(__file__).resolve().parents[1]
REFERENCE_RUNS = sorted((REPO / "outputs" / "reference").glob("*/run.json"))


# -- run.json round trips -------------------------------------------------------------


def test_there_is_a_reference_record():
    assert REFERENCE_RUNS, "outputs/reference/ holds at least one archived run"


@pytest.mark.parametrize("path", REFERENCE_RUNS, ids=lambda p: p.parent.name)
def test_reference_records_round_trip_unchanged(path):
    text = path.read_text()
    data = json.loads(text)
    record = RunRecord.from_dict(data)
    assert record.to_dict() == data
    assert json.dumps(record.to_dict(), indent=2) + "\n" == text, "same keys, same order, same values"
    assert all(isinstance(n, NotebookEntry) and isinstance(n.status, Status) for n in record.notebooks)
    assert all(isinstance(c, Cell) for n in record.notebooks for c in n.cells)
    assert all(isinstance(a, Attempt) for a in record.attempts)


@pytest.mark.parametrize("path", REFERENCE_RUNS, ids=lambda p: p.parent.name)
def test_reference_records_load_as_runs(path):
    run = archive.Run.load(path.parent)
    assert run.status == Status.SUCCEEDED == "succeeded"
    assert run.data == json.loads(path.read_text())
    assert run.notebook(run.notebooks[0].name) == json.loads(path.read_text())["notebooks"][0]


def test_a_workshop_reference_record_shows_each_notebooks_form():
    """The committed record of a presenter's session (runbook lab): six notebooks, each form's screenshot."""
    from eks_hub_runbook.browser import png_size

    workshops = [archive.Run.load(p.parent) for p in REFERENCE_RUNS if json.loads(p.read_text())["command"] == "runbook lab"]
    assert workshops, "outputs/reference/ holds a workshop's record"
    for run in workshops:
        shots = run.record.extra["screenshots"]
        forms = {shot["notebook"] for shot in shots if shot["caption"].endswith(": the form")}
        assert forms == {entry.name for entry in run.notebooks} and len(forms) == 6
        assert all(png_size(run.dir / shot["path"])[0] >= 400 for shot in shots)
        assert {"user-1 login", "user-1 server-options", "user-1 terminal"} <= {shot["caption"] for shot in shots}


# Every failure shape the runner writes: papermill's failing cell, with a reason added when the
# kernel died or the run was interrupted, a reason alone, what a resume writes when the runner
# itself died (its keys in that order), the empty one, and the run's (naming the notebook).
FAILURES = [
    {"cell_index": 3, "execution_count": 3, "ename": "RuntimeError", "evalue": "boom", "first_line": "raise RuntimeError()"},
    {"cell_index": 4, "execution_count": 4, "ename": "DeadKernelError", "evalue": "the kernel died", "first_line": "x = 1",
     "reason": "the kernel died while this cell was running (killed, or out of memory)"},
    {"cell_index": 2, "execution_count": None, "ename": "CellExecutionError", "evalue": "", "first_line": ""},
    {"reason": "refusing to archive secrets.ipynb: a secret value appears in cell 5 (In [5]) output 0"},
    {"reason": "the runner stopped while this notebook was running", "cell_index": 4, "execution_count": 4, "first_line": "y()"},
    {},
    {"notebook": "02_deploy", "cell_index": 3, "execution_count": 3, "ename": "TerraformError", "evalue": "apply", "first_line": "a()"},
    {"notebook": "raises"},
    {"reason": "interrupted"},
]


@pytest.mark.parametrize("data", FAILURES)
def test_failures_round_trip(data):
    assert Failure.from_dict(data).to_dict() == data


def test_failure_keys_come_in_one_order():
    written = Failure.from_dict(FAILURES[4]).to_dict()
    assert list(written) == ["cell_index", "execution_count", "first_line", "reason"]
    assert list(Failure.from_dict(FAILURES[0]).in_notebook("raises").to_dict())[0] == "notebook"


def test_an_empty_failure_is_falsy_like_its_dict():
    assert not Failure() and not Failure.from_dict({}) and Failure(reason="x")
    assert (Failure() or None) is None


def _entry(**changes):
    data = {
        "name": "02_deploy", "input": "runbooks/02_deploy.ipynb", "output": "02_deploy.ipynb", "status": "failed",
        "attempt": 2, "started_at": "2026-01-28T13:45:01.000+00:00", "ended_at": "2026-01-28T13:46:01.000+00:00",
        "duration_s": 60.0, "parameters": {"deployment": "d", "auth": "cognito"},
        "cells": [{"index": 3, "execution_count": 2, "status": "failed", "duration_s": 0.41, "tags": [], "first_line": "plan()"}],
        "failure": FAILURES[1], "scraps": {"cluster_name": "c", "nested": {"a": [1, 2]}},
        "previous_attempts": [
            {"attempt": 1, "status": "killed", "started_at": "a", "ended_at": "b", "duration_s": 1.5, "failure": FAILURES[4],
             "output": "attempts/1/02_deploy.ipynb"},
            {"attempt": 1, "status": "refused", "started_at": "a", "ended_at": None, "duration_s": None, "failure": FAILURES[3]},
        ],
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("data", [
    _entry(),
    _entry(output=None, status="refused", failure=FAILURES[3], scraps={}),
    _entry(status="pending", attempt=0, started_at=None, ended_at=None, duration_s=None, parameters={}, cells=[],
           failure=None, scraps={}, previous_attempts=[]),
    _entry(status="interrupted", failure={}),
], ids=["failed-after-resume", "refused", "pending", "empty-failure"])
def test_notebook_entries_round_trip(data):
    entry = NotebookEntry.from_dict(data)
    assert entry.to_dict() == data
    assert list(entry.to_dict()) == list(data)
    assert [list(p.to_dict()) for p in entry.previous_attempts] == [list(p) for p in data["previous_attempts"]]


def test_a_whole_failed_and_resumed_run_round_trips():
    data = json.loads(REFERENCE_RUNS[0].read_text())
    data["status"] = "failed"
    data["notebooks"][2] = _entry()
    data["failure"] = {"notebook": "02_deploy", **FAILURES[1]}
    data["attempts"].append({"attempt": 2, "started_at": "x", "ended_at": None, "status": "running", "resumed_from": "02_deploy"})
    assert RunRecord.from_dict(data).to_dict() == data


def test_keys_a_type_does_not_know_are_kept():
    data = json.loads(REFERENCE_RUNS[0].read_text())
    data["added_later"] = {"by": "a newer runner"}
    data["notebooks"][0]["added_later"] = 1
    data["notebooks"][0]["cells"][0]["added_later"] = 2
    data["attempts"][0]["added_later"] = 3
    data["notebooks"][0]["failure"] = {"reason": "r", "added_later": 4}
    assert RunRecord.from_dict(data).to_dict() == data


def test_a_new_run_writes_the_run_json_it_always_wrote(tmp_path):
    run = archive.Run.create("fixture-new", [("00_a", tmp_path / "00_a.ipynb"), ("01_b", tmp_path / "01_b.ipynb")],
                             {"deployment": "fixture-new"}, target="sandbox", secret_sources={"oauth_client_secret": "secrets-file"},
                             command="runbook run 00_a 01_b", root=tmp_path / "outputs", run_id="20260101-000000-abcd")
    data = json.loads((run.dir / "run.json").read_text())
    entry = {"input": None, "output": None, "status": "pending", "attempt": 0, "started_at": None, "ended_at": None,
             "duration_s": None, "parameters": {}, "cells": [], "failure": None, "scraps": {}, "previous_attempts": []}
    assert data == {
        "schema": 1, "run_id": "20260101-000000-abcd", "deployment": "fixture-new", "target": "sandbox", "status": "running",
        "started_at": data["started_at"], "ended_at": None, "duration_s": None, "command": "runbook run 00_a 01_b",
        "parameters": {"deployment": "fixture-new"}, "secrets": {"oauth_client_secret": "secrets-file"},
        "notebooks": [{"name": "00_a", **entry, "input": archive.relative(tmp_path / "00_a.ipynb"), "output": "00_a.ipynb"},
                      {"name": "01_b", **entry, "input": archive.relative(tmp_path / "01_b.ipynb"), "output": "01_b.ipynb"}],
        "failure": None, "attempts": [], "versions": {}, "git": {},
        "runner": {"pid": os.getpid(), "host": socket.gethostname()},
    }
    assert list(data) == ["schema", "run_id", "deployment", "target", "status", "started_at", "ended_at", "duration_s",
                          "command", "parameters", "secrets", "notebooks", "failure", "attempts", "versions", "git", "runner"]
    assert list(data["notebooks"][0]) == ["name", *entry]
    assert archive.Run.load(run.dir).data == data


def test_run_data_and_notebook_are_copies_and_entry_is_the_record():
    run = archive.Run.load(REFERENCE_RUNS[0].parent)
    name = run.notebooks[0].name
    run.data["status"] = "failed"
    run.notebook(name)["status"] = "failed"
    assert run.record.status == Status.SUCCEEDED and run.entry(name).status == Status.SUCCEEDED
    run.entry(name).status = Status.FAILED
    assert run.notebook(name)["status"] == "failed"
    with pytest.raises(archive.RunNotFoundError, match="has no notebook 'nope'"):
        run.entry("nope")


def test_a_record_that_is_not_a_run_is_skipped_when_listing(tmp_path):
    folder = tmp_path / "d" / "20260101-000000-abcd"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"schema": 1}))
    with pytest.raises(ValueError, match="is not a run record"):
        archive.Run.load(folder)
    assert list(archive.iter_runs(tmp_path)) == []


# -- statuses and their transitions ---------------------------------------------------------


def test_status_is_its_string():
    assert Status.FAILED == "failed" and Status("killed") is Status.KILLED
    assert f"{Status.REFUSED}" == str(Status.REFUSED) == "refused"
    assert json.dumps({"status": Status.INTERRUPTED}) == '{"status": "interrupted"}'
    assert "failed" in RESUMABLE and Status.FAILED in ("failed", "killed")
    with pytest.raises(ValueError):
        Status("exploded")


def test_which_statuses_are_finished_and_which_can_be_resumed():
    assert {s for s in Status if s.finished} == set(FINISHED) == {"succeeded", "failed", "killed", "interrupted", "refused"}
    assert {s for s in Status if s.resumable} == set(RESUMABLE) == {"failed", "killed", "interrupted", "refused", "abandoned"}
    assert archive.FINISHED == FINISHED and archive.RESUMABLE == RESUMABLE
    assert not Status.RUNNING.finished and not Status.PENDING.resumable and not Status.SUCCEEDED.resumable
    assert Status.ABANDONED.resumable and not Status.ABANDONED.finished


def test_a_notebook_goes_pending_running_finished_and_pending_again_on_resume():
    entry = NotebookEntry.new("02_deploy", "runbooks/02_deploy.ipynb")
    assert (entry.status, entry.attempt, entry.output) == (Status.PENDING, 0, "02_deploy.ipynb")

    entry.begin({"auth": "cognito"}, started_at="t1")
    assert (entry.status, entry.attempt, entry.started_at, entry.parameters) == (Status.RUNNING, 1, "t1", {"auth": "cognito"})
    entry.status, entry.ended_at, entry.duration_s = Status.FAILED, "t2", 1.0
    entry.cells = [Cell(index=3, status="failed")]
    entry.failure = Failure(cell_index=3, execution_count=2, ename="E", evalue="v", first_line="x()")
    entry.scraps = {"a": 1}

    entry.set_aside("attempts/1/02_deploy.ipynb")
    assert entry.status == Status.PENDING and entry.attempt == 1, "the attempt count goes up when it starts again"
    assert (entry.failure, entry.cells, entry.scraps, entry.output) == (None, [], {}, "02_deploy.ipynb")
    assert entry.previous_attempts == [PreviousAttempt(
        attempt=1, status=Status.FAILED, started_at="t1", ended_at="t2", duration_s=1.0,
        failure=Failure(cell_index=3, execution_count=2, ename="E", evalue="v", first_line="x()"),
        output="attempts/1/02_deploy.ipynb")]

    entry.begin({"auth": "cognito"}, started_at="t3")
    assert (entry.status, entry.attempt, entry.ended_at, entry.duration_s, entry.failure) == (Status.RUNNING, 2, None, None, None)
    entry.status = Status.SUCCEEDED
    assert entry.to_dict()["previous_attempts"][0]["status"] == "failed"


def test_a_refused_attempt_set_aside_names_no_output():
    entry = NotebookEntry.from_dict(_entry(output=None, status="refused", failure=FAILURES[3], previous_attempts=[]))
    entry.set_aside(None)
    assert "output" not in entry.to_dict()["previous_attempts"][0]
    assert entry.output == "02_deploy.ipynb", "the next attempt writes the notebook again"


def _run(tmp_path, status: Status, runner: dict) -> archive.Run:
    return archive.Run(tmp_path, RunRecord(run_id="20260101-000000-abcd", deployment="d", target="aws", status=status, runner=runner))


def test_a_running_run_whose_runner_is_gone_is_abandoned(tmp_path):
    here = socket.gethostname()
    assert _run(tmp_path, Status.RUNNING, {"pid": os.getpid(), "host": here}).status == Status.RUNNING
    assert _run(tmp_path, Status.RUNNING, {"pid": 2 ** 22 + 12345, "host": here}).status == Status.ABANDONED
    assert _run(tmp_path, Status.RUNNING, {"pid": 2 ** 22 + 12345, "host": "elsewhere"}).status == Status.RUNNING, \
        "another machine's runner cannot be checked"
    assert _run(tmp_path, Status.FAILED, {"pid": 2 ** 22 + 12345, "host": here}).status == Status.FAILED
    gone = _run(tmp_path, Status.RUNNING, {"pid": 2 ** 22 + 12345, "host": here})
    assert gone.status.resumable and gone.record.to_dict()["status"] == "running", "abandoned is never written"


def test_a_status_set_as_a_plain_string_is_written_and_checked():
    entry = NotebookEntry.new("00_a", "runbooks/00_a.ipynb")
    entry.status = "failed"
    assert entry.to_dict()["status"] == "failed"
    entry.status = "exploded"
    with pytest.raises(ValueError):
        entry.to_dict()

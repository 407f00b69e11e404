"""A workshop's run record: notebooks as JupyterLab saved them, archived as `runbook run` would (issue 14).

The whole path (a Jupyter server found from the kernel, the autosaved copy) runs in
test_workshop.py; here the record itself: statuses and timings from JupyterLab's cell metadata,
a re-run set aside as an earlier attempt, the run's status, screenshots in walkthrough order.
"""

from __future__ import annotations

import json
import re

import pytest

from eks_hub_runbook.records import archive, interactive
from eks_hub_runbook.records.model import Status
from eks_hub_runbook.records.report import screenshots_in_order

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")


def _timing(start: str, end: str | None) -> dict:
    timing = {"iopub.execute_input": start, "iopub.status.busy": start}
    return {**timing, "shell.execute_reply": end, "iopub.status.idle": end} if end else timing


def lab_notebook(*, error: bool = False, skip_middle: bool = False) -> dict:
    """A runbook as JupyterLab saves it mid-run: timings per cell, the archive cell still running."""
    cells = [{"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# 00"}]
    for i, (start, end) in enumerate([("2026-12-03T10:00:00.000Z", "2026-12-03T10:00:01.500Z"),
                                      ("2026-12-03T10:00:02.000Z", "2026-12-03T10:00:05.000Z"),
                                      ("2026-12-03T10:00:06.000Z", None)]):
        ran = not (skip_middle and i == 1)
        outputs = [{"output_type": "error", "ename": "ParameterError", "evalue": "parameter 'confirm': ...",
                    "traceback": []}] if error and i == 1 else []
        cells.append({"cell_type": "code", "id": f"c{i}", "execution_count": i + 1 if ran else None, "outputs": outputs,
                      "metadata": {"execution": _timing(start, end)} if ran else {},
                      "source": ["params = nb.resolve_from(form)", "nb.table(rows)", "nb.archive(form)"][i]})
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.setattr("eks_hub_runbook.records.versions.collect", lambda deployment: {"python": "3.11"})
    return interactive.workshop_run("workshop", "sandbox", "20261203-100000-abcd", server_pid=None)


def test_jupyterlab_cell_timings_become_the_records_timings(tmp_path):
    path = tmp_path / "00.ipynb"
    path.write_text(json.dumps(lab_notebook()))
    summary = archive.summarize_notebook(path)
    assert [(c.index, c.status, c.duration_s) for c in summary.cells] == [(1, "completed", 1.5), (2, "completed", 3.0),
                                                                          (3, "running", None)]
    assert summary.started_at.startswith("2026-12-03T10:00:00") and summary.duration_s == 5.0
    assert summary.failure is None


def test_the_first_notebook_makes_the_sessions_record_with_every_runbook_pending(run):
    assert run.record.command == "runbook lab" and run.record.status == Status.RUNNING
    assert [e.name for e in run.notebooks][:2] == ["00_prerequisites", "01_certificate"] and len(run.notebooks) == 6
    assert all(e.status == Status.PENDING for e in run.notebooks)
    assert interactive.workshop_run("workshop", "sandbox", run.run_id, None).run_id == run.run_id  # found again


def test_a_notebook_is_archived_with_its_cells_and_what_was_given(run):
    entry = interactive.record_notebook(run, "00_prerequisites", lab_notebook(), {"auth": "cognito"})
    assert entry.status == Status.SUCCEEDED and entry.attempt == 1 and entry.parameters == {"auth": "cognito"}
    assert (run.dir / "00_prerequisites.ipynb").is_file() and entry.duration_s == 5.0
    assert run.record.parameters == {"auth": "cognito"} and run.record.status == Status.RUNNING
    saved = json.loads((run.dir / archive.RUN_FILE).read_text())
    assert saved["notebooks"][0]["cells"][1]["duration_s"] == 3.0


def test_an_error_or_a_cell_not_run_fails_the_notebook_and_the_run(run):
    failed = interactive.record_notebook(run, "05_cleanup", lab_notebook(error=True), {})
    assert failed.status == Status.FAILED and failed.failure.ename == "ParameterError" and failed.failure.cell_index == 2
    assert run.record.status == Status.FAILED and run.record.failure.notebook == "05_cleanup"
    skipped = interactive.record_notebook(run, "03_verify", lab_notebook(skip_middle=True), {})
    assert skipped.status == Status.FAILED and "were not run" in skipped.failure.reason


def test_running_a_notebook_again_keeps_the_earlier_attempt(run):
    interactive.record_notebook(run, "05_cleanup", lab_notebook(error=True), {})
    again = interactive.record_notebook(run, "05_cleanup", lab_notebook(), {"confirm": True})
    assert again.attempt == 2 and again.status == Status.SUCCEEDED
    assert again.previous_attempts[0].status == Status.FAILED
    assert (run.dir / again.previous_attempts[0].output).is_file()


def test_all_six_succeeded_is_a_succeeded_run(run):
    for entry in list(run.notebooks):
        interactive.record_notebook(run, entry.name, lab_notebook(), {})
    assert run.record.status == Status.SUCCEEDED and run.record.ended_at and run.record.failure is None


def test_screenshots_are_listed_in_walkthrough_order_in_the_report(run, tmp_path):
    shot = tmp_path / "shot.png"
    shot.write_bytes(PNG)
    interactive.add_screenshots(run, "04_gpu_sharing", [("user-1 login", shot)])
    interactive.add_screenshots(run, "00_prerequisites", [("00_prerequisites: the form", shot)])
    listed = screenshots_in_order(run)
    assert [s["notebook"] for s in listed] == ["00_prerequisites", "04_gpu_sharing"]
    assert all((run.dir / s["path"]).read_bytes() == PNG for s in listed)
    report = (run.dir / "report" / "index.html").read_text()
    assert re.findall(r'<img src="\.\./([^"]+)"', report) == [s["path"] for s in listed]
    assert archive.Run.load(run.dir).record.extra["screenshots"] == run.record.extra["screenshots"]


def test_outside_jupyterlab_nothing_is_archived(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_OUTPUTS_DIR", str(tmp_path))
    assert interactive.this_notebook() is None  # pytest is no kernel
    assert interactive.archive_notebook("workshop", "sandbox", {}) is None
    assert list(tmp_path.iterdir()) == []

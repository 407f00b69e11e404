"""Phases of a spawn (spawn_phases.py): marks to durations, per-phase percentiles, the floor.

The watch itself runs against the sandbox in tests/test_loadtest.py (four users at once)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from eks_hub_runbook import spawn_phases
from eks_hub_runbook.spawn_phases import Floor, phase_durations

MARKS = {"requested": 0.0, "created": 0.4, "scheduled": 5.6, "pulled": 7.1, "started": 7.3, "answered": 9.0}


def test_marks_become_the_five_phases_in_order():
    durations = phase_durations(MARKS)
    assert list(durations) == list(spawn_phases.PHASE_NAMES)
    assert durations == pytest.approx({"hub queue": 0.4, "node wait": 5.2, "image pull": 1.5, "process start": 0.2,
                                       "server answering": 1.7})
    assert sum(durations.values()) == pytest.approx(MARKS["answered"])
    assert spawn_phases.ordered(MARKS)


def test_a_mark_that_arrived_late_counts_as_reached_with_the_one_before():
    late = {**MARKS, "pulled": 5.0}  # the Pulled event came through the watch after the binding
    durations = phase_durations(late)
    assert durations["image pull"] == 0.0 and durations["process start"] == pytest.approx(7.3 - 5.6)
    assert sum(durations.values()) == pytest.approx(MARKS["answered"])
    assert not spawn_phases.ordered(late)


def test_a_fact_from_the_other_watch_that_came_late_is_dated_no_later_than_what_it_precedes():
    """CI: the pods watch showed load-001 running before the events watch brought its Pulled event."""
    now = [0.0]
    watch = spawn_phases.SpawnWatch(None, "ns", "app=user", "user", clock=lambda: now[0])
    pending = {"metadata": {"name": "p", "labels": {"user": "u"}}, "spec": {}, "status": {}}
    scheduled = {**pending, "spec": {"nodeName": "n"}}
    running = {**scheduled, "status": {"containerStatuses": [{"state": {"running": {}}}]}}
    for at, pod in ((1.0, pending), (2.0, scheduled), (4.05, running)):
        now[0] = at
        watch._pod(pod)
    now[0] = 4.07  # the Pulled event, through the events watch, after the pod was seen running
    watch._event({"involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{c}"}, "reason": "Pulled",
                  "message": "Successfully pulled image"})
    marks, fresh = watch.marks("u", 0.0)
    assert marks == {"created": 1.0, "scheduled": 2.0, "started": 4.05, "pulled": 4.05} and fresh == 1
    assert spawn_phases.ordered({**marks, "requested": 0.0, "answered": 5.0})


def test_a_missing_mark_leaves_its_phases_unknown():
    partial = {k: v for k, v in MARKS.items() if k != "pulled"}
    durations = phase_durations(partial)
    assert durations["image pull"] is None and durations["process start"] is None
    assert durations["hub queue"] == pytest.approx(0.4) and durations["server answering"] == pytest.approx(1.7)
    assert not spawn_phases.ordered(partial)


def test_phase_rows_give_percentiles_and_shares():
    users = [phase_durations({**MARKS, "answered": 9.0 + i}) for i in range(5)]
    rows = {row["phase"]: row for row in spawn_phases.phase_rows(users)}
    assert list(rows) == list(spawn_phases.PHASE_NAMES)
    assert rows["server answering"]["p50 (s)"] == pytest.approx(3.7) and rows["server answering"]["max (s)"] == pytest.approx(5.7)
    assert rows["node wait"]["users"] == 5 and rows["node wait"]["p95 (s)"] == pytest.approx(5.2)
    assert sum(int(row["share"].rstrip("%")) for row in rows.values()) in (99, 100, 101)


def test_the_floor_is_the_waits_plus_the_servers_cpu_over_the_cores():
    floor = Floor(users=50, cores=2, cpu_per_server_s=1.2, node_launch_s=5.0, image_pull_s=3.0)
    assert floor.seconds == pytest.approx(5 + 3 + 1.2 * 50 / 2)
    assert floor.as_dict()["floor_s"] == 38.0
    assert Floor(users=4, cores=4, cpu_per_server_s=1.0).seconds == 1.0


def test_process_cpu_seconds_reads_a_live_process():
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend=time.process_time()+0.3\nwhile time.process_time()<end: pass\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while (spawn_phases.process_cpu_seconds(busy.pid) or 0) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 0.25 <= spawn_phases.process_cpu_seconds(busy.pid) < 5
    finally:
        busy.kill()
        busy.wait()
    assert spawn_phases.process_cpu_seconds(busy.pid) is None
    assert spawn_phases.cores() == len(os.sched_getaffinity(0))

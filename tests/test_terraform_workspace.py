"""The deployment's Terraform working folder: a state file a killed terraform left broken is recovered."""

from __future__ import annotations

import json

from eks_hub_runbook.terraform import workspace

STATE = {"version": 4, "terraform_version": "1.11.4", "serial": 7, "resources": []}


def test_a_good_state_or_none_is_left_alone(tmp_path):
    assert workspace.recover_state(tmp_path) == ""
    (tmp_path / workspace.STATE_FILE).write_text(json.dumps(STATE))
    assert workspace.recover_state(tmp_path) == ""
    assert workspace.load_state(tmp_path / workspace.STATE_FILE) == STATE


def test_a_state_left_empty_by_a_kill_gets_the_backup_and_is_kept_aside(tmp_path):
    (tmp_path / workspace.STATE_FILE).write_text("")
    (tmp_path / workspace.STATE_BACKUP).write_text(json.dumps({**STATE, "serial": 6}))
    note = workspace.recover_state(tmp_path)
    assert "restored" in note and workspace.STATE_BROKEN in note
    assert workspace.load_state(tmp_path / workspace.STATE_FILE)["serial"] == 6
    assert (tmp_path / workspace.STATE_BROKEN).read_text() == ""
    assert workspace.recover_state(tmp_path) == ""  # once recovered, nothing more to do


def test_a_state_cut_short_without_a_backup_is_moved_aside(tmp_path):
    (tmp_path / workspace.STATE_FILE).write_text(json.dumps(STATE)[:40])
    note = workspace.recover_state(tmp_path)
    assert "no backup" in note
    assert not (tmp_path / workspace.STATE_FILE).exists()
    assert workspace.load_state(tmp_path / workspace.STATE_BROKEN) is None

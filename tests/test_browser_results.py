"""browser.results: the walkthrough's result objects and its error (no browser needed)."""

from __future__ import annotations

import json
from pathlib import Path

from eks_hub_runbook.browser.results import BrowserError, Profile, StepResult, UserJourney, Walkthrough
from eks_hub_runbook.errors import HubError

PROFILE = Profile("gpu-time-slicing", "Data Science (GPU + Time-Slicing - G5)")


def _walkthrough(out: Path) -> Walkthrough:
    first = UserJourney("user-1", PROFILE, profiles_seen=["A", "B"], listing={"/home/jovyan": [".bashrc", "x"],
                                                                              "/home/shared": []},
                        mounts={"/home/jovyan": "fs-1.efs.us-west-2.amazonaws.com:/"})
    first.steps = [StepResult("user-1", "login", 1.24, out / "1-user-1-01-login.png", "dummy login form"),
                   StepResult("user-1", "terminal", 2.06, out / "1-user-1-02-terminal.png")]
    second = UserJourney("user-2", PROFILE, restarted=True)
    second.steps = [StepResult("user-2", "login", 0.5, out / "2-user-2-01-login.png")]
    return Walkthrough("http://127.0.0.1:8000", "dummy", PROFILE, [first, second], out)


def test_screenshots_are_captioned_in_journey_order(tmp_path):
    result = _walkthrough(tmp_path)
    assert result.screenshots == [("user-1 login", tmp_path / "1-user-1-01-login.png"),
                                  ("user-1 terminal", tmp_path / "1-user-1-02-terminal.png"),
                                  ("user-2 login", tmp_path / "2-user-2-01-login.png")]


def test_rows_one_per_user_and_step(tmp_path):
    rows = _walkthrough(tmp_path).rows()
    assert rows[0] == {"user": "user-1", "step": "login", "seconds": 1.2, "detail": "dummy login form",
                       "screenshot": "1-user-1-01-login.png"}
    assert [r["user"] for r in rows] == ["user-1", "user-1", "user-2"]


def test_listing_rows_say_when_a_folder_is_empty(tmp_path):
    assert _walkthrough(tmp_path).listing_rows() == [
        {"user": "user-1", "folder": "/home/jovyan", "mounted from": "fs-1.efs.us-west-2.amazonaws.com:/",
         "entries": ".bashrc, x"},
        {"user": "user-1", "folder": "/home/shared", "mounted from": "(not a mount)", "entries": "(empty)"},
    ]


def test_the_record_is_json_with_file_names_only(tmp_path):
    record = _walkthrough(tmp_path).as_record()
    assert json.loads(json.dumps(record)) == record
    assert (record["hub_url"], record["auth"], record["profile"]) == ("http://127.0.0.1:8000", "dummy", "gpu-time-slicing")
    first, second = record["users"]
    assert first["seconds"] == 3.3 and first["profiles_seen"] == ["A", "B"] and not first["restarted"]
    assert first["steps"][1] == {"step": "terminal", "seconds": 2.1, "detail": "", "screenshot": "1-user-1-02-terminal.png"}
    assert second["restarted"] and str(tmp_path) not in json.dumps(record)


def test_the_table_is_a_dataframe_of_the_rows(tmp_path):
    result = _walkthrough(tmp_path)
    assert result.table().to_dict("records") == result.rows()


def test_a_journey_s_time_is_the_sum_of_its_steps():
    journey = UserJourney("user-1", PROFILE)
    assert journey.seconds == 0
    journey.steps = [StepResult("user-1", "a", 1.5, Path("a.png")), StepResult("user-1", "b", 2.0, Path("b.png"))]
    assert journey.seconds == 3.5


def test_the_error_names_the_user_the_step_and_the_screenshot(tmp_path):
    shot = tmp_path / "1-user-1-02-server-options-FAILED.png"
    error = BrowserError("user-1", "server-options", "the page lacks 1 profile(s)", shot)
    assert isinstance(error, HubError)
    assert (error.user, error.step, error.problem, error.screenshot) == ("user-1", "server-options",
                                                                        "the page lacks 1 profile(s)", shot)
    assert str(error) == f"browser walkthrough, user-1, step 'server-options': the page lacks 1 profile(s); " \
                         f"screenshot of the page: {shot}"
    assert str(BrowserError("user-2", "login", "gone", None)) == "browser walkthrough, user-2, step 'login': gone"

"""notebook/validation.py: the options' types and ranges, a deployment that is not here (with the ones
that are), what a cleanup leaves, and a profile the deployment does not offer."""

from __future__ import annotations

import pytest

from eks_hub_runbook import records
from eks_hub_runbook.errors import ParameterError
from eks_hub_runbook.notebook import validation as v

# The aws target: these checks need no sandbox (tests/test_product_alone.py runs them without it).
LATER = {"target": "aws", "deployment": "jupyterhub-on-eks", "region": "", "auth": "", "interactive": False}
RECORD = {"target": "aws", "deployment": "hub-a", "region": "us-west-2", "auth": "dummy", "profiles": ["gpu-time-slicing"]}


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    """A private, empty state folder."""
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def _deployed(name: str, **record) -> None:
    records.remember(name, v.RECORDED, {**RECORD, "deployment": name, **record})


def _cleaned_up(name: str) -> None:
    """What 05_cleanup leaves: the deployment's records forgotten, its emptied record file."""
    _deployed(name)
    records.forget(name)


def _validate(values: dict, notebook: str = "03"):
    deletes = notebook == "05"
    deployment = values.get("deployment", LATER["deployment"])
    return v.validate({**LATER, **values}, declared=[*LATER, *values], given=list(values),
                      record=dict(records.recall(deployment, v.RECORDED) or {}), from_record=True,
                      confirm_action="05_cleanup deletes the deployment" if deletes else None)


@pytest.mark.parametrize(("name", "value", "problem", "fix"), [
    ("timeout_minutes", 0, "0 is out of range", "from 1 to 240"),
    ("timeout_minutes", 10000, "10000 is out of range", "from 1 to 240"),
    ("timeout_minutes", "soon", "'soon' is not a whole number", "-p timeout_minutes 30"),
    ("timeout_minutes", True, "True is not a whole number", "-p timeout_minutes"),
    ("validity_days", "ten", "'ten' is not a whole number", "-p validity_days"),
    ("keep_servers", "maybe", "'maybe' is not a boolean", "True or False"),
    ("mig", "perhaps", "'perhaps' is not a boolean", "True or False"),
    ("plan_only", "yes please", "'yes please' is not a boolean", "True or False"),
    ("profile", "gpu-x", "'gpu-x' is not one of", "gpu-time-slicing"),
    ("profile", "", "is empty", "gpu-time-slicing"),
])
def test_an_option_of_the_wrong_type_or_out_of_range_names_itself_and_the_fix(name, value, problem, fix):
    with pytest.raises(ParameterError) as error:
        v.convert_option(name, value)
    assert error.value.parameter == name and problem in error.value.problem
    assert fix in error.value.fix


def test_options_in_range_are_converted():
    assert v.convert_option("timeout_minutes", "30") == 30 and v.convert_option("timeout_minutes", 240) == 240
    assert v.convert_option("mig", "yes") is True and v.convert_option("profile", " gpu-mig ") == "gpu-mig"


def test_the_deployments_here_are_those_02_recorded_in_this_state_folder(state):
    assert v.deployments_here() == []
    _deployed("hub-b")
    _deployed("hub-a")
    _cleaned_up("hub-c")
    (state / "deployments" / "half").mkdir()
    assert v.deployments_here() == ["hub-a", "hub-b"]
    assert v.left_here("hub-c") and v.left_here("hub-a") and not v.left_here("half") and not v.left_here("never")


def test_a_lock_file_alone_is_not_a_deployment(state):
    folder = state / "deployments" / "locked"
    folder.mkdir(parents=True)
    (folder / "deployment.lock").write_text("pid 1")
    (folder / ".run.lock").write_text("pid 1")
    assert not v.left_here("locked")
    (folder / "terraform-sandbox").mkdir()  # 02_deploy started, then stopped before recording
    assert v.left_here("locked")


def test_a_notebook_after_02_on_a_deployment_never_deployed_names_the_ones_here(state):
    with pytest.raises(ParameterError) as error:
        _validate({"deployment": "hub-x"})
    assert [e.parameter for e in error.value.errors] == ["deployment"]
    assert error.value.problem == "no deployment named 'hub-x'; deployments here: none: run 02_deploy first"
    assert "run 02_deploy -p deployment hub-x first" in error.value.fix and str(state) in error.value.fix
    _deployed("hub-a")
    _deployed("hub-b")
    with pytest.raises(ParameterError) as error:
        _validate({"deployment": "hub-x"})
    assert error.value.problem == "no deployment named 'hub-x'; deployments here: hub-a, hub-b"
    assert "one of: hub-a, hub-b" in error.value.fix
    assert not (state / "deployments" / "hub-x").exists(), "a refused name leaves no folder behind"
    assert _validate({"deployment": "hub-a"}).params.deployment == "hub-a"


def test_every_bad_parameter_at_once_with_the_missing_deployment(state):
    with pytest.raises(ParameterError) as error:
        _validate({"deployment": "hub-x", "region": "nowhere", "timeout_minutes": "soon", "keep_servers": "maybe"}, "04")
    assert sorted(e.parameter for e in error.value.errors) == ["deployment", "keep_servers", "region", "timeout_minutes"]
    assert str(error.value).count("Fix:") == 4


def test_a_bad_deployment_name_is_one_error_not_two():
    with pytest.raises(ParameterError) as error:
        _validate({"deployment": "My_Hub"})
    assert [e.parameter for e in error.value.errors] == ["deployment"] and "is not a valid name" in error.value.problem


def test_a_deployment_02_did_not_finish_says_so():
    _cleaned_up("hub-c")
    with pytest.raises(ParameterError) as error:
        _validate({"deployment": "hub-c"}, "04")
    assert error.value.problem.startswith("02_deploy has no record of deployment 'hub-c' here")
    assert "runbook run --resume" in error.value.fix


def test_cleanup_refuses_a_name_never_deployed_and_takes_one_already_cleaned_up():
    with pytest.raises(ParameterError) as error:
        _validate({"deployment": "hub-x", "confirm": True}, "05")
    assert error.value.parameter == "deployment" and "no deployment named 'hub-x'" in error.value.problem
    _cleaned_up("hub-c")
    validated = _validate({"deployment": "hub-c", "confirm": True}, "05")
    assert validated.params.deployment == "hub-c" and validated.options.confirm is True


def test_without_a_record_to_check_against_the_check_is_left_to_the_run():
    """``record=None``: an earlier notebook of the run records it (runbook run 02 03)."""
    validated = v.validate({**LATER, "deployment": "hub-x"}, declared=list(LATER), given=["deployment"], record=None,
                           from_record=True)
    assert validated.params.deployment == "hub-x"


def test_the_profile_must_be_one_the_deployment_offers():
    _deployed("hub-a")  # offers gpu-time-slicing only
    with pytest.raises(ParameterError) as error:
        _validate({"deployment": "hub-a", "profile": "gpu-mig"}, "04")
    assert error.value.parameter == "profile" and "does not offer 'gpu-mig'" in error.value.problem
    assert "-p profiles" in error.value.fix
    assert _validate({"deployment": "hub-a", "profile": "gpu-time-slicing"}, "04").options.profile == "gpu-time-slicing"
    _deployed("hub-all", profiles=[])  # empty: all of them
    assert _validate({"deployment": "hub-all", "profile": "gpu-mig"}, "04").options.profile == "gpu-mig"

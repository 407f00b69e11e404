"""browser.profile_list: the profiles the server-options page must list, read from the z2jh values."""

from __future__ import annotations

import pytest

from eks_hub_runbook.browser import profile_list as hub_profiles
from eks_hub_runbook.browser.results import Profile
from eks_hub_runbook.errors import RunbookError
from eks_hub_runbook.platform import templating, values


def test_profiles_come_from_the_hub_values():
    found = hub_profiles.profiles()
    assert len(found) == 7
    assert Profile("gpu-time-slicing", "Data Science (GPU + Time-Slicing - G5)") in found


def test_the_base_values_file_is_the_platform_s():
    assert hub_profiles.BASE_VALUES == values.jupyterhub_files("dummy", "port-forward")[0]
    listed = templating.load_yaml(hub_profiles.BASE_VALUES)["singleuser"]["profileList"]
    assert [(p.slug, p.display_name) for p in hub_profiles.profiles()] == [(p["slug"], p["display_name"]) for p in listed]


def test_profiles_of_another_values_file(tmp_path):
    file = tmp_path / "values.yaml"
    file.write_text("singleuser:\n  profileList:\n    - {slug: a, display_name: A, description: x}\n")
    assert hub_profiles.profiles(file) == [Profile("a", "A")]
    assert hub_profiles.profiles(str(file)) == [Profile("a", "A")]


@pytest.mark.parametrize("text", ["", "hub: {}\n", "singleuser:\n", "singleuser:\n  profileList:\n"])
def test_values_without_profiles_offer_none(tmp_path, text):
    file = tmp_path / "values.yaml"
    file.write_text(text)
    assert hub_profiles.profiles(file) == []


def test_an_unreadable_values_file_names_the_file_and_the_cause(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(RunbookError) as failure:
        hub_profiles.profiles(missing)
    assert type(failure.value) is RunbookError
    assert str(failure.value).startswith(f"cannot read the hub's profiles from {missing}: [Errno 2] ")
    assert isinstance(failure.value.__cause__, OSError)


def test_a_broken_values_file_is_refused(tmp_path):
    import yaml

    broken = tmp_path / "broken.yaml"
    broken.write_text("singleuser: [unclosed\n")
    with pytest.raises(RunbookError, match="cannot read the hub's profiles from .*broken.yaml: ") as failure:
        hub_profiles.profiles(broken)
    assert isinstance(failure.value.__cause__, yaml.YAMLError)


def test_a_profile_is_found_by_slug_or_display_name():
    offered = [Profile("cpu", "CPU"), Profile("gpu-time-slicing", "GPU (time-slicing)")]
    assert hub_profiles.find_profile("gpu-time-slicing", offered) is offered[1]
    assert hub_profiles.find_profile("CPU", offered) is offered[0]


def test_an_unknown_profile_names_the_slugs():
    offered = [Profile("cpu", "CPU"), Profile("gpu", "GPU")]
    with pytest.raises(RunbookError) as failure:
        hub_profiles.find_profile("qpu", offered)
    assert str(failure.value) == ("profile 'qpu' is not one of the hub's profiles (cpu, gpu); "
                                  "pass a slug or a display name")
    with pytest.raises(RunbookError, match=r"\(none\)"):
        hub_profiles.find_profile("qpu", [])


def test_the_default_profile_is_offered():
    assert hub_profiles.TIME_SLICING_PROFILE in [p.slug for p in hub_profiles.profiles()]

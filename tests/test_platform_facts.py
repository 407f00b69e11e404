"""The platform's configuration as the checks read it: names and constants come from the
manifests and values files, so renaming one there changes what 03/04 expect."""

from __future__ import annotations

from eks_hub_runbook import gpu_sharing, verify
from eks_hub_runbook.platform import facts


def test_what_the_walkthrough_expects_is_what_the_files_define():
    assert facts.nodepools() == ("cpu", "gpu-ts", "gpu-mig", "gpu-p4d", "trn1", "inf2")
    assert facts.nodeclasses() == ("cpu", "accelerated")
    assert facts.storage_classes() == {"gp3": "ebs.csi.aws.com", "efs-sc": "efs.csi.aws.com"}
    assert facts.claims() == ("efs-persist", "efs-persist-shared", "hub-db-dir")
    assert facts.device_plugin_config_map() == ("nvidia-device-plugin", "nvidia-device-plugin-config")
    assert facts.default_device_plugin_config() == "time-slicing"
    assert facts.time_slicing_replicas() == 4
    assert facts.default_profile() == "gpu-time-slicing"


def test_the_checks_use_them():
    assert verify.EXPECTED_POOLS == facts.nodepools() and verify.TIME_SLICING_REPLICAS == facts.time_slicing_replicas()
    assert set(verify.EXPECTED_PVCS) == set(facts.claims()) and all(verify.EXPECTED_PVCS.values())
    assert gpu_sharing.DEFAULT_PROFILE == facts.default_profile()


def test_a_profile_list_must_mark_one_default(tmp_path):
    import pytest

    values = tmp_path / "values.yaml"
    values.write_text("singleuser:\n  profileList:\n    - {slug: a, display_name: A}\n    - {slug: b, display_name: B}\n")
    assert [p["slug"] for p in facts.profile_list(values)] == ["a", "b"]
    facts.default_profile.cache_clear()
    original = facts.profile_list
    try:
        facts.profile_list = lambda values_file=values: original(values)
        with pytest.raises(ValueError, match="mark one profile default"):
            facts.default_profile()
    finally:
        facts.profile_list = original
        facts.default_profile.cache_clear()

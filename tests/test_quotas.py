"""EC2 vCPU quotas compared with what the chosen profiles need."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from eks_hub_runbook.aws import quotas
from eks_hub_runbook.params import resolve


def test_needs_core_plus_one_node_per_family():
    params = resolve(target="aws", profiles="gpu-time-slicing,data-engineering,elyra")
    needs = quotas.needs(params)
    assert needs["standard"] == (12, ["core node group", "data-engineering", "elyra"])
    assert needs["g"] == (8, ["gpu-time-slicing"])
    assert "p" not in needs and "trn" not in needs


def test_all_profiles_when_none_chosen():
    needs = quotas.needs(resolve(target="aws"))
    assert set(needs) == {"standard", "g", "p", "trn", "inf"}
    assert needs["p"][0] == 96
    assert "g5.2xlarge" in quotas.instance_types(resolve(target="aws"))


def _stubbed(applied: dict[str, float], defaults: dict[str, float] | None = None, denied: bool = False):
    sq = boto3.client("service-quotas", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(sq)
    for quota in quotas.QUOTAS.values():
        if denied:
            stub.add_client_error("get_service_quota", "AccessDeniedException")
            continue
        if quota.code in applied:
            stub.add_response("get_service_quota", {"Quota": {"Value": applied[quota.code]}},
                              {"ServiceCode": "ec2", "QuotaCode": quota.code})
        else:
            stub.add_client_error("get_service_quota", "NoSuchResourceException")
            if defaults and quota.code in defaults:
                stub.add_response("get_aws_default_service_quota", {"Quota": {"Value": defaults[quota.code]}},
                                  {"ServiceCode": "ec2", "QuotaCode": quota.code})
            else:
                stub.add_client_error("get_aws_default_service_quota", "NoSuchResourceException")
    stub.activate()
    return sq


def test_applied_values_pass_fail_warn(monkeypatch):
    sq = _stubbed({"L-1216C47A": 64, "L-DB2E81BA": 4, "L-417A185B": 0, "L-2C3B7624": 8, "L-1945791B": 0})
    monkeypatch.setattr(quotas, "client", lambda *a, **k: sq)
    rows = {r["family"]: r for r in quotas.rows(resolve(target="aws"))}
    assert rows["standard"]["status"] == "pass" and rows["standard"]["source"] == "applied"
    assert rows["g"]["status"] == "fail"  # the demo's time-slicing profile cannot start on 4 vCPUs
    assert rows["p"]["status"] == "warn"
    assert rows["trn"]["status"] == "pass"
    assert "--quota-code L-DB2E81BA --desired-value 8" in quotas.increase_hint(rows["g"])


def test_aws_default_when_not_applied(monkeypatch):
    sq = _stubbed({}, defaults={q.code: 128 for q in quotas.QUOTAS.values()})
    monkeypatch.setattr(quotas, "client", lambda *a, **k: sq)
    rows = quotas.rows(resolve(target="aws"))
    assert {r["source"] for r in rows} == {"AWS default"}
    assert {r["status"] for r in rows} == {"pass"}


def test_access_denied_falls_back_to_documented_default(monkeypatch):
    sq = _stubbed({}, denied=True)
    monkeypatch.setattr(quotas, "client", lambda *a, **k: sq)
    rows = quotas.rows(resolve(target="aws"))
    assert all(r["status"] == "info" and "not allowed" in r["source"] for r in rows)


@pytest.mark.sandbox
def test_sandbox_has_no_quota_data_and_never_fails(aws_sandbox):
    rows = {r["family"]: r for r in quotas.rows(resolve(target="sandbox"))}
    assert rows["g"]["limit (vCPU)"] == 0 and rows["g"]["status"] == "info"
    assert rows["standard"]["limit (vCPU)"] == 5
    assert "sandbox has no quota data" in rows["standard"]["source"]


def test_profile_nodes_match_the_platforms_profiles_and_pools(terraform_outputs, state_dir, offline_kubespawner):
    """The quota table's node per profile is the smallest instance type the profile's pod fits on
    in the rendered NodePools (so quotas and platform cannot drift apart)."""
    from test_platform_profiles import build_pod

    from eks_hub_runbook.platform import hubconfig, manifests, scheduling, values

    p = resolve(target="aws")
    hub_values = hubconfig.effective_values(values.jupyterhub_values(p, terraform_outputs))
    rendered = manifests.render(p, terraform_outputs)
    pools = [o for o in rendered["karpenter"] if o["kind"] == "NodePool"]
    config_map = next(o for o in rendered["base"] if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "nvidia-device-plugin-config")
    default = values.release_values("helm-values/nvidia-device-plugin.yaml", p, terraform_outputs)["config"]["default"]
    slugs = [profile["slug"] for profile in hub_values["singleuser"]["profileList"]]
    assert sorted(slugs) == sorted(quotas.PROFILE_NODES)
    for slug in slugs:
        pod = build_pod(offline_kubespawner, hub_values, {"profile": slug})
        placement = scheduling.placement(pod, pools, config_map["data"], default)
        (pool,) = placement.pools
        assert placement.fits[pool][0] == quotas.PROFILE_NODES[slug].instance_type, slug

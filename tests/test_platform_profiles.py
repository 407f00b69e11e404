"""Every profile of the hub, built into a pod by the real KubeSpawner (no cluster), is a valid
Kubernetes pod and schedulable on exactly the NodePool it is meant for. A profile no pool
can run fails here (as the blueprint's time-slicing profile did, selecting a NodePool it no longer
creates, and its MIG profile, selecting a label no node carries with requests but no limits)."""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace

import kubernetes_validate
import pytest
from kubernetes_asyncio.client import ApiClient

from eks_hub_runbook import params as runbook_params
from eks_hub_runbook.platform import hubconfig, manifests, scheduling, templating, values

KUBERNETES_VERSION = "1.33.0"
# slug -> the NodePool the profile is for
INTENDED_POOL = {
    "data-engineering": "cpu",
    "elyra": "cpu",
    "trainium": "trn1",
    "inferentia": "inf2",
    "gpu-time-slicing": "gpu-ts",
    "gpu-mig": "gpu-mig",
    "gpu-p4d": "gpu-p4d",
}

# Rendering registers secrets and writes values files: keep both in the session's state folder.
pytestmark = pytest.mark.usefixtures("state_dir")


@pytest.fixture(scope="module")
def hub_values(terraform_outputs, state_dir):
    return hubconfig.effective_values(values.jupyterhub_values(runbook_params.resolve(target="aws"), terraform_outputs))


@pytest.fixture(scope="module")
def cluster(terraform_outputs, state_dir):
    """NodePools, the device plugin's configs and its default config, as rendered for the cluster."""
    p = runbook_params.resolve(target="aws")
    rendered = manifests.render(p, terraform_outputs)
    pools = [o for o in rendered["karpenter"] if o["kind"] == "NodePool"]
    config_map = next(o for o in rendered["base"] if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "nvidia-device-plugin-config")
    default = values.release_values("helm-values/nvidia-device-plugin.yaml", p, terraform_outputs)["config"]["default"]
    return SimpleNamespace(pools=pools, configs=config_map["data"], default=default)


def profile_cases(hub_values):
    """(slug, user_options) for every profile and every choice of its profile options."""
    cases = []
    for profile in hub_values["singleuser"]["profileList"]:
        options = profile.get("profile_options") or {}
        cases.append((profile["slug"], {"profile": profile["slug"]}))
        for option, spec in options.items():
            for choice in spec.get("choices", {}):
                cases.append((profile["slug"], {"profile": profile["slug"], option: choice}))
    return cases


def build_pod(spawner_class, hub_values, user_options, username="user-1") -> dict:
    """The pod KubeSpawner would create for ``username`` with ``user_options``, as API JSON."""
    config = hubconfig.spawner_config(hub_values)
    user = SimpleNamespace(name=username, id=1, url=f"/user/{username}/")

    async def make():
        spawner = spawner_class(config=config, _mock=True, user=user)
        spawner.user_options = user_options
        await spawner.load_user_options()
        return ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())

    return asyncio.run(make())


def assert_schedulable_on(pod, pool_name, cluster):
    """The pod fits ``pool_name`` and no other pool."""
    placement = scheduling.placement(pod, cluster.pools, cluster.configs, cluster.default)
    assert placement.pools == [pool_name], (
        f"pod fits pools {placement.pools}, expected exactly [{pool_name}]; refusals: {placement.refusals}"
    )
    return placement


def test_profiles_are_the_walkthroughs_with_stable_slugs(hub_values):
    profiles = hub_values["singleuser"]["profileList"]
    assert [p["slug"] for p in profiles] == list(INTENDED_POOL)
    assert [p["slug"] for p in profiles if p.get("default")] == ["gpu-time-slicing"]
    assert {p["display_name"] for p in profiles} >= {"Data Science (GPU + Time-Slicing - G5)", "Elyra (CPU)",
                                                     "Data Engineering (CPU)", "Trainium (trn1)", "Inferentia (inf2)"}
    assert len(profiles[0]["profile_options"]["image"]["choices"]) >= 2


def test_every_nodepool_serves_a_profile(cluster):
    assert {p["metadata"]["name"] for p in cluster.pools} == set(INTENDED_POOL.values())


def test_every_profile_case_is_a_valid_pod_on_exactly_its_pool(hub_values, cluster, offline_kubespawner):
    """Loops over all profile/option combinations (derived from the values file, so a new
    profile is checked without touching this test)."""
    cases = profile_cases(hub_values)
    assert len(cases) >= len(INTENDED_POOL)
    for slug, options in cases:
        pod = build_pod(offline_kubespawner, hub_values, options)
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        assert slug in INTENDED_POOL, f"profile {slug} has no intended pool: add it to INTENDED_POOL"
        assert_schedulable_on(pod, INTENDED_POOL[slug], cluster)


@pytest.mark.parametrize("slug", list(INTENDED_POOL))
def test_profile_pod_details(slug, hub_values, cluster, offline_kubespawner):
    pod = build_pod(offline_kubespawner, hub_values, {"profile": slug})
    spec = pod["spec"]
    container = spec["containers"][0]
    assert spec["serviceAccountName"] == "jupyterhub-singleuser"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/home/jovyan"]["subPath"] == "user-1"
    assert "subPath" not in mounts["/home/shared"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    assert claims[mounts["/home/jovyan"]["name"]] == "efs-persist"
    assert claims[mounts["/home/shared"]["name"]] == "efs-persist-shared"
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    for resource in set(limits) | set(requests):
        if "/" in resource:  # extended resources: requests AND limits, equal (a request alone cannot schedule)
            assert limits.get(resource) == requests.get(resource), resource
    assert spec["nodeSelector"] == {"node-pool": INTENDED_POOL[slug]}


def test_image_choice_reaches_the_pod(hub_values, offline_kubespawner):
    pyspark = build_pod(offline_kubespawner, hub_values, {"profile": "data-engineering"})
    all_spark = build_pod(offline_kubespawner, hub_values, {"profile": "data-engineering", "image": "all-spark"})
    assert "pyspark-notebook" in pyspark["spec"]["containers"][0]["image"]
    assert "all-spark-notebook" in all_spark["spec"]["containers"][0]["image"]


def test_g5_time_slicing_node_shares_one_gpu_four_ways(hub_values, cluster, offline_kubespawner):
    """The walkthrough: g5.2xlarge shows nvidia.com/gpu: 4, and two users fit on it (four do)."""
    pool = next(p for p in cluster.pools if p["metadata"]["name"] == "gpu-ts")
    smallest = scheduling.candidates(pool, cluster.configs, cluster.default)[0]
    assert smallest.instance_type == "g5.2xlarge"
    assert smallest.allocatable["nvidia.com/gpu"] == 4
    pod = build_pod(offline_kubespawner, hub_values, {"profile": "gpu-time-slicing"})
    requests = scheduling.pod_requests(pod)
    for resource, amount in requests.items():  # next to the node's daemonsets
        assert 4 * amount <= smallest.available.get(resource, 0), resource
    assert scheduling.placement(pod, cluster.pools, cluster.configs, cluster.default).fits["gpu-ts"][0] == "g5.2xlarge"


def test_mig_and_full_p4d_advertise_what_their_profiles_request(cluster):
    pools = {p["metadata"]["name"]: p for p in cluster.pools}
    mig = scheduling.candidates(pools["gpu-mig"], cluster.configs, cluster.default)[0]
    full = scheduling.candidates(pools["gpu-p4d"], cluster.configs, cluster.default)[0]
    assert mig.allocatable["nvidia.com/mig-1g.5gb"] == 56 and "nvidia.com/gpu" not in mig.allocatable
    assert full.allocatable["nvidia.com/gpu"] == 8


def broken(hub_values, slug, **override):
    broken_values = copy.deepcopy(hub_values)
    profile = next(p for p in broken_values["singleuser"]["profileList"] if p["slug"] == slug)
    profile["kubespawner_override"] = templating.deep_merge(profile["kubespawner_override"], override)
    return broken_values


@pytest.mark.parametrize("slug, override, why", [
    # the blueprint's time-slicing profile: selects a pool (gpu-ts label) that no NodePool creates
    ("gpu-time-slicing", {"node_selector": {"node-pool": "gpu-ts-old"}}, "nodeSelector"),
    # the blueprint's MIG profile: a node label no node carries
    ("gpu-mig", {"node_selector": {"node-pool": "gpu-mig", "nvidia.com/mig.strategy": "single"}}, "nodeSelector"),
    # no toleration for the GPU taint
    ("gpu-time-slicing", {"tolerations": []}, "taint nvidia.com/gpu"),
    # more than the largest instance of the pool
    ("elyra", {"cpu_guarantee": 64}, "cpu"),
    ("gpu-p4d", {"extra_resource_guarantees": {"nvidia.com/gpu": "16"}, "extra_resource_limits": {"nvidia.com/gpu": "16"}},
     "nvidia.com/gpu"),
])
def test_a_profile_no_pool_can_run_fails_the_check(slug, override, why, hub_values, cluster, offline_kubespawner):
    pod = build_pod(offline_kubespawner, broken(hub_values, slug, **override), {"profile": slug})
    with pytest.raises(AssertionError, match=why):
        assert_schedulable_on(pod, INTENDED_POOL[slug], cluster)


def test_a_profile_that_fits_two_pools_fails_the_check(hub_values, cluster, offline_kubespawner):
    """Without its nodeSelector a CPU profile could land on any pool that tolerates it: not exact."""
    values_without_selector = broken(hub_values, "elyra", node_selector=None)
    values_without_selector["singleuser"]["profileList"][1]["kubespawner_override"]["tolerations"] = [
        {"operator": "Exists"}]
    pod = build_pod(offline_kubespawner, values_without_selector, {"profile": "elyra"})
    with pytest.raises(AssertionError, match="expected exactly"):
        assert_schedulable_on(pod, "cpu", cluster)

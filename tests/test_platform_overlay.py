"""The time-slicing NodeOverlay, the NodeOverlay feature gate and the GPU pools' capacity types:
every figure read from the configuration (NodePools, device plugin config, instance catalog),
none retyped, and spot an opt-in (``gpu_spot``) of the GPU pools only."""

from __future__ import annotations

import dataclasses

import pytest

from eks_hub_runbook import instance_types
from eks_hub_runbook.errors import PlatformError
from eks_hub_runbook.platform import facts, manifests, values

# Rendering registers secrets and writes values files: keep both in the session's state folder.
pytestmark = pytest.mark.usefixtures("state_dir")
CAPACITY_TYPE = "karpenter.sh/capacity-type"


def _karpenter(params, outputs) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in manifests.render_group("karpenter", params, outputs)}


def _requirement(obj: dict, key: str) -> list[str]:
    spec = obj["spec"]["template"]["spec"] if obj["kind"] == "NodePool" else obj["spec"]
    (values_,) = [r["values"] for r in spec["requirements"] if r["key"] == key]
    return values_


def _is_nvidia(pool: dict) -> bool:
    return pool["spec"]["template"]["metadata"]["labels"].get("accelerator") == "nvidia"


def test_the_overlay_declares_gpus_times_replicas_for_the_time_slicing_pool(deployment_params, terraform_outputs):
    objects = _karpenter(deployment_params["dummy"], terraform_outputs)
    overlays = [o for (kind, _), o in objects.items() if kind == "NodeOverlay"]
    assert len(overlays) == 1
    overlay = overlays[0]
    pool = objects[("NodePool", _requirement(overlay, "karpenter.sh/nodepool")[0])]
    labels = pool["spec"]["template"]["metadata"]["labels"]
    assert _requirement(overlay, "nvidia.com/device-plugin.config") == [labels["nvidia.com/device-plugin.config"]]
    types = _requirement(overlay, "node.kubernetes.io/instance-type")
    assert types == _requirement(pool, "node.kubernetes.io/instance-type")
    replicas = facts.replicas_of(labels["nvidia.com/device-plugin.config"])
    assert replicas == facts.time_slicing_replicas() == 4  # the walkthrough's figure, from the ConfigMap
    for name in types:
        assert int(overlay["spec"]["capacity"]["nvidia.com/gpu"]) == instance_types.get(name).gpus * replicas
    assert set(overlay["spec"]["capacity"]) == {"nvidia.com/gpu"}  # extended resources only, as the CRD demands


def test_the_overlay_follows_the_replicas_of_the_device_plugin_config(monkeypatch):
    monkeypatch.setattr(facts, "replicas_of", lambda config: 8 if config == "time-slicing" else 1)
    assert manifests.time_slicing_overlay()["time_slicing_gpus"] == "8"


def test_a_time_slicing_pool_mixing_gpu_counts_is_refused_with_the_fix(monkeypatch):
    pools = facts.nodepool_objects()
    ts = next(p for p in pools if p["metadata"]["name"] in facts.time_slicing_pools())
    for requirement in ts["spec"]["template"]["spec"]["requirements"]:
        if requirement["key"] == "node.kubernetes.io/instance-type":
            requirement["values"] = [*requirement["values"], "g5.12xlarge"]  # 4 A10Gs
    assert instance_types.get("g5.12xlarge").gpus == 4
    monkeypatch.setattr(facts, "nodepool_objects", lambda: pools)
    with pytest.raises(PlatformError, match="different GPU counts.*same GPU count"):
        manifests.time_slicing_overlay()


def test_karpenter_values_turn_the_node_overlay_gate_on(deployment_params, terraform_outputs):
    rendered = values.release_values("helm-values/karpenter.yaml", deployment_params["dummy"], terraform_outputs)
    assert rendered["settings"]["featureGates"] == {"nodeOverlay": True}


@pytest.mark.parametrize("spot, expected", [(False, ["on-demand"]), (True, ["spot", "on-demand"])])
def test_gpu_pools_are_on_demand_unless_gpu_spot(deployment_params, terraform_outputs, spot, expected):
    params = dataclasses.replace(deployment_params["dummy"], gpu_spot=spot)
    pools = [o for (kind, _), o in _karpenter(params, terraform_outputs).items() if kind == "NodePool"]
    nvidia = [p for p in pools if _is_nvidia(p)]
    assert {p["metadata"]["name"] for p in nvidia} >= {"gpu-ts", "gpu-mig", "gpu-p4d"}
    for pool in nvidia:
        assert _requirement(pool, CAPACITY_TYPE) == expected, pool["metadata"]["name"]
    for pool in pools:
        if not _is_nvidia(pool):  # CPU and Neuron pools: on-demand either way
            assert _requirement(pool, CAPACITY_TYPE) == ["on-demand"], pool["metadata"]["name"]

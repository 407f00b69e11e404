"""The GPUs' identity in the sandbox (kube/gpus.py, the device plugin's devices and labels, the
kubelet's device manager): stable UUIDs per node, GPU feature discovery's labels, what each
container gets in NVIDIA_VISIBLE_DEVICES, and the real GPUs of a machine with ``nvidia-smi``
(a fake one on PATH here: no GPU in CI)."""

from __future__ import annotations

import re
import stat

import pytest

from eks_hub_runbook import instance_types
from eks_hub_sandbox.kube import gpus
from eks_hub_sandbox.kube.controllers.device_plugins import node_devices, nvidia_devices, nvidia_resources
from eks_hub_sandbox.kube.controllers.kubelet.devices import DeviceManager, DevicesUnavailable, device_env, requested

UUID = re.compile(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MIG_UUID = re.compile(r"^MIG-(GPU-[0-9a-f-]{36})/\d+/0$")
TIME_SLICING = {"version": "v1", "sharing": {"timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}}
MIG_MIXED = {"version": "v1", "flags": {"migStrategy": "mixed"}}
G5, P4D = instance_types.get("g5.2xlarge"), instance_types.get("p4d.24xlarge")
H100_CSV = "0, GPU-0f6a1c3e-6d2b-8a4e-1b7c-9d3e5f7a9b1c, NVIDIA H100 80GB HBM3, 81559\n"
NO_GPUS: list = []  # ``real=[]``: as on a machine without nvidia-smi


def _node(name: str, instance: str, labels=None, provider: str | None = None) -> dict:
    node = {"metadata": {"name": name, "labels": {"node.kubernetes.io/instance-type": instance, **(labels or {})}},
            "spec": {}}
    if provider:
        node["spec"]["providerID"] = provider
    return node


def _plugin_configmap(data: dict[str, str]) -> dict:
    return {"metadata": {"name": "nvidia-device-plugin-config", "namespace": "nvidia-device-plugin"}, "data": data}


@pytest.fixture
def fake_nvidia_smi(tmp_path, monkeypatch):
    """A fake ``nvidia-smi`` first on PATH that prints what one H100 machine prints."""
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\n"
                      'case "$*" in\n'
                      f'  *--query-gpu=*) printf "{H100_CSV}" ;;\n'
                      '  *-L*) echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0f6a1c3e-6d2b-8a4e-1b7c-9d3e5f7a9b1c)" ;;\n'
                      '  *) exit 9 ;;\n'
                      "esac\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    gpus._query.cache_clear()
    yield script
    gpus._query.cache_clear()


# --------------------------------------------------------------------------- UUIDs and labels


def test_each_gpu_has_a_stable_uuid_of_its_own_node():
    devices, _ = nvidia_devices(P4D, {}, {}, "aws:///us-west-2a/i-0abc", real=NO_GPUS)
    uuids = [d.visible for d in devices["nvidia.com/gpu"]]
    assert len(uuids) == len(set(uuids)) == 8 and all(UUID.match(u) and u.startswith("GPU-") for u in uuids)
    again, _ = nvidia_devices(P4D, {}, {}, "aws:///us-west-2a/i-0abc", real=NO_GPUS)
    assert [d.visible for d in again["nvidia.com/gpu"]] == uuids  # stable: derived from the instance
    other, _ = nvidia_devices(P4D, {}, {}, "aws:///us-west-2a/i-0def", real=NO_GPUS)
    assert not set(uuids) & {d.visible for d in other["nvidia.com/gpu"]}
    provider = _node("ip-10-0-1-5", "p4d.24xlarge", provider="aws:///us-west-2a/i-0abc")
    assert gpus.node_seed(provider) == "aws:///us-west-2a/i-0abc" and gpus.node_seed(_node("n", "g5.2xlarge")) == "n"


def test_time_slicing_replicas_are_one_physical_gpu_and_gfd_marks_it_shared():
    devices, labels = nvidia_devices(G5, TIME_SLICING, {}, "n1", real=NO_GPUS)
    replicas = devices["nvidia.com/gpu"]
    assert len(replicas) == 4 and len({d.id for d in replicas}) == 4
    assert len({d.visible for d in replicas}) == 1 and replicas[0].id == f"{replicas[0].visible}::0"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A10G-SHARED"
    assert (labels["nvidia.com/gpu.count"], labels["nvidia.com/gpu.replicas"]) == ("1", "4")
    assert nvidia_devices(G5, {}, {}, "n1", real=NO_GPUS)[1]["nvidia.com/gpu.product"] == "NVIDIA-A10G"
    renamed = {"sharing": {"timeSlicing": {"renameByDefault": True, "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}}
    resources, labels = nvidia_resources(G5, renamed, {}, real=NO_GPUS)
    assert resources == {"nvidia.com/gpu.shared": 4} and labels["nvidia.com/gpu.product"] == "NVIDIA-A10G"


def test_mig_slices_have_their_own_uuids_on_their_parent_gpu_and_the_mig_labels():
    devices, labels = nvidia_devices(P4D, MIG_MIXED, {"nvidia.com/mig.config": "all-1g.5gb"}, "n2", real=NO_GPUS)
    slices = devices["nvidia.com/mig-1g.5gb"]
    assert len(slices) == 56 and len({d.visible for d in slices}) == 56
    assert all(MIG_UUID.match(d.visible).group(1) == d.gpu.uuid for d in slices)  # the parent in the UUID
    assert {d.gpu.uuid for d in slices[:7]} == {slices[0].gpu.uuid} and slices[7].gpu.index == 1
    assert labels["nvidia.com/mig-1g.5gb.count"] == "56" and labels["nvidia.com/mig.config.state"] == "success"
    assert labels["nvidia.com/mig.strategy"] == "mixed" and labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-40GB"
    assert "nvidia.com/mig-2g.10gb.count" not in labels


def test_node_devices_read_the_nodes_config_label():
    configmaps = [_plugin_configmap({"time-slicing": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n"
                                                     "    - name: nvidia.com/gpu\n      replicas: 4\n",
                                     "mig-mixed": "version: v1\nflags:\n  migStrategy: mixed\n"}),
                  {"metadata": {"name": "unrelated"}, "data": {"default": "version: v1\n"}}]
    g5 = _node("g5-node", "g5.2xlarge", {"nvidia.com/device-plugin.config": "time-slicing"})
    p4d = _node("p4d-node", "p4d.24xlarge", {"nvidia.com/device-plugin.config": "mig-mixed",
                                            "nvidia.com/mig.config": "all-1g.5gb"})
    assert {k: len(v) for k, v in node_devices(g5, configmaps).items()} == {"nvidia.com/gpu": 4}
    assert {k: len(v) for k, v in node_devices(p4d, configmaps).items()} == {"nvidia.com/mig-1g.5gb": 56}
    assert node_devices(_node("cpu", "m5.xlarge"), configmaps) == {}


# --------------------------------------------------------------------------- allocation


def test_two_pods_on_a_time_sliced_gpu_get_the_same_uuid_and_free_it_when_they_go():
    available, _ = nvidia_devices(G5, TIME_SLICING, {}, "n1", real=NO_GPUS)
    manager = DeviceManager()
    notebook = {"name": "notebook", "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"cpu": "1"}}}
    first = manager.allocate("n1", "pod-1", notebook, available)
    second = manager.allocate("n1", "pod-2", notebook, available)
    assert first[0].id != second[0].id and device_env(first) == device_env(second) == {
        "NVIDIA_VISIBLE_DEVICES": available["nvidia.com/gpu"][0].visible}
    assert manager.allocate("n1", "pod-1", notebook, available) == first  # a restarted container keeps its device
    manager.allocate("n1", "pod-3", notebook, available)
    manager.allocate("n1", "pod-4", notebook, available)
    with pytest.raises(DevicesUnavailable, match="nvidia.com/gpu: 1 requested, 0 of 4 free on n1"):
        manager.allocate("n1", "pod-5", notebook, available)
    manager.release("pod-2")
    assert manager.allocate("n1", "pod-5", notebook, available)[0].id == second[0].id
    assert device_env([]) == {} and requested({"name": "sidecar"}) == {}


def test_replicas_spread_over_the_gpus_of_a_node_as_the_plugin_prefers():
    available, _ = nvidia_devices(P4D, TIME_SLICING, {}, "n3", real=NO_GPUS)
    manager = DeviceManager()
    notebook = {"name": "nb", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
    got = [manager.allocate("n3", f"pod-{i}", notebook, available)[0] for i in range(9)]
    assert [d.gpu.index for d in got] == [0, 1, 2, 3, 4, 5, 6, 7, 0]


def test_two_mig_pods_get_different_slices_of_one_gpu():
    available, _ = nvidia_devices(P4D, MIG_MIXED, {"nvidia.com/mig.config": "all-1g.5gb"}, "n2", real=NO_GPUS)
    manager = DeviceManager()
    notebook = {"name": "nb", "resources": {"limits": {"nvidia.com/mig-1g.5gb": "1"}}}
    one, two = (manager.allocate("n2", pod, notebook, available)[0] for pod in ("a", "b"))
    assert one.visible != two.visible and one.gpu.uuid == two.gpu.uuid
    assert device_env([one])["NVIDIA_VISIBLE_DEVICES"].startswith("MIG-") and "CUDA_VISIBLE_DEVICES" not in device_env([one])
    whole = {"name": "nb", "resources": {"limits": {"nvidia.com/gpu": "2"}}}
    with pytest.raises(DevicesUnavailable, match="nvidia.com/gpu: 2 requested, 0 of 0 free"):
        manager.allocate("n2", "c", whole, available)


# --------------------------------------------------------------------------- a machine with a GPU


def test_parse_query_reads_nvidia_smis_csv():
    text = H100_CSV + "1, GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, NVIDIA A10G, 23028 MiB\n\nNo devices were found\n"
    parsed = gpus.parse_query(text)
    assert [(g.index, g.name, g.memory_mib, g.real) for g in parsed] == [
        (0, "NVIDIA H100 80GB HBM3", 81559, True), (1, "NVIDIA A10G", 23028, True)]


def test_without_nvidia_smi_nothing_changes(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpus.real_gpus() == []
    devices, labels = nvidia_devices(G5, TIME_SLICING, {}, "n1")
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A10G-SHARED" and not devices["nvidia.com/gpu"][0].gpu.real


def test_a_machine_with_nvidia_smi_advertises_its_real_gpus(fake_nvidia_smi):
    assert [(g.uuid, g.real) for g in gpus.real_gpus()] == [("GPU-0f6a1c3e-6d2b-8a4e-1b7c-9d3e5f7a9b1c", True)]
    node = _node("g5-node", "g5.2xlarge", {"nvidia.com/device-plugin.config": "time-slicing"})
    configmaps = [_plugin_configmap({"time-slicing": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n"
                                                     "    - name: nvidia.com/gpu\n      replicas: 4\n"})]
    available = node_devices(node, configmaps)
    assert len(available["nvidia.com/gpu"]) == 4  # real GPUs x replicas
    _, labels = nvidia_devices(G5, TIME_SLICING, {}, "g5-node")
    assert (labels["nvidia.com/gpu.product"], labels["nvidia.com/gpu.memory"]) == ("NVIDIA-H100-80GB-HBM3-SHARED", "81559")
    manager = DeviceManager()
    notebook = {"name": "notebook", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
    envs = [device_env(manager.allocate("g5-node", pod, notebook, available)) for pod in ("user-1", "user-2")]
    assert envs == [{"NVIDIA_VISIBLE_DEVICES": "GPU-0f6a1c3e-6d2b-8a4e-1b7c-9d3e5f7a9b1c", "CUDA_VISIBLE_DEVICES": "0"}] * 2
    devices = manager.assigned["g5-node"]["user-1"]["notebook"]
    present = {"nvidiactl", "nvidia-uvm", "nvidia0", "nvidia1"}
    assert gpus.device_files(devices, exists=present.__contains__) == ["nvidiactl", "nvidia-uvm", "nvidia0"]
    # MIG nodes stay emulated: partitioning the real GPU would need its reset
    mig, _ = nvidia_devices(P4D, MIG_MIXED, {"nvidia.com/mig.config": "all-1g.5gb"}, "p4d-node")
    assert len(mig["nvidia.com/mig-1g.5gb"]) == 56 and not mig["nvidia.com/mig-1g.5gb"][0].gpu.real
    assert gpus.device_files(mig["nvidia.com/mig-1g.5gb"][:1], exists=present.__contains__) == []


def test_a_failing_nvidia_smi_keeps_the_gpus_emulated(tmp_path, monkeypatch):
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2\nexit 9\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    gpus._query.cache_clear()
    try:
        assert gpus.real_gpus() == []
    finally:
        gpus._query.cache_clear()


def test_gpu_check_says_clearly_that_it_needs_a_gpu(monkeypatch, tmp_path, capsys):
    from eks_hub_sandbox import gpu_check

    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu_check.main() == 2
    assert "no NVIDIA GPU here (nvidia-smi is not on PATH)" in capsys.readouterr().err


def test_gpu_check_uses_the_platforms_device_plugin_config_and_a_time_sliced_node():
    from eks_hub_sandbox import gpu_check

    configmap = gpu_check._device_plugin_configmap()
    available = node_devices(gpu_check._node(), [configmap])
    assert len(available["nvidia.com/gpu"]) == 4 and configmap["metadata"]["namespace"] == "nvidia-device-plugin"
    pod = gpu_check._pod("user-1")
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    compile(gpu_check.HOLD, "hold", "exec")  # the CUDA holder is valid Python

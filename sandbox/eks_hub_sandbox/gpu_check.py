"""``make gpu-check`` (``python -m eks_hub_sandbox.gpu_check``): the sandbox on a machine with an
NVIDIA GPU, end to end, printing what it saw.

In a private state folder it starts the cluster emulator (nothing else), installs the
platform's device-plugin configuration, adds a time-sliced g5.2xlarge node and starts two
"users'" pods on it that each hold a CUDA context (libcuda through ctypes: no framework
needed). It prints ``nvidia-smi -L``, the node's advertised GPUs (``nvidia.com/gpu`` = real
GPUs x replicas, GPU feature discovery's labels), each pod's ``NVIDIA_VISIBLE_DEVICES`` /
``CUDA_VISIBLE_DEVICES`` and ``nvidia-smi -L`` from inside it, and ``nvidia-smi``'s compute
processes with the pod each belongs to. Exits 0 when both pods got the one real GPU, 1 when
something did not hold, 2 without a GPU (``nvidia-smi`` not on PATH). Not part of CI (no GPU).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

NAMESPACE = "gpu-check"
NODE = "ip-10-9-7-7.us-west-2.compute.internal"
USERS = ("user-1", "user-2")
USER_VARIABLE = "GPU_CHECK_USER"
HOLD_SECONDS = 300
# A process that keeps a CUDA context open on the GPU CUDA_VISIBLE_DEVICES names (device 0 of what it sees).
HOLD = """
import ctypes, sys, time
cuda = ctypes.CDLL("libcuda.so.1")
status = cuda.cuInit(0)
if status: sys.exit(f"cuInit failed: CUDA error {status}")
device, context = ctypes.c_int(), ctypes.c_void_p()
status = cuda.cuDeviceGet(ctypes.byref(device), 0) or cuda.cuCtxCreate_v2(ctypes.byref(context), 0, device)
if status: sys.exit(f"no CUDA context: CUDA error {status}")
print("holding a CUDA context", flush=True)
time.sleep(%d)
""" % HOLD_SECONDS
IDENTITY = ["sh", "-c", 'echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES";'
                        " nvidia-smi -L"]
QUERY_APPS = ["nvidia-smi", "--query-compute-apps=pid,used_memory,gpu_uuid", "--format=csv,noheader"]


def section(title: str, text: str = "") -> None:
    """Print one titled block of what was seen."""
    print(f"\n== {title}")
    if text:
        print(text.rstrip())


def _run(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return result.stdout + (f"\n(exit {result.returncode}) {result.stderr.strip()}" if result.returncode else "")


def _device_plugin_configmap() -> dict:
    """The platform's NVIDIA device-plugin ConfigMap (its configs as the manifests define them)."""
    from eks_hub_runbook.platform import facts

    namespace, name = facts.device_plugin_config_map()
    return {"metadata": {"name": name, "namespace": namespace},
            "data": {key: yaml.safe_dump(config) for key, config in facts.device_plugin_configs().items()}}


def _node() -> dict:
    from eks_hub_runbook import instance_types

    g5 = instance_types.get("g5.2xlarge")
    resources = {"cpu": str(g5.vcpu), "memory": f"{g5.memory_gib}Gi", "pods": str(g5.max_pods)}
    return {"metadata": {"name": NODE, "labels": {
        **g5.labels(), "kubernetes.io/hostname": NODE, "node-pool": "gpu-ts",
        "nvidia.com/device-plugin.config": "time-slicing"}},
        "spec": {"providerID": "aws:///us-west-2a/i-0gpucheck"},
        "status": {"capacity": resources, "allocatable": resources,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                   "addresses": [{"type": "InternalIP", "address": "10.9.7.7"}]}}


def _pod(user: str) -> dict:
    return {"metadata": {"name": f"jupyter-{user}", "labels": {"app": "gpu-check"}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "notebook", "image": "python:3.11", "command": ["python3", "-c", HOLD],
                "env": [{"name": USER_VARIABLE, "value": user}],
                "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}


def _owner(pid: int) -> str:
    """The user of the pod a host process belongs to (its environment), or why not known."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError as exc:
        return f"unknown ({exc.strerror})"
    found = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(USER_VARIABLE.encode() + b"=")]
    return found[0] if found else "not a gpu-check pod"


def check(api) -> int:
    """Run the check on a started emulator (``api``: its ApiClient); the exit status."""
    from kubernetes import client

    from eks_hub_runbook import kube

    core = client.CoreV1Api(api)
    configmap = _device_plugin_configmap()
    core.create_namespace({"metadata": {"name": configmap["metadata"]["namespace"]}})
    core.create_namespaced_config_map(configmap["metadata"]["namespace"], configmap)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    core.create_node(_node())
    node = kube.wait_for(lambda: (lambda n: n if (n["status"].get("allocatable") or {}).get("nvidia.com/gpu") else None)(
        kube.node(api, NODE)), "the device plugin to advertise the GPUs", timeout=60, interval=0.5)
    labels = {k: v for k, v in node["metadata"]["labels"].items() if k.startswith("nvidia.com/")}
    section("the node's advertised GPUs", f"nvidia.com/gpu: capacity {node['status']['capacity'].get('nvidia.com/gpu')}, "
            f"allocatable {node['status']['allocatable'].get('nvidia.com/gpu')}\n"
            + "\n".join(f"{k}={v}" for k, v in sorted(labels.items())))
    for user in USERS:
        core.create_namespaced_pod(NAMESPACE, _pod(user))
    kube.wait_for(lambda: all(p["status"] == "Running" for p in kube.pods(api, NAMESPACE)) and len(kube.pods(api, NAMESPACE)) == 2,
                  "both pods running", timeout=120, interval=0.5)
    seen = {}
    for user in USERS:
        code, out, err = kube.exec_in_pod(api, NAMESPACE, f"jupyter-{user}", IDENTITY)
        section(f"inside {user}'s pod (exit {code})", out + err)
        seen[user] = out.split("NVIDIA_VISIBLE_DEVICES=", 1)[-1].split()[0] if "NVIDIA_VISIBLE_DEVICES=" in out else ""
    time.sleep(5)  # the contexts are made
    host = subprocess.run(QUERY_APPS, capture_output=True, text=True, timeout=60).stdout
    lines = [line for line in host.splitlines() if line.strip()]
    section("nvidia-smi --query-compute-apps on the machine (pid, memory, GPU -> pod)",
            "\n".join(f"{line}  -> {_owner(int(line.split(',')[0]))}" for line in lines if line.split(",")[0].isdigit())
            or "(none)")
    code, out, err = kube.exec_in_pod(api, NAMESPACE, f"jupyter-{USERS[0]}", QUERY_APPS)
    section(f"the same from inside {USERS[0]}'s pod (exit {code})", out + err or "(none)")
    owners = {_owner(int(line.split(",")[0])) for line in lines if line.split(",")[0].isdigit()}
    real = {g.strip().split(",")[1].strip() for g in _run(["nvidia-smi", "--query-gpu=index,uuid", "--format=csv,noheader"]).splitlines()
            if "," in g}
    problems = []
    if len(set(seen.values())) != 1 or not set(seen.values()) <= real:
        problems.append(f"the pods did not both get one real GPU: {seen} (real: {sorted(real)})")
    if not set(USERS) <= owners:
        problems.append(f"nvidia-smi does not list both pods' processes: {sorted(owners) or 'none'}")
    section("result", "\n".join(problems) or f"both pods share the real GPU {next(iter(seen.values()))}")
    return 1 if problems else 0


def main() -> int:
    """Check the real-GPU path on this machine; the exit status (2: no GPU here)."""
    if not shutil.which("nvidia-smi"):
        print("gpu-check: no NVIDIA GPU here (nvidia-smi is not on PATH). Run it on a machine with an NVIDIA GPU "
              "and its driver; without one the sandbox emulates the GPUs and this check has nothing to show.",
              file=sys.stderr)
        return 2
    section("nvidia-smi -L", _run(["nvidia-smi", "-L"]))
    import eks_hub_sandbox as sandbox
    from eks_hub_runbook import environment, kube
    from eks_hub_sandbox import services

    state = tempfile.mkdtemp(prefix="runbook-gpu-check-")
    with environment.exported({"RUNBOOK_STATE_DIR": state, "RUNBOOK_SANDBOX_NODE_DELAY": "0.5",
                               "RUNBOOK_SANDBOX_PULL_DELAY": "0.5"}):
        try:
            sandbox.up(only=("kube",))
            return check(kube.load_client(sandbox.kubeconfig_path()))
        finally:
            services.stop("kube")
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

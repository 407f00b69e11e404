"""The GPUs of a node and the devices the NVIDIA device plugin makes of them.

A GPU node's physical GPUs are either *emulated* (the instance catalog's count and model,
each with a UUID derived from the node: ``GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``, stable
for the node's life) or, on a machine where ``nvidia-smi`` is on PATH, the machine's *real*
GPUs (their own UUIDs, names and memory, from ``nvidia-smi --query-gpu``); every GPU node of
the sandbox then shares them, as the only GPUs there are.

A *device* is what the plugin advertises and the kubelet allocates (``ListAndWatch`` /
``Allocate``): a whole GPU, one time-slicing replica of it (``<uuid>::<n>``: every replica of a
GPU is that GPU), or a MIG slice (``MIG-<GPU UUID>/<gi>/<ci>``). ``visible`` is what the
plugin puts in ``NVIDIA_VISIBLE_DEVICES`` for a container that got it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

QUERY = ["--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"]
# The device files a container that got a real GPU needs (as the NVIDIA container toolkit
# injects them); per GPU: /dev/nvidia<index>.
CONTROL_DEVICES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")


@dataclass(frozen=True)
class Gpu:
    """One physical GPU of a node."""

    index: int
    uuid: str
    name: str  # as nvidia-smi names it: "NVIDIA A10G"
    memory_mib: int
    real: bool = False


@dataclass(frozen=True)
class Device:
    """One allocatable device of an extended resource (``nvidia.com/gpu``, ``nvidia.com/mig-1g.5gb``)."""

    id: str  # the plugin's device ID: a UUID, or "<uuid>::<replica>" under time-slicing
    resource: str
    visible: str  # NVIDIA_VISIBLE_DEVICES for it: the GPU's or the MIG device's UUID
    gpu: Gpu  # the physical GPU it lives on
    profile: str = ""  # MIG profile ("1g.5gb"), empty for a whole GPU


def uuid_like(prefix: str, seed: str) -> str:
    """A UUID in NVIDIA's form (``GPU-`` / ``MIG-`` + 8-4-4-4-12 hex digits) derived from ``seed``."""
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return f"{prefix}-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def node_seed(node: dict) -> str:
    """What a node's emulated GPU UUIDs derive from: its instance (``spec.providerID``), else its name."""
    return (node.get("spec") or {}).get("providerID") or node["metadata"]["name"]


def emulated_gpus(seed: str, count: int, name: str, memory_mib: int) -> list[Gpu]:
    """``count`` GPUs of model ``name`` with UUIDs derived from ``seed`` (index by index)."""
    return [Gpu(i, uuid_like("GPU", f"{seed}/gpu/{i}"), name, memory_mib) for i in range(count)]


def mig_uuid(gpu: Gpu, slot: int) -> str:
    """The UUID of the ``slot``-th MIG device on ``gpu``, in the driver's long form
    ``MIG-<GPU UUID>/<GPU instance>/<compute instance>`` (drivers before R470 print it; every
    driver and the container toolkit take it): the parent GPU can be read from it, as
    ``nvidia-smi -L`` would tell where the image has it."""
    return f"MIG-{gpu.uuid}/{slot}/0"


def parse_query(text: str) -> list[Gpu]:
    """``nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader[,nounits]`` as GPUs."""
    gpus = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4 or not fields[0].isdigit():
            continue
        memory = fields[3].split()[0] if fields[3] else "0"
        gpus.append(Gpu(int(fields[0]), fields[1], fields[2], int(memory) if memory.isdigit() else 0, real=True))
    return gpus


@functools.lru_cache(maxsize=4)
def _query(executable: str) -> tuple[Gpu, ...]:
    try:
        result = subprocess.run([executable, *QUERY], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("nvidia-smi (%s) did not answer: %s; GPUs stay emulated", executable, exc)
        return ()
    if result.returncode != 0:
        log.warning("nvidia-smi (%s) failed (%d): %s; GPUs stay emulated", executable, result.returncode,
                    result.stderr.strip()[:300])
        return ()
    gpus = tuple(parse_query(result.stdout))
    log.info("real GPUs (nvidia-smi): %s", ", ".join(f"{g.index}: {g.name} {g.uuid}" for g in gpus) or "none")
    return gpus


def real_gpus() -> list[Gpu]:
    """The machine's NVIDIA GPUs when ``nvidia-smi`` is on PATH and lists some; else ``[]``."""
    executable = shutil.which("nvidia-smi")
    return list(_query(executable)) if executable else []


def product_label(name: str) -> str:
    """GPU feature discovery's ``nvidia.com/gpu.product`` for a GPU name ("NVIDIA A10G" -> "NVIDIA-A10G")."""
    return "-".join(name.split())


def device_files(devices: list[Device], exists=None) -> list[str]:
    """The ``/dev`` entries (names under /dev) a container with ``devices`` needs: none for
    emulated GPUs; the control files and ``nvidia<index>`` of each real GPU that this machine has."""
    import os

    exists = exists or (lambda name: os.path.exists(f"/dev/{name}"))
    real = sorted({d.gpu.index for d in devices if d.gpu.real})
    if not real:
        return []
    names = [*CONTROL_DEVICES, *(f"nvidia{i}" for i in real)]
    return [n for n in names if exists(n)]

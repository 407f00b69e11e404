"""Containers in namespaces of their own: what a container sees and who it runs as, as a
plan (pure), carried out by ``launch.py`` as the container's PID 1.

Each container starts through ``unshare --mount --pid --fork --kill-child --mount-proc``
(joined to the node's mount namespace first, where the EFS mounts are: see ``mounts``):

- its root is an overlay of the machine's root whose upper layer is a tmpfs of that start
  (a container's writable layer: it writes where it likes, the machine never changes);
- every volume is bind-mounted at its ``mountPath`` (``subPath`` included), so ``df -h``
  and ``mount`` list the volumes;
- ``/home`` and ``/tmp`` start empty; the repository (the local "images") stays where it is;
- the sandbox's state folders (kubeconfig, Terraform state, every pod's volume folders) are
  covered by an empty read-only tmpfs; ``/proc`` shows only the pod's processes; ``/dev``
  holds the harmless device nodes; the machine's other mounts are gone (``pivot_root``);
- the process runs as ``runAsUser``/``runAsGroup``/``fsGroup``; root keeps containerd's
  default capabilities without MKNOD (never CAP_SYS_ADMIN), so it can neither mount nor
  make a device node of the machine's disk.

``RUNBOOK_SANDBOX_ISOLATION=off``, or a machine where ``unshare`` cannot make namespaces,
runs containers as plain processes (the symlinked root folders of ``volumes``).
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

LAUNCH = str(Path(__file__).with_name("launch.py"))
PLAN_VARIABLE, TTY_VARIABLE = "RUNBOOK_SANDBOX_PLAN", "RUNBOOK_SANDBOX_TTY"
SWITCH = "RUNBOOK_SANDBOX_ISOLATION"
SCRATCH = ("/home", "/tmp")
CAPABILITY_NUMBERS = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6,
    "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10, "NET_BROADCAST": 11,
    "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15, "SYS_MODULE": 16, "SYS_RAWIO": 17,
    "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20, "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23,
    "SYS_RESOURCE": 24, "SYS_TIME": 25, "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29,
    "AUDIT_CONTROL": 30, "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}
# containerd's default set (oci/spec_opts.go), without MKNOD: a device node of the disk would
# reach every pod's data around the mount namespace
DEFAULT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
                        "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")


@functools.lru_cache(maxsize=1)
def supported() -> bool:
    """Whether containers run in namespaces here: switched on, and ``unshare`` can make them."""
    if os.environ.get(SWITCH, "on").lower() in ("off", "0", "false", "no"):
        return False
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("unshare", "nsenter")):
        return False
    try:
        probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--", "true"],
                               capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def describe() -> str:
    """How this kubelet runs containers, for its log."""
    if supported():
        return ("containers run in mount and PID namespaces of their own (they share this machine's network "
                "namespace and kernel; no cgroup limits their CPU or memory)")
    return ("containers run as plain processes (no mount or PID namespaces here, or "
            f"{SWITCH}=off): `df -h` in a pod shows the machine's disk and a pod could read another's folders")


@dataclass
class Credentials:
    uid: int
    gid: int
    groups: list[int]
    capabilities: list[int]


def _context(pod: dict, container: dict, key: str):
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else ((pod.get("spec") or {}).get("securityContext") or {}).get(key)


def credentials(pod: dict, container: dict) -> Credentials:
    """Who the container runs as: runAsUser/runAsGroup (the user's primary group by default,
    as an image's ``USER`` gives), supplementalGroups and fsGroup, and its capabilities."""
    uid = int(_context(pod, container, "runAsUser") or 0)
    gid = _context(pod, container, "runAsGroup")
    if gid is None:
        try:
            gid = pwd.getpwuid(uid).pw_gid
        except KeyError:
            gid = 0
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    groups = [int(gid), *map(int, pod_context.get("supplementalGroups") or [])]
    if pod_context.get("fsGroup") is not None:
        groups.append(int(pod_context["fsGroup"]))
    own = container.get("securityContext") or {}
    if uid != 0:
        capabilities: set[str] = set()
    elif own.get("privileged"):
        capabilities = set(CAPABILITY_NUMBERS) - {"MKNOD", "SYS_ADMIN"}
    else:
        requested = own.get("capabilities") or {}
        drop = {c.upper().removeprefix("CAP_") for c in requested.get("drop") or []}
        capabilities = set() if "ALL" in drop else set(DEFAULT_CAPABILITIES) - drop
        capabilities |= {c.upper().removeprefix("CAP_") for c in requested.get("add") or []} - {"SYS_ADMIN", "MKNOD"}
    return Credentials(uid, int(gid), sorted(set(groups)),
                       sorted(CAPABILITY_NUMBERS[c] for c in capabilities if c in CAPABILITY_NUMBERS))


@dataclass
class Bind:
    source: str
    target: str
    read_only: bool = False
    file: bool = False


def _under(path: str, root: str) -> bool:
    return PurePosixPath(path) == PurePosixPath(root) or PurePosixPath(root) in PurePosixPath(path).parents


def _searchable(path: str, creds: Credentials) -> bool:
    info = os.stat(path)
    if creds.uid == 0:
        return True
    if info.st_uid == creds.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in creds.groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _ancestors(path: str) -> list[str]:
    resolved = PurePosixPath(os.path.realpath(path))
    return [str(p) for p in reversed(resolved.parents) if str(p) != "/"] + \
        ([str(resolved)] if os.path.isdir(resolved) else [])


def _interpreter(executable: str) -> str | None:
    try:
        with open(executable, "rb") as handle:
            first = handle.readline(256)
    except OSError:
        return None
    return first[2:].split()[0].decode() if first.startswith(b"#!") and first[2:].split() else None


@dataclass
class Plan:
    """What ``launch.py`` does, as JSON (see the module docstring)."""

    binds: list[Bind]
    scratch: list[str]
    keep: list[str]
    hidden: list[str]
    traverse: list[str]
    cwd: str
    home: str | None
    credentials: Credentials
    devices: list[str] = field(default_factory=list)  # extra /dev entries: a real GPU's device files

    def to_json(self) -> str:
        creds = self.credentials
        return json.dumps({
            "binds": [vars(b) for b in self.binds], "scratch": self.scratch,
            "keep": self.keep, "hidden": self.hidden, "traverse": self.traverse, "cwd": self.cwd,
            "home": self.home, "uid": creds.uid, "gid": creds.gid, "groups": creds.groups,
            "capabilities": creds.capabilities, "devices": self.devices})


def plan(binds: list[Bind], creds: Credentials, cwd: str, home: str | None, executables: list[str],
         hidden: list[str], keep: list[str]) -> Plan:
    """The container's view: ``binds`` at their targets, ``hidden`` folders covered, ``keep``
    folders (the repository, the interpreter) where they are although /home and /tmp start
    empty, and the folders on the way to its executables it may search (a non-root user
    reaches the interpreter under /root: search permission in the container's layer)."""
    scratch = list(SCRATCH)
    keep = sorted({p for p in (os.path.realpath(k) for k in keep) if any(_under(p, s) for s in scratch)})
    traverse: list[str] = []
    for executable in executables:
        for path in [executable, _interpreter(executable) or executable, *keep]:
            for ancestor in _ancestors(path):
                if not _searchable(ancestor, creds) and ancestor not in traverse \
                        and not any(_under(ancestor, s) for s in scratch):  # made anew there
                    traverse.append(ancestor)
    return Plan(binds, scratch, keep, sorted({str(Path(h)) for h in hidden}), traverse, cwd, home, creds)


def launch_argv(argv: list[str], node_pid: int | None) -> list[str]:
    """The command line that starts ``argv`` as a container (the plan goes in the environment)."""
    enter_node = ["nsenter", f"--target={node_pid}", "--mount", "--"] if node_pid else []
    return [*enter_node, "unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
            sys.executable, "-I", "-S", LAUNCH, "--", *argv]


def enter_argv(init_pid: int, argv: list[str]) -> list[str]:
    """The command line of ``kubectl exec``: join the container's mount and PID namespaces."""
    return ["nsenter", f"--target={init_pid}", "--mount", "--pid", "--root", "--wd", "--", sys.executable, "-I", "-S", LAUNCH,
            "--enter", "--", *argv]


def init_pid(unshare_pid: int) -> int | None:
    """The container's PID 1 (as this machine numbers it): the child ``unshare`` forked."""
    try:
        children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None

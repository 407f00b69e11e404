"""The node's mount table: the EFS CSI driver's mounts, made once per volume folder.

On EKS the EFS driver mounts ``fs-...efs.<region>.amazonaws.com:/`` on the node and every pod
that uses the volume gets a bind of it. Here an idle process (``launch.py --hold``) holds a
mount namespace of its own (private: nothing shows on the machine) in which each EFS folder
is mounted once, as an overlay named like the real mount whose lower layer is an empty
tmpfs and whose upper layer is the folder: the data stays in the folder, and the mount has a
device of its own, so ``df -h`` in a pod lists it. Containers' namespaces are made from this
one (``nsenter --target=<holder> --mount``), so a pod sees the mounts that existed when it
started. One mount per folder, shared by every pod, keeps two users of one folder coherent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

from . import processes
from .isolation import LAUNCH


class MountError(Exception):
    """The node could not mount a volume (reported as FailedMount)."""


class NodeMounts:
    """The holder of the node's mount namespace and the EFS mounts in it."""

    def __init__(self, root: Path, region: str, marker: str):
        self.root = root
        self.region = region
        self.marker = marker
        self.process: asyncio.subprocess.Process | None = None
        self._mounted: dict[str, tuple[int, Path]] = {}
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.returncode is None else None

    async def _ensure_holder(self) -> None:
        if self.pid is not None:
            return
        self._mounted.clear()
        self.root.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), processes.CLUSTER_MARKER: self.marker}
        self.process = await asyncio.create_subprocess_exec(
            "unshare", "--mount", "--propagation", "private", "--", sys.executable, "-I", "-S", LAUNCH,
            "--hold", str(self.root / "empty"), env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, start_new_session=True, preexec_fn=processes.child_setup)

    async def _ask(self, request: dict) -> None:
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        await self.process.stdin.drain()
        reply = (await self.process.stdout.readline()).decode().strip()
        if reply != "ok":
            raise MountError(reply.removeprefix("error ") or "the node's mount holder stopped")

    async def efs(self, folder: Path, file_system: str) -> Path:
        """Where the node has ``folder`` (an EFS volume's folder) mounted, mounting it first."""
        async with self._lock:
            await self._ensure_holder()
            inode = folder.stat().st_ino
            key = str(folder)
            known = self._mounted.get(key)
            if known is not None and known[0] == inode:
                return known[1]
            name = hashlib.sha256(key.encode()).hexdigest()[:16]
            target, work = self.root / "m" / name, self.root / "w" / name
            if known is not None:  # the folder was deleted and made again: mount the new one
                await self._ask({"op": "umount", "target": str(target)})
            await self._ask({"op": "mount", "name": f"{file_system}.efs.{self.region}.amazonaws.com:/",
                             "upper": str(folder), "work": str(work), "target": str(target)})
            self._mounted[key] = (inode, target)
            return target

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 3)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.process = None

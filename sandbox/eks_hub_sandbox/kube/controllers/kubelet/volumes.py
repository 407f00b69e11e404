"""Pod folders: the local folder of every volume, and each container's mounts (mount path ->
folder, plus ``subPath``; a file where the subPath names one). In namespaces of its own (see
``isolation``) a container gets them as bind mounts. As a plain process it gets a root
folder in which every ``mountPath`` is a symlink to the folder, so a process started with
``HOME=<root>/home/jovyan`` reads and writes the EFS access point's folder, and arguments
and environment values that are paths under a mount are given as the local path.

Volume sources: persistentVolumeClaim (through its bound PersistentVolume, see
``storage``), emptyDir, configMap, secret, projected, downwardAPI, hostPath
(under the node's folder, never the real host path) and others as empty folders.
"""

from __future__ import annotations

import base64
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from .commands import _field_value, expand

if TYPE_CHECKING:
    from ...runtime import Runtime

PVCS, PVS = ("", "persistentvolumeclaims"), ("", "persistentvolumes")


class VolumeNotReady(Exception):
    """A volume cannot be set up yet (claim missing or not bound): FailedMount."""


def _write_files(folder: Path, files: dict[str, bytes], mode: int = 0o644, owner: int | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        os.chmod(target, mode)
        if owner is not None:
            os.chown(target, owner, -1)


def _pod_user(pod: dict) -> int | None:
    """The user the pod's containers run as (the pod's runAsUser, or the one they all name)."""
    spec = pod.get("spec") or {}
    user = (spec.get("securityContext") or {}).get("runAsUser")
    if user is None:
        users = {(c.get("securityContext") or {}).get("runAsUser")
                 for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]}
        user = users.pop() if len(users) == 1 else None
    return int(user) if user is not None else None


def _items(data: dict[str, bytes], items: list[dict] | None) -> dict[str, bytes]:
    if not items:
        return data
    return {item.get("path", item["key"]): data[item["key"]] for item in items if item.get("key") in data}


def _configmap_files(store, namespace: str, source: dict) -> dict[str, bytes]:
    cm = store.get(("", "configmaps"), namespace, source.get("name", ""))
    if cm is None:
        if source.get("optional"):
            return {}
        raise VolumeNotReady(f'configmap "{source.get("name")}" not found')
    data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return _items(data, source.get("items"))


def _secret_files(store, namespace: str, source: dict) -> dict[str, bytes]:
    name = source.get("secretName") or source.get("name", "")
    secret = store.get(("", "secrets"), namespace, name)
    if secret is None:
        if source.get("optional"):
            return {}
        raise VolumeNotReady(f'secret "{name}" not found')
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    return _items(data, source.get("items"))


def _downward_files(pod: dict, source: dict) -> dict[str, bytes]:
    return {item["path"]: _field_value(pod, (item.get("fieldRef") or {}).get("fieldPath", "")).encode()
            for item in source.get("items") or [] if item.get("path")}


def _token(runtime: "Runtime", pod: dict, source: dict) -> bytes:
    """A bound token of the pod's service account, as the kubelet requests one (TokenRequest)."""
    request = source["serviceAccountToken"]
    if runtime.tokens is None:
        return b""
    account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    audience = request.get("audience")
    return runtime.tokens.issue(pod["metadata"]["namespace"], account, pod,
                                int(request.get("expirationSeconds") or 3607),
                                [audience] if audience else None).encode()


async def prepare_volumes(runtime: "Runtime", pod: dict, node: str, pod_dir: Path) -> dict[str, Path]:
    """Local folders of all the pod's volumes, by volume name."""
    store = runtime.cluster.store
    namespace = pod["metadata"]["namespace"]
    paths: dict[str, Path] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume["name"]
        own = pod_dir / "volumes" / name
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"].get("claimName", "")
            pvc = store.get(PVCS, namespace, claim)
            if pvc is None:
                raise VolumeNotReady(f'persistentvolumeclaim "{claim}" not found')
            pv_name = (pvc.get("spec") or {}).get("volumeName")
            pv = store.get(PVS, "", pv_name) if pv_name else None
            if pv is None or (pvc.get("status") or {}).get("phase") != "Bound":
                raise VolumeNotReady(f'persistentvolumeclaim "{claim}" is not bound')
            paths[name] = await runtime.volumes.pv_path(pv, node)
        elif "hostPath" in volume:
            paths[name] = runtime.volumes.host_path(node, volume["hostPath"].get("path", ""))
        elif "configMap" in volume:
            _write_files(own, _configmap_files(store, namespace, volume["configMap"]),
                         int(volume["configMap"].get("defaultMode", 0o644)))
            paths[name] = own
        elif "secret" in volume:
            # 0600 unless the pod asks otherwise (a secret on this machine's disk stays private),
            # owned by the pod's user so a non-root container reads its own secret
            _write_files(own, _secret_files(store, namespace, volume["secret"]),
                         int(volume["secret"].get("defaultMode", 0o600)), _pod_user(pod))
            paths[name] = own
        elif "downwardAPI" in volume:
            _write_files(own, _downward_files(pod, volume["downwardAPI"]))
            paths[name] = own
        elif "projected" in volume:
            files: dict[str, bytes] = {}
            for source in volume["projected"].get("sources") or []:
                if "configMap" in source:
                    files.update(_configmap_files(store, namespace, source["configMap"]))
                elif "secret" in source:
                    files.update(_secret_files(store, namespace, source["secret"]))
                elif "downwardAPI" in source:
                    files.update(_downward_files(pod, source["downwardAPI"]))
                elif "serviceAccountToken" in source:
                    files[source["serviceAccountToken"].get("path", "token")] = _token(runtime, pod, source)
            tokens = any("serviceAccountToken" in source for source in volume["projected"].get("sources") or [])
            _write_files(own, files, 0o600 if tokens else 0o644, _pod_user(pod))
            paths[name] = own
        else:  # emptyDir, ephemeral and inline CSI volumes, anything else: a folder of the pod
            own.mkdir(parents=True, exist_ok=True)
            os.chmod(own, 0o777)  # as the kubelet makes an emptyDir: any container user writes there
            paths[name] = own
    return paths


def efs_file_systems(store, pod: dict) -> dict[str, str]:
    """The pod's volumes that are EFS file systems (through their bound PersistentVolume): name -> file system."""
    namespace = pod["metadata"]["namespace"]
    found = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        pvc = store.get(PVCS, namespace, claim) if claim else None
        pv_name = ((pvc or {}).get("spec") or {}).get("volumeName")
        csi = (((store.get(PVS, "", pv_name) if pv_name else None) or {}).get("spec") or {}).get("csi") or {}
        if csi.get("driver") == "efs.csi.aws.com":
            found[volume["name"]] = csi.get("volumeHandle", "").split(":")[0]
    return found


@dataclass
class Rootfs:
    """A container's view of the file system: mount paths -> local folders."""

    root: Path
    mounts: dict[str, Path] = field(default_factory=dict)
    read_only: set[str] = field(default_factory=set)

    def host_path(self, container_path: str) -> Path:
        """The local path behind an absolute path inside the container."""
        path = PurePosixPath("/") / container_path
        best = None
        for mount in self.mounts:
            mount_path = PurePosixPath(mount)
            if path == mount_path or mount_path in path.parents:
                if best is None or len(mount) > len(best):
                    best = mount
        if best is not None:
            return self.root / best.strip("/") / path.relative_to(PurePosixPath(best))
        return self.root / str(path).lstrip("/")

    def mounted(self, container_path: str) -> bool:
        """Whether an absolute path lies in one of the container's volume mounts."""
        path = PurePosixPath(container_path)
        return path.is_absolute() and any(path == PurePosixPath(m) or PurePosixPath(m) in path.parents
                                          for m in self.mounts)

    def localize(self, value: str) -> str:
        """``value`` with a path under a mount (the whole value, or after ``--flag=``) made local."""
        flag, equals, rest = value.partition("=")
        if equals and flag.startswith("-") and self.mounted(rest):
            return f"{flag}={self.host_path(rest)}"
        return str(self.host_path(value)) if self.mounted(value) else value


READ_ONLY_SOURCES = ("configMap", "secret", "projected", "downwardAPI")


def _make_folder(path: Path) -> None:
    """Make a subPath folder owned like the folder it is made in (on EFS: the access point's
    user, who makes every folder through it)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    owner = current.stat()
    for folder in reversed(missing):
        folder.mkdir()
        os.chown(folder, owner.st_uid, owner.st_gid)


def build_rootfs(pod_dir: Path, container: dict, volume_paths: dict[str, Path], env: dict[str, str],
                 volumes: list[dict] | None = None, materialize: bool = True) -> Rootfs:
    """The container's mounts (mount path -> local path, subPaths made); with ``materialize``
    also its root folder with one symlink per volume mount (containers run as plain processes)."""
    root = pod_dir / "containers" / container["name"] / "rootfs"
    if materialize:
        root.mkdir(parents=True, exist_ok=True)
    rootfs = Rootfs(root)
    read_only_volumes = {v["name"] for v in volumes or [] if any(k in v for k in READ_ONLY_SOURCES)}
    for mount in sorted(container.get("volumeMounts") or [], key=lambda m: len(m.get("mountPath", ""))):
        target = volume_paths.get(mount.get("name"))
        if target is None:
            continue
        sub_path = mount.get("subPath") or (expand(mount["subPathExpr"], env) if mount.get("subPathExpr") else "")
        if sub_path:
            target = target / sub_path
            if not target.is_file():
                _make_folder(target)
        rootfs.mounts[mount["mountPath"]] = target
        if mount.get("readOnly") or mount.get("name") in read_only_volumes:
            rootfs.read_only.add(mount["mountPath"])
        if not materialize:
            continue
        link = rootfs.host_path(mount["mountPath"])
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.is_symlink() or link.is_file():
                link.unlink()
            else:
                shutil.rmtree(link)
        link.symlink_to(target, target_is_directory=target.is_dir())
    return rootfs

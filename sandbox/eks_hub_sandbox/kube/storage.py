"""Where volumes live on the local disk, under the cluster state folder:

- EFS: ``efs/<fs-id>/`` is the file system root; an access point's folder is its
  ``RootDirectory.Path`` looked up in the local AWS (``/home`` -> ``efs/<fs-id>/home``),
  so two access points of one file system share data exactly as on AWS. A volume
  handle's path (``fs-x:/data``) is relative to the access point root.
- EBS: ``ebs/<volume-id>/`` (per volume, survives pod restarts, deleted with the volume);
- hostPath and local volumes: ``nodes/<node>/hostpath/<path>`` (never the real host path);
- NFS: ``nfs/<server>/<path>``; anything else: ``volumes/<pv-name>/``.
EFS data is kept when the cluster is wiped (it belongs to AWS, not to the cluster).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .aws import AwsGateway, AwsUnavailable

log = logging.getLogger(__name__)


def parse_efs_handle(handle: str) -> tuple[str, str, str]:
    """``fs-id[:path[:fsap-id]]`` or ``fs-id::fsap-id`` -> (file system, path, access point)."""
    parts = handle.split(":")
    file_system = parts[0]
    path = parts[1] if len(parts) > 1 else ""
    access_point = parts[2] if len(parts) > 2 else ""
    return file_system, path, access_point


class VolumeStore:
    """Maps volumes to local folders."""

    def __init__(self, root: Path, aws: AwsGateway | None):
        self.root = root
        self.aws = aws
        self._access_points: dict[str, tuple[str, dict]] = {}

    async def access_point_root(self, access_point: str) -> tuple[str, dict]:
        """RootDirectory.Path of an EFS access point ("" when unknown) and its CreationInfo."""
        if access_point in self._access_points:
            return self._access_points[access_point]
        path, creation = "", {}
        if self.aws is not None:
            try:
                result = await self.aws.call("efs", "describe_access_points", AccessPointId=access_point)
                points = result.get("AccessPoints") or []
                if points:
                    root = points[0].get("RootDirectory") or {}
                    path, creation = root.get("Path") or "/", root.get("CreationInfo") or {}
                    self._access_points[access_point] = (path, creation)
            except AwsUnavailable:
                log.warning("local AWS unavailable: access point %s mapped by id", access_point)
            except Exception as exc:  # unknown access point: the real driver would fail the mount
                log.warning("access point %s not found in the local AWS: %s", access_point, exc)
        return path, creation

    async def efs_path(self, handle: str) -> Path:
        file_system, path, access_point = parse_efs_handle(handle)
        base = self.root / "efs" / file_system
        creation: dict = {}
        if access_point:
            root, creation = await self.access_point_root(access_point)
            base = base / root.strip("/") if root else base / "access-points" / access_point
        if not base.exists():
            base.mkdir(parents=True)
            if creation:  # EFS makes a missing access point root with its CreationInfo
                os.chown(base, int(creation.get("OwnerUid", 0)), int(creation.get("OwnerGid", 0)))
                os.chmod(base, int(str(creation.get("Permissions", "0755")), 8))
        target = base / path.strip("/") if path.strip("/") else base
        target.mkdir(parents=True, exist_ok=True)
        return target

    def ebs_path(self, volume_id: str) -> Path:
        path = self.root / "ebs" / volume_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def host_path(self, node: str, path: str) -> Path:
        target = self.root / "nodes" / node / "hostpath" / path.strip("/")
        target.mkdir(parents=True, exist_ok=True)
        return target

    async def pv_path(self, pv: dict, node: str) -> Path:
        """The local folder behind a PersistentVolume."""
        spec = pv.get("spec") or {}
        csi = spec.get("csi") or {}
        if csi.get("driver") == "efs.csi.aws.com":
            return await self.efs_path(csi.get("volumeHandle", "unknown"))
        if csi.get("driver") == "ebs.csi.aws.com":
            return self.ebs_path(csi.get("volumeHandle", "unknown"))
        if spec.get("awsElasticBlockStore"):
            return self.ebs_path(spec["awsElasticBlockStore"].get("volumeID", "unknown").split("/")[-1])
        if spec.get("hostPath"):
            return self.host_path(node, spec["hostPath"].get("path", ""))
        if spec.get("local"):
            return self.host_path(node, spec["local"].get("path", ""))
        if spec.get("nfs"):
            target = self.root / "nfs" / spec["nfs"].get("server", "server") / spec["nfs"].get("path", "").strip("/")
            target.mkdir(parents=True, exist_ok=True)
            return target
        target = self.root / "volumes" / pv["metadata"]["name"]
        target.mkdir(parents=True, exist_ok=True)
        return target

    def remove_ebs(self, volume_id: str) -> None:
        import shutil
        shutil.rmtree(self.root / "ebs" / volume_id, ignore_errors=True)

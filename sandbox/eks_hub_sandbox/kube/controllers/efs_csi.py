"""The EFS CSI driver's provisioner (dynamic access points, ``provisioningMode: efs-ap``).

Static EFS volumes need no controller: the kubelet maps ``fs-x::fsap-y`` handles to
local folders (see ``storage``). For a claim on an EFS StorageClass the driver creates
an access point in the local AWS rooted at ``<basePath>/<pv-name>`` and a PV with the
handle ``<fs-id>::<fsap-id>``; deleting the PV deletes the access point.
"""

from __future__ import annotations


class EfsProvisioner:
    name = "efs.csi.aws.com"

    def __init__(self, runtime):
        self.runtime = runtime

    async def provision(self, pvc: dict, storage_class: dict, node: dict | None) -> dict:
        parameters = storage_class.get("parameters") or {}
        if parameters.get("provisioningMode", "efs-ap") != "efs-ap" or not parameters.get("fileSystemId"):
            raise ValueError("EFS StorageClass needs provisioningMode efs-ap and a fileSystemId")
        pv_name = f"pvc-{pvc['metadata']['uid']}"
        base = parameters.get("basePath", "/").rstrip("/")
        uid = int(parameters.get("uid") or parameters.get("gidRangeStart") or 50000)
        gid = int(parameters.get("gid") or uid)
        point = await self.runtime.aws.call(
            "efs", "create_access_point", FileSystemId=parameters["fileSystemId"],
            PosixUser={"Uid": uid, "Gid": gid},
            RootDirectory={"Path": f"{base}/{pv_name}",
                           "CreationInfo": {"OwnerUid": uid, "OwnerGid": gid,
                                            "Permissions": parameters.get("directoryPerms", "700")}},
            Tags=[{"Key": "efs.csi.aws.com/cluster", "Value": "true"}])
        return {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name},
            "spec": {
                "accessModes": (pvc.get("spec") or {}).get("accessModes") or ["ReadWriteMany"],
                "capacity": {"storage": ((pvc.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage", "5Gi")},
                "csi": {"driver": self.name, "volumeHandle": f"{parameters['fileSystemId']}::{point['AccessPointId']}"},
                "volumeMode": "Filesystem",
            },
        }

    async def delete(self, pv: dict) -> None:
        handle = ((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle", "")
        parts = handle.split(":")
        if len(parts) == 3 and parts[2]:
            try:
                await self.runtime.aws.call("efs", "delete_access_point", AccessPointId=parts[2])
            except Exception as exc:
                if "NotFound" not in str(exc):
                    raise

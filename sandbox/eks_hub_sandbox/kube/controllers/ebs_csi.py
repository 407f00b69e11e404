"""The EBS CSI driver's provisioner: a claim on a StorageClass with provisioner
``ebs.csi.aws.com`` (or the migrated ``kubernetes.io/aws-ebs``) gets an EBS volume in
the local AWS, tagged as the real driver tags it, in the zone of the node the
scheduler picked; deleting the volume (reclaim policy Delete) deletes it."""

from __future__ import annotations

import math

from .. import quantity

GIB = 2**30


class EbsProvisioner:
    name = "ebs.csi.aws.com"

    def __init__(self, runtime):
        self.runtime = runtime

    async def provision(self, pvc: dict, storage_class: dict, node: dict | None) -> dict:
        parameters = storage_class.get("parameters") or {}
        request = ((pvc.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage", "1Gi")
        size_gib = max(1, math.ceil(quantity.parse(request) / GIB))
        zones = self.runtime.node_addresses.zones(self.runtime.settings.region)
        zone = ((node or {}).get("metadata", {}).get("labels") or {}).get("topology.kubernetes.io/zone") or zones[0]
        pv_name = f"pvc-{pvc['metadata']['uid']}"
        cluster = self.runtime.cluster_name
        tags = {
            "CSIVolumeName": pv_name,
            "kubernetes.io/created-for/pvc/name": pvc["metadata"]["name"],
            "kubernetes.io/created-for/pvc/namespace": pvc["metadata"]["namespace"],
            "kubernetes.io/created-for/pv/name": pv_name,
            "ebs.csi.aws.com/cluster": "true",
            "KubernetesCluster": cluster,
            f"kubernetes.io/cluster/{cluster}": "owned",
        }
        params = {"AvailabilityZone": zone, "Size": size_gib, "VolumeType": parameters.get("type", "gp3"),
                  "Encrypted": str(parameters.get("encrypted", "false")).lower() == "true",
                  "TagSpecifications": [{"ResourceType": "volume",
                                         "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]}
        for key, name in (("iops", "Iops"), ("throughput", "Throughput")):
            if parameters.get(key):
                params[name] = int(parameters[key])
        volume = await self.runtime.aws.call("ec2", "create_volume", **params)
        volume_id = volume["VolumeId"]
        self.runtime.volumes.ebs_path(volume_id)
        return {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name,
                         "annotations": {"volume.kubernetes.io/provisioner-deletion-secret-name": "",
                                         "volume.kubernetes.io/provisioner-deletion-secret-namespace": ""}},
            "spec": {
                "accessModes": (pvc.get("spec") or {}).get("accessModes") or ["ReadWriteOnce"],
                "capacity": {"storage": f"{size_gib}Gi"},
                "csi": {"driver": self.name, "volumeHandle": volume_id, "fsType": parameters.get("csi.storage.k8s.io/fstype", "ext4"),
                        "volumeAttributes": {"storage.kubernetes.io/csiProvisionerIdentity": "sandbox-ebs-csi"}},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]}]}]}},
                "volumeMode": (pvc.get("spec") or {}).get("volumeMode", "Filesystem"),
            },
        }

    async def delete(self, pv: dict) -> None:
        volume_id = ((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle")
        if not volume_id:
            return
        try:
            await self.runtime.aws.call("ec2", "delete_volume", VolumeId=volume_id)
        except Exception as exc:
            if "NotFound" not in str(exc):
                raise
        self.runtime.volumes.remove_ebs(volume_id)

"""The PersistentVolume controller: binds claims to volumes, asks CSI provisioners for
new volumes, and reclaims released ones.

- a claim naming a volume (``spec.volumeName``) binds to it; other claims bind to the
  smallest Available volume of their class whose access modes and size fit;
- otherwise the claim's StorageClass provisioner (``ebs.csi.aws.com``, ``efs.csi.aws.com``;
  ``kubernetes.io/aws-ebs`` is migrated to the EBS CSI driver as on EKS) creates one,
  at once for ``Immediate`` classes, after the scheduler picked a node for
  ``WaitForFirstConsumer`` classes;
- a volume whose claim is gone is Released, then deleted (with its backing volume)
  when its reclaim policy is ``Delete``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from .. import quantity
from ..objects import clone
from .base import Controller

log = logging.getLogger(__name__)

PVCS, PVS = ("", "persistentvolumeclaims"), ("", "persistentvolumes")
SCS = ("storage.k8s.io", "storageclasses")
NODES = ("", "nodes")
SELECTED_NODE = "volume.kubernetes.io/selected-node"
MIGRATED = {"kubernetes.io/aws-ebs": "ebs.csi.aws.com"}


class Provisioner(Protocol):
    name: str

    async def provision(self, pvc: dict, storage_class: dict, node: dict | None) -> dict:
        """Create the backing volume and return the PersistentVolume object for it."""

    async def delete(self, pv: dict) -> None:
        """Delete the backing volume of a released PersistentVolume."""


def _storage(obj: dict, path: str) -> int:
    node = obj
    for part in path.split("."):
        node = (node or {}).get(part)
    try:
        return int(quantity.parse(node)) if node is not None else 0
    except quantity.QuantityError:
        return 0


class VolumeBinder(Controller):
    name = "persistentvolume-binder"
    watches = (PVCS, PVS, SCS)

    def __init__(self, runtime):
        super().__init__(runtime)
        self.provisioners: dict[str, Provisioner] = {}
        self._inflight: dict[str, asyncio.Task] = {}
        self._reported: dict[str, str] = {}

    def register(self, provisioner: Provisioner) -> None:
        self.provisioners[provisioner.name] = provisioner

    async def stop(self) -> None:
        for task in self._inflight.values():
            task.cancel()
        await super().stop()

    async def reconcile(self) -> None:
        store = self.cluster.store
        pvcs = store.list(PVCS)
        claims = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in pvcs}
        for pv in store.list(PVS):
            self._volume_phase(pv, claims)
        for pvc in pvcs:
            if pvc["metadata"].get("deletionTimestamp") or (pvc.get("status") or {}).get("phase") == "Bound":
                continue
            self._bind_claim(pvc)

    # -- volumes ----------------------------------------------------------------------------------
    def _volume_phase(self, pv: dict, claims: dict) -> None:
        name = pv["metadata"]["name"]
        ref = (pv.get("spec") or {}).get("claimRef")
        phase = (pv.get("status") or {}).get("phase")
        if not ref:
            if phase != "Available":
                self._set_pv_phase(name, "Available")
            return
        claim = claims.get((ref.get("namespace"), ref.get("name")))
        if claim is not None and (not ref.get("uid") or ref.get("uid") == claim["metadata"]["uid"]):
            if phase not in ("Bound",) and (claim.get("spec") or {}).get("volumeName") == name:
                self._set_pv_phase(name, "Bound")
            return
        if not ref.get("uid"):
            return  # pre-bound to a claim that does not exist yet
        if phase != "Released":
            self._set_pv_phase(name, "Released")
        policy = (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy", "Retain")
        if policy == "Delete" and name not in self._inflight:
            self._inflight[name] = asyncio.get_running_loop().create_task(self._reclaim(pv))

    def _set_pv_phase(self, name: str, phase: str) -> None:
        self.cluster.mutate(PVS, "", name, lambda pv: pv.setdefault("status", {}).__setitem__("phase", phase))

    async def _reclaim(self, pv: dict) -> None:
        name = pv["metadata"]["name"]
        try:
            driver = ((pv.get("spec") or {}).get("csi") or {}).get("driver")
            provisioner = self.provisioners.get(driver or "")
            if provisioner is not None:
                await provisioner.delete(pv)
            self.cluster.remove(PVS, "", name)
        except Exception as exc:
            log.warning("reclaiming %s failed: %s", name, exc)
            self.cluster.record_event(pv, "VolumeFailedDelete", str(exc), "Warning",
                                      component="persistentvolume-controller")
            self.wake_at(5.0)
        finally:
            self._inflight.pop(name, None)

    # -- claims -------------------------------------------------------------------------------------
    def _bind_claim(self, pvc: dict) -> None:
        store = self.cluster.store
        spec = pvc.get("spec") or {}
        namespace, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        if spec.get("volumeName"):
            pv = store.get(PVS, "", spec["volumeName"])
            ref = ((pv or {}).get("spec") or {}).get("claimRef")
            if pv is not None and (not ref or (ref.get("name") == name and ref.get("namespace") == namespace)):
                self._bind(pvc, pv, by_controller=False)
            return
        candidate = self._find_volume(pvc)
        if candidate is not None:
            self._bind(pvc, candidate, by_controller=True)
            return
        class_name = spec.get("storageClassName")
        storage_class = store.get(SCS, "", class_name) if class_name else None
        if storage_class is None:
            self._report(pvc, "FailedBinding", "no persistent volumes available for this claim and no storage class is set"
                         if not class_name else f'storageclass.storage.k8s.io "{class_name}" not found', "Warning")
            return
        driver = MIGRATED.get(storage_class.get("provisioner"), storage_class.get("provisioner"))
        provisioner = self.provisioners.get(driver)
        if provisioner is None:
            self._report(pvc, "ExternalProvisioning", f"Waiting for a volume to be created either by the external "
                         f"provisioner '{driver}' or manually by the system administrator. If volume creation is "
                         f"delayed, please verify that the provisioner is running and correctly registered.")
            return
        selected = (pvc["metadata"].get("annotations") or {}).get(SELECTED_NODE)
        if storage_class.get("volumeBindingMode") == "WaitForFirstConsumer" and not selected:
            self._report(pvc, "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
            return
        uid = pvc["metadata"]["uid"]
        if uid not in self._inflight:
            node = store.get(NODES, "", selected) if selected else None
            self._inflight[uid] = asyncio.get_running_loop().create_task(
                self._provision(pvc, storage_class, provisioner, node))

    def _find_volume(self, pvc: dict) -> dict | None:
        spec = pvc.get("spec") or {}
        wanted = _storage(pvc, "spec.resources.requests.storage")
        modes = set(spec.get("accessModes") or [])
        class_name = spec.get("storageClassName") or ""
        best = None
        for pv in self.cluster.store.list(PVS):
            pv_spec = pv.get("spec") or {}
            ref = pv_spec.get("claimRef")
            if ref and not (ref.get("name") == pvc["metadata"]["name"] and ref.get("namespace") == pvc["metadata"]["namespace"]):
                continue
            if (pv.get("status") or {}).get("phase") not in (None, "Available", "Pending") and not ref:
                continue
            if (pv_spec.get("storageClassName") or "") != class_name or not modes <= set(pv_spec.get("accessModes") or []):
                continue
            if pv_spec.get("volumeMode", "Filesystem") != spec.get("volumeMode", "Filesystem"):
                continue
            size = _storage(pv, "spec.capacity.storage")
            if size < wanted:
                continue
            if spec.get("selector"):
                from ..selectors import match_label_selector
                if not match_label_selector(spec["selector"], pv["metadata"].get("labels")):
                    continue
            if best is None or size < _storage(best, "spec.capacity.storage"):
                best = pv
        return best

    def _bind(self, pvc: dict, pv: dict, by_controller: bool) -> None:
        namespace, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]

        def claim_volume(obj: dict):
            obj["spec"]["claimRef"] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": name,
                                       "namespace": namespace, "uid": pvc["metadata"]["uid"],
                                       "resourceVersion": pvc["metadata"]["resourceVersion"]}
            obj.setdefault("status", {})["phase"] = "Bound"
            if by_controller:
                obj["metadata"].setdefault("annotations", {})["pv.kubernetes.io/bound-by-controller"] = "yes"
        bound_pv = self.cluster.mutate(PVS, "", pv["metadata"]["name"], claim_volume)
        if bound_pv is None:
            return

        def bind_claim(obj: dict):
            obj["spec"]["volumeName"] = pv["metadata"]["name"]
            annotations = obj["metadata"].setdefault("annotations", {})
            annotations["pv.kubernetes.io/bind-completed"] = "yes"
            if by_controller:
                annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
            obj["status"] = {"phase": "Bound", "accessModes": clone(bound_pv["spec"].get("accessModes") or []),
                             "capacity": clone(bound_pv["spec"].get("capacity") or {})}
        self.cluster.mutate(PVCS, namespace, name, bind_claim)

    async def _provision(self, pvc: dict, storage_class: dict, provisioner: Provisioner, node: dict | None) -> None:
        uid = pvc["metadata"]["uid"]
        try:
            self._report(pvc, "Provisioning", f'External provisioner is provisioning volume for claim '
                         f'"{pvc["metadata"]["namespace"]}/{pvc["metadata"]["name"]}"', component=provisioner.name)
            pv = await provisioner.provision(pvc, storage_class, node)
            current = self.cluster.store.get(PVCS, pvc["metadata"]["namespace"], pvc["metadata"]["name"])
            if current is None or current["metadata"]["uid"] != uid:
                await provisioner.delete(pv)
                return
            pv["metadata"].setdefault("annotations", {})["pv.kubernetes.io/provisioned-by"] = provisioner.name
            pv["spec"]["claimRef"] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                      "name": current["metadata"]["name"], "namespace": current["metadata"]["namespace"],
                                      "uid": uid, "resourceVersion": current["metadata"]["resourceVersion"]}
            pv["spec"].setdefault("persistentVolumeReclaimPolicy", storage_class.get("reclaimPolicy", "Delete"))
            pv["spec"].setdefault("storageClassName", storage_class["metadata"]["name"])
            pv.setdefault("status", {})["phase"] = "Pending"
            created = self.cluster.create_internal(PVS, pv)
            self._bind(current, created, by_controller=True)
            self.cluster.record_event(current, "ProvisioningSucceeded", f"Successfully provisioned volume "
                                      f"{created['metadata']['name']}", component=provisioner.name)
        except Exception as exc:
            log.warning("provisioning for %s/%s failed: %s", pvc["metadata"]["namespace"], pvc["metadata"]["name"], exc)
            self.cluster.record_event(pvc, "ProvisioningFailed", f"failed to provision volume with StorageClass "
                                      f'"{storage_class["metadata"]["name"]}": {exc}', "Warning", component=provisioner.name)
            self.wake_at(5.0)
        finally:
            self._inflight.pop(uid, None)

    def _report(self, pvc: dict, reason: str, message: str, type_: str = "Normal",
                component: str = "persistentvolume-controller") -> None:
        key = pvc["metadata"]["uid"]
        if self._reported.get(key) == message:
            return
        self._reported[key] = message
        self.cluster.record_event(pvc, reason, message, type_, component=component)

"""Admission: the mutations and checks of a real server that need cluster state.

- NamespaceLifecycle: namespaced objects need an existing, non-terminating namespace;
- ServiceAccount: pods get a service account and the ``kube-api-access-*`` projected volume;
- DefaultStorageClass: claims without a class get the default one;
- Service IP and node-port allocation (EKS service CIDR 172.20.0.0/16);
- CRD status: names accepted and established at once.
"""

from __future__ import annotations

import ipaddress
import random
from typing import TYPE_CHECKING

from .errors import ApiError
from .objects import now, random_suffix

if TYPE_CHECKING:
    from .cluster import Cluster

SERVICE_CIDR = ipaddress.ip_network("172.20.0.0/16")
KUBERNETES_SERVICE_IP = "172.20.0.1"
NODE_PORT_RANGE = (30000, 32767)
SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


class Admission:
    """Stateful admission plugins, run on create (and some on update) before storage."""

    def __init__(self, cluster: "Cluster"):
        self.cluster = cluster

    # -- namespace lifecycle ----------------------------------------------------------------
    def check_namespace(self, namespace: str, kind: str) -> None:
        ns = self.cluster.store.get(("", "namespaces"), "", namespace)
        if ns is None:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                           {"name": namespace, "kind": "namespaces"})
        if ns["metadata"].get("deletionTimestamp") and kind != "Event":
            raise ApiError(403, "Forbidden", f"{kind.lower()}s is forbidden: unable to create new content in "
                           f"namespace {namespace} because it is being terminated",
                           {"name": namespace, "kind": "namespaces"})

    # -- per-kind mutations on create ----------------------------------------------------------
    def on_create(self, obj: dict) -> None:
        kind = obj.get("kind")
        if kind == "Pod":
            self._service_account(obj)
        elif kind == "Service":
            self._allocate_service(obj, None)
        elif kind == "PersistentVolumeClaim":
            self._default_storage_class(obj)
        elif kind == "CustomResourceDefinition":
            self.crd_status(obj)

    def after_create(self, obj: dict) -> None:
        """Objects a real control plane adds right after a namespace appears."""
        if obj.get("kind") != "Namespace":
            return
        namespace = obj["metadata"]["name"]
        store = self.cluster.store
        if store.get(("", "serviceaccounts"), namespace, "default") is None:
            self.cluster.create_internal(("", "serviceaccounts"), {
                "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}})
        if store.get(("", "configmaps"), namespace, "kube-root-ca.crt") is None:
            self.cluster.create_internal(("", "configmaps"), {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kube-root-ca.crt", "namespace": namespace,
                             "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to "
                                             "verify the kube-apiserver when using internal endpoints such as the "
                                             "internal service IP or kubernetes.default.svc. No other usage is "
                                             "guaranteed across distributions of Kubernetes clusters."}},
                "data": {"ca.crt": self.cluster.ca_pem.decode()}})

    def on_update(self, old: dict, obj: dict) -> None:
        kind = obj.get("kind")
        if kind == "Service":
            self._allocate_service(obj, old)
        elif kind == "CustomResourceDefinition":
            self.crd_status(obj)

    def _service_account(self, pod: dict) -> None:
        spec = pod.setdefault("spec", {})
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = spec["serviceAccount"] = name
        namespace = pod["metadata"]["namespace"]
        account = self.cluster.store.get(("", "serviceaccounts"), namespace, name)
        if account is None:
            raise ApiError(403, "Forbidden", f'pods "{pod["metadata"].get("name", "")}" is forbidden: error looking up '
                           f'service account {namespace}/{name}: serviceaccount "{name}" not found')
        if spec.get("automountServiceAccountToken") is False or (
                account.get("automountServiceAccountToken") is False and spec.get("automountServiceAccountToken") is None):
            return
        containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
        if any(m.get("mountPath") == SA_MOUNT_PATH for c in containers for m in c.get("volumeMounts") or []):
            return
        volume_name = f"kube-api-access-{random_suffix(5)}"
        spec.setdefault("volumes", []).append({"name": volume_name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                          "fieldPath": "metadata.namespace"}}]}},
        ]}})
        for container in containers:
            container.setdefault("volumeMounts", []).append(
                {"name": volume_name, "readOnly": True, "mountPath": SA_MOUNT_PATH})

    def _used_service_ips(self) -> set[str]:
        return {(s.get("spec") or {}).get("clusterIP") for s in self.cluster.store.list(("", "services"))}

    def _used_node_ports(self) -> set[int]:
        return {p.get("nodePort") for s in self.cluster.store.list(("", "services"))
                for p in (s.get("spec") or {}).get("ports") or []}

    def _allocate_service(self, svc: dict, old: dict | None) -> None:
        spec = svc.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        if spec.get("type") == "ExternalName":
            return
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if not spec.get("clusterIP"):
            if svc["metadata"]["name"] == "kubernetes" and svc["metadata"].get("namespace") == "default":
                spec["clusterIP"] = KUBERNETES_SERVICE_IP
            else:
                used = self._used_service_ips()
                for _ in range(1000):
                    candidate = str(SERVICE_CIDR[random.randint(10, SERVICE_CIDR.num_addresses - 2)])
                    if candidate not in used:
                        spec["clusterIP"] = candidate
                        break
        elif spec["clusterIP"] != "None" and ipaddress.ip_address(spec["clusterIP"]) not in SERVICE_CIDR:
            raise ApiError(422, "Invalid", f'Service "{svc["metadata"]["name"]}" is invalid: spec.clusterIPs: '
                           f'Invalid value: ["{spec["clusterIP"]}"]: failed to allocate IP {spec["clusterIP"]}: '
                           f"the provided IP ({spec['clusterIP']}) is not in the valid range. The range of valid IPs is {SERVICE_CIDR}")
        spec["clusterIPs"] = [spec["clusterIP"]]
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            used = self._used_node_ports()
            previous = {(p.get("port"), p.get("protocol")): p.get("nodePort") for p in old_spec.get("ports") or []}
            for port in spec.get("ports") or []:
                if port.get("nodePort"):
                    continue
                keep = previous.get((port.get("port"), port.get("protocol")))
                if keep:
                    port["nodePort"] = keep
                    continue
                while True:
                    candidate = random.randint(*NODE_PORT_RANGE)
                    if candidate not in used:
                        port["nodePort"] = candidate
                        used.add(candidate)
                        break

    def _default_storage_class(self, pvc: dict) -> None:
        spec = pvc.setdefault("spec", {})
        if "storageClassName" in spec:
            return
        for sc in self.cluster.store.list(("storage.k8s.io", "storageclasses")):
            if (sc["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
                spec["storageClassName"] = sc["metadata"]["name"]
                return

    @staticmethod
    def crd_status(crd: dict) -> None:
        spec = crd.get("spec") or {}
        names = dict(spec.get("names") or {})
        names.setdefault("singular", (names.get("kind") or "").lower())
        names.setdefault("listKind", f"{names.get('kind')}List")
        timestamp = now()
        crd["status"] = {
            "acceptedNames": names,
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": timestamp},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": timestamp},
            ],
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
        }

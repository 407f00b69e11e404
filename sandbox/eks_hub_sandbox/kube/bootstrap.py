"""The objects a new EKS cluster starts with: system namespaces, the ``kubernetes``
service, the gp2 StorageClass and the system priority classes. (Core nodes come from
the node-group controller, system pods from the workloads controller.)"""

from __future__ import annotations

from .cluster import Cluster

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def install(cluster: Cluster) -> None:
    """Create the bootstrap objects that are missing (idempotent)."""
    for name in SYSTEM_NAMESPACES:
        if cluster.find(("", "namespaces"), "", name) is None:
            cluster.create(cluster.resource("", "namespaces"), None,
                           {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    if cluster.find(("", "services"), "default", "kubernetes") is None:
        cluster.create(cluster.resource("", "services"), "default", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]}})
    if cluster.find(("storage.k8s.io", "storageclasses"), "", "gp2") is None:
        cluster.create(cluster.resource("storage.k8s.io", "storageclasses"), None, {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "gp2"},
            "provisioner": "kubernetes.io/aws-ebs", "parameters": {"fsType": "ext4", "type": "gp2"},
            "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"})
    for name, value, description in (
            ("system-cluster-critical", 2000000000, "Used for system critical pods that must run in the cluster, "
                                                    "but can be moved to another node if necessary."),
            ("system-node-critical", 2000001000, "Used for system critical pods that must not be moved from their "
                                                 "current node.")):
        if cluster.find(("scheduling.k8s.io", "priorityclasses"), "", name) is None:
            cluster.create(cluster.resource("scheduling.k8s.io", "priorityclasses"), None, {
                "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                "value": value, "description": description, "preemptionPolicy": "PreemptLowerPriority"})

"""The resource types the emulator serves: built-in kinds and kinds served from CRDs.

A ``ResourceType`` carries what discovery, routing, validation and tables need to
know about one REST resource. ``Registry`` holds the built-ins plus whatever the
installed CustomResourceDefinitions add, and is consulted on every request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # Set for custom resources: the version's openAPIV3Schema and additionalPrinterColumns.
    schema: dict | None = None
    printer_columns: list[dict] = field(default_factory=list)
    custom: bool = False
    # Status may be written on create through the main endpoint (Nodes, Events...).
    status_on_create: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: (group, plural). One stored version per resource."""
        return (self.group, self.plural)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def discovery_entries(self) -> list[dict]:
        """APIResource entries for this type and its subresources (legacy discovery)."""
        entries = [{
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
            **({"shortNames": list(self.short_names)} if self.short_names else {}),
            **({"categories": list(self.categories)} if self.categories else {}),
            "storageVersionHash": "",
        }]
        for sub in self.subresources:
            verbs = {"status": ["get", "patch", "update"], "log": ["get"], "scale": ["get", "patch", "update"],
                     "binding": ["create"], "eviction": ["create"], "finalize": ["update"],
                     "exec": ["create", "get"], "portforward": ["create", "get"]}.get(sub, ["get"])
            kind = {"log": "Pod", "scale": "Scale", "binding": "Binding", "eviction": "Eviction",
                    "exec": "PodExecOptions", "portforward": "PodPortForwardOptions"}.get(sub, self.kind)
            entries.append({"name": f"{self.plural}/{sub}", "singularName": "", "namespaced": self.namespaced,
                            "kind": kind, "verbs": verbs})
        return entries


def _core(plural, kind, namespaced, short=(), subs=(), categories=(), **extra) -> ResourceType:
    return ResourceType("", "v1", plural, kind, namespaced, tuple(short), tuple(subs), tuple(categories), **extra)


def _grp(group, version, plural, kind, namespaced, short=(), subs=(), categories=(), **extra) -> ResourceType:
    return ResourceType(group, version, plural, kind, namespaced, tuple(short), tuple(subs), tuple(categories), **extra)


BUILTIN: list[ResourceType] = [
    _core("namespaces", "Namespace", False, ["ns"], ["status", "finalize"], status_on_create=False),
    _core("pods", "Pod", True, ["po"], ["status", "log", "binding", "eviction", "exec", "portforward"], ["all"]),
    _core("events", "Event", True, ["ev"], status_on_create=True),
    _core("nodes", "Node", False, ["no"], ["status"], status_on_create=True),
    _core("persistentvolumes", "PersistentVolume", False, ["pv"], ["status"]),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"], ["status"]),
    _core("configmaps", "ConfigMap", True, ["cm"]),
    _core("secrets", "Secret", True),
    _core("services", "Service", True, ["svc"], ["status"], ["all"]),
    _core("serviceaccounts", "ServiceAccount", True, ["sa"]),
    _core("endpoints", "Endpoints", True, ["ep"]),
    _core("resourcequotas", "ResourceQuota", True, ["quota"], ["status"]),
    _core("limitranges", "LimitRange", True, ["limits"]),
    _core("replicationcontrollers", "ReplicationController", True, ["rc"], ["status", "scale"], ["all"]),
    _grp("apps", "v1", "deployments", "Deployment", True, ["deploy"], ["status", "scale"], ["all"]),
    _grp("apps", "v1", "daemonsets", "DaemonSet", True, ["ds"], ["status"], ["all"]),
    _grp("apps", "v1", "statefulsets", "StatefulSet", True, ["sts"], ["status", "scale"], ["all"]),
    _grp("apps", "v1", "replicasets", "ReplicaSet", True, ["rs"], ["status", "scale"], ["all"]),
    _grp("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    _grp("batch", "v1", "jobs", "Job", True, (), ["status"], ["all"]),
    _grp("batch", "v1", "cronjobs", "CronJob", True, ["cj"], ["status"], ["all"]),
    _grp("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ["hpa"], ["status"], ["all"]),
    _grp("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _grp("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    _grp("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _grp("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _grp("networking.k8s.io", "v1", "ingresses", "Ingress", True, ["ing"], ["status"]),
    _grp("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    _grp("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ["netpol"]),
    _grp("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"], ["status"]),
    _grp("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ["sc"]),
    _grp("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False),
    _grp("storage.k8s.io", "v1", "csinodes", "CSINode", False),
    _grp("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", False, (), ["status"]),
    _grp("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
         ["crd", "crds"], ["status"]),
    _grp("coordination.k8s.io", "v1", "leases", "Lease", True),
    _grp("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ["pc"]),
    _grp("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    _grp("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False),
    _grp("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
         "ValidatingWebhookConfiguration", False),
    _grp("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", False,
         ["csr"], ["status"]),
]

# Preferred order of API groups in discovery (core first, like a real server).
GROUP_ORDER = ["apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch",
               "certificates.k8s.io", "networking.k8s.io", "policy", "rbac.authorization.k8s.io", "storage.k8s.io",
               "admissionregistration.k8s.io", "apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io",
               "discovery.k8s.io"]


class Registry:
    """Every served resource type, looked up by (group, version, plural) or by kind."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rtype in BUILTIN:
            self.add(rtype)

    def add(self, rtype: ResourceType) -> None:
        self._types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def remove_group_resource(self, group: str, plural: str) -> list[ResourceType]:
        removed = [t for k, t in self._types.items() if k[0] == group and k[2] == plural]
        for rtype in removed:
            del self._types[(rtype.group, rtype.version, rtype.plural)]
        return removed

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_key(self, group: str, plural: str) -> ResourceType | None:
        for (g, _, p), rtype in self._types.items():
            if g == group and p == plural:
                return rtype
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rtype in self._types.values():
            if rtype.group == group and rtype.version == version and rtype.kind == kind:
                return rtype
        return None

    def types(self) -> list[ResourceType]:
        return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        """group -> served versions, groups in discovery order (core group under "")."""
        groups: dict[str, list[str]] = {}
        for rtype in self._types.values():
            versions = groups.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)
        order = {name: index for index, name in enumerate(GROUP_ORDER)}
        return dict(sorted(groups.items(), key=lambda item: (item[0] != "", order.get(item[0], len(order)), item[0])))

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and t.version == version]

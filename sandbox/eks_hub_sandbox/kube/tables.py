"""``Table`` responses (``Accept: application/json;as=Table``) so ``kubectl get`` prints the
same columns as against a real cluster, ``-o wide`` included (priority-1 columns)."""

from __future__ import annotations

from datetime import datetime, timezone

from . import jsonpath
from .objects import parse_time
from .resources import ResourceType

_ACCESS_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery HumanDuration: ``95s``, ``5m3s``, ``2h10m``, ``3d4h``..."""
    seconds = int(seconds)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None) -> str:
    moment = parse_time(timestamp)
    if moment is None:
        return "<unknown>"
    return human_duration((datetime.now(timezone.utc) - moment).total_seconds())


def _col(name: str, type_: str = "string", priority: int = 0, format_: str = "", description: str = "") -> dict:
    return {"name": name, "type": type_, "format": format_, "description": description or name, "priority": priority}


NAME = _col("Name", format_="name", description="Name must be unique within a namespace.")
AGE = _col("Age", description="CreationTimestamp is a timestamp representing the server time when this object was created.")


def _none(value) -> str:
    return str(value) if value not in (None, "", []) else "<none>"


def _pod_row(pod: dict):
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(cs.get("restartCount", 0) for cs in statuses)
    reason = status.get("reason") or status.get("phase") or "Pending"
    init_statuses = status.get("initContainerStatuses") or []
    for index, cs in enumerate(init_statuses):
        state = cs.get("state") or {}
        if "terminated" in state and state["terminated"].get("exitCode") == 0:
            continue
        if "waiting" in state and state["waiting"].get("reason") not in (None, "PodInitializing"):
            reason = f"Init:{state['waiting']['reason']}"
        else:
            reason = f"Init:{index}/{len(spec.get('initContainers') or [])}"
        break
    else:
        for cs in reversed(statuses):
            state = cs.get("state") or {}
            if "waiting" in state and state["waiting"].get("reason"):
                reason = state["waiting"]["reason"]
            elif "terminated" in state:
                reason = state["terminated"].get("reason") or f"ExitCode:{state['terminated'].get('exitCode')}"
        if reason == "Running" and ready < total and status.get("phase") == "Running":
            reason = "Running"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [pod["metadata"]["name"], f"{ready}/{total}", reason, str(restarts), age(pod["metadata"].get("creationTimestamp")),
            _none(status.get("podIP")), _none(spec.get("nodeName")), _none(status.get("nominatedNodeName")),
            "<none>" if not gates else f"0/{len(gates)}"]


def pod_status(pod: dict) -> str:
    """The STATUS column of ``kubectl get pods`` (Running, Pending, ContainerCreating, CrashLoopBackOff...)."""
    return _pod_row(pod)[2]


def _node_row(node: dict):
    status = node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Ready" if ready and ready.get("status") == "True" else ("NotReady" if ready else "Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in (node["metadata"].get("labels") or {}) if k.startswith("node-role.kubernetes.io/"))
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [node["metadata"]["name"], state, ",".join(roles) or "<none>", age(node["metadata"].get("creationTimestamp")),
            info.get("kubeletVersion", ""), _none(addresses.get("InternalIP")), _none(addresses.get("ExternalIP")),
            info.get("osImage", ""), info.get("kernelVersion", ""), info.get("containerRuntimeVersion", "")]


def _modes(modes) -> str:
    return ",".join(_ACCESS_MODES.get(m, m) for m in modes or [])


def _pvc_row(pvc: dict):
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    phase = status.get("phase", "Pending")
    bound = phase == "Bound"
    if pvc["metadata"].get("deletionTimestamp"):
        phase = "Terminating"
    return [pvc["metadata"]["name"], phase, spec.get("volumeName", ""),
            (status.get("capacity") or {}).get("storage", "") if bound else "",
            _modes(status.get("accessModes")) if bound else "", _none(spec.get("storageClassName")),
            _none(spec.get("volumeAttributesClassName")), age(pvc["metadata"].get("creationTimestamp")),
            spec.get("volumeMode", "Filesystem")]


def _pv_row(pv: dict):
    spec, status = pv.get("spec") or {}, pv.get("status") or {}
    claim = spec.get("claimRef") or {}
    phase = "Terminating" if pv["metadata"].get("deletionTimestamp") else status.get("phase", "Pending")
    return [pv["metadata"]["name"], (spec.get("capacity") or {}).get("storage", ""), _modes(spec.get("accessModes")),
            spec.get("persistentVolumeReclaimPolicy", ""), phase,
            f"{claim.get('namespace')}/{claim.get('name')}" if claim else "", spec.get("storageClassName", ""),
            _none(spec.get("volumeAttributesClassName")), status.get("reason", ""),
            age(pv["metadata"].get("creationTimestamp")), spec.get("volumeMode", "Filesystem")]


def _service_row(svc: dict):
    spec = svc.get("spec") or {}
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("hostname") or i.get("ip") or "" for i in ingress)
    if spec.get("type") == "LoadBalancer" and not external:
        external = "<pending>"
    if spec.get("type") == "ExternalName":
        external = spec.get("externalName", "")
    ports = ",".join(f"{p['port']}:{p['nodePort']}/{p.get('protocol', 'TCP')}" if p.get("nodePort")
                     else f"{p['port']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [svc["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"), external or "<none>",
            ports or "<none>", age(svc["metadata"].get("creationTimestamp")), selector or "<none>"]


def _event_row(event: dict):
    involved = event.get("involvedObject") or {}
    last = event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp")
    source = (event.get("source") or {}).get("component") or event.get("reportingComponent") or ""
    return [age(last), event.get("type", ""), event.get("reason", ""),
            f"{(involved.get('kind') or '').lower()}/{involved.get('name', '')}", event.get("message", ""),
            involved.get("fieldPath", ""), source, age(event.get("firstTimestamp") or last), str(event.get("count", 1)),
            event["metadata"]["name"]]


def _deployment_row(obj: dict):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    containers = (spec.get("template") or {}).get("spec", {}).get("containers") or []
    selector = ",".join(f"{k}={v}" for k, v in sorted(((spec.get("selector") or {}).get("matchLabels") or {}).items()))
    return [obj["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            str(status.get("updatedReplicas", 0)), str(status.get("availableReplicas", 0)),
            age(obj["metadata"].get("creationTimestamp")), ",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers), selector]


def _daemonset_row(obj: dict):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(((spec.get("template") or {}).get("spec", {}).get("nodeSelector") or {}).items()))
    return [obj["metadata"]["name"], str(status.get("desiredNumberScheduled", 0)), str(status.get("currentNumberScheduled", 0)),
            str(status.get("numberReady", 0)), str(status.get("updatedNumberScheduled", 0)),
            str(status.get("numberAvailable", 0)), selector or "<none>", age(obj["metadata"].get("creationTimestamp"))]


def _statefulset_row(obj: dict):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [obj["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            age(obj["metadata"].get("creationTimestamp"))]


def _replicaset_row(obj: dict):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [obj["metadata"]["name"], str(spec.get("replicas", 1)), str(status.get("replicas", 0)),
            str(status.get("readyReplicas", 0)), age(obj["metadata"].get("creationTimestamp"))]


def _storageclass_row(obj: dict):
    name = obj["metadata"]["name"]
    if (obj["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [name, obj.get("provisioner", ""), obj.get("reclaimPolicy", "Delete"), obj.get("volumeBindingMode", "Immediate"),
            str(bool(obj.get("allowVolumeExpansion", False))).lower(), age(obj["metadata"].get("creationTimestamp"))]


def _namespace_row(obj: dict):
    return [obj["metadata"]["name"], (obj.get("status") or {}).get("phase", "Active"), age(obj["metadata"].get("creationTimestamp"))]


def _data_row(obj: dict):
    return [obj["metadata"]["name"], str(len(obj.get("data") or {}) + len(obj.get("binaryData") or {})),
            age(obj["metadata"].get("creationTimestamp"))]


def _secret_row(obj: dict):
    return [obj["metadata"]["name"], obj.get("type", "Opaque"), str(len(obj.get("data") or {})),
            age(obj["metadata"].get("creationTimestamp"))]


def _crd_row(obj: dict):
    return [obj["metadata"]["name"], obj["metadata"].get("creationTimestamp", "")]


BUILTIN_TABLES = {
    "Pod": ([NAME, _col("Ready"), _col("Status"), _col("Restarts", "string"), AGE, _col("IP", priority=1),
             _col("Node", priority=1), _col("Nominated Node", priority=1), _col("Readiness Gates", priority=1)], _pod_row),
    "Node": ([NAME, _col("Status"), _col("Roles"), AGE, _col("Version"), _col("Internal-IP", priority=1),
              _col("External-IP", priority=1), _col("OS-Image", priority=1), _col("Kernel-Version", priority=1),
              _col("Container-Runtime", priority=1)], _node_row),
    "PersistentVolumeClaim": ([NAME, _col("Status"), _col("Volume"), _col("Capacity"), _col("Access Modes"),
                               _col("StorageClass"), _col("VolumeAttributesClass"), AGE,
                               _col("VolumeMode", priority=1)], _pvc_row),
    "PersistentVolume": ([NAME, _col("Capacity"), _col("Access Modes"), _col("Reclaim Policy"), _col("Status"),
                          _col("Claim"), _col("StorageClass"), _col("VolumeAttributesClass"), _col("Reason"), AGE,
                          _col("VolumeMode", priority=1)], _pv_row),
    "Service": ([NAME, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), AGE,
                 _col("Selector", priority=1)], _service_row),
    "Event": ([_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message"),
               _col("Subobject", priority=1), _col("Source", priority=1), _col("First Seen", priority=1),
               _col("Count", priority=1), _col("Name", priority=1)], _event_row),
    "Deployment": ([NAME, _col("Ready"), _col("Up-to-date"), _col("Available"), AGE, _col("Containers", priority=1),
                    _col("Images", priority=1), _col("Selector", priority=1)], _deployment_row),
    "DaemonSet": ([NAME, _col("Desired"), _col("Current"), _col("Ready"), _col("Up-to-date"), _col("Available"),
                   _col("Node Selector"), AGE], _daemonset_row),
    "StatefulSet": ([NAME, _col("Ready"), AGE], _statefulset_row),
    "ReplicaSet": ([NAME, _col("Desired"), _col("Current"), _col("Ready"), AGE], _replicaset_row),
    "StorageClass": ([NAME, _col("Provisioner"), _col("ReclaimPolicy"), _col("VolumeBindingMode"),
                      _col("AllowVolumeExpansion"), AGE], _storageclass_row),
    "Namespace": ([NAME, _col("Status"), AGE], _namespace_row),
    "ConfigMap": ([NAME, _col("Data"), AGE], _data_row),
    "Secret": ([NAME, _col("Type"), _col("Data"), AGE], _secret_row),
    "CustomResourceDefinition": ([NAME, _col("Created At", "date")], _crd_row),
}


def _custom_columns(rtype: ResourceType):
    columns = [NAME]
    for column in rtype.printer_columns:
        columns.append(_col(column["name"], column.get("type", "string"), column.get("priority", 0),
                            column.get("format", ""), column.get("description", "")))
    if not rtype.printer_columns:
        columns.append(AGE)

    def row(obj: dict):
        cells = [obj["metadata"]["name"]]
        for column in rtype.printer_columns:
            values = jsonpath.evaluate(obj, column["jsonPath"])
            if not values:
                cells.append(None)
            elif column.get("type") == "date":
                cells.append(age(values[0]))
            else:
                cells.append(values[0] if isinstance(values[0], (int, float, bool, str)) else str(values[0]))
        if not rtype.printer_columns:
            cells.append(age(obj["metadata"].get("creationTimestamp")))
        return cells

    return columns, row


def columns_and_row(rtype: ResourceType):
    if rtype.custom:
        return _custom_columns(rtype)
    if rtype.kind in BUILTIN_TABLES:
        return BUILTIN_TABLES[rtype.kind]
    return [NAME, AGE], lambda obj: [obj["metadata"]["name"], age(obj["metadata"].get("creationTimestamp"))]


def _row_object(obj: dict, include: str):
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def table(rtype: ResourceType, objects: list[dict], resource_version: str, include: str = "Metadata",
          with_columns: bool = True, continue_token: str = "") -> dict:
    """A meta.k8s.io/v1 Table of ``objects``."""
    columns, row = columns_and_row(rtype)
    rows = []
    for obj in objects:
        entry = {"cells": row(obj)}
        row_object = _row_object(obj, include)
        if row_object is not None:
            entry["object"] = row_object
        rows.append(entry)
    metadata = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    result = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "rows": rows}
    if with_columns:
        result["columnDefinitions"] = columns
    return result

"""Checks the API server makes beyond the OpenAPI schema (its Go validation code), for
the kinds this project uses: object names and labels, pod specs (also inside
workload templates), services, persistent volume claims, CRDs, workload selectors,
and which fields may change on update.
"""

from __future__ import annotations

import re

from . import quantity
from .selectors import match_label_selector
from .validation import Cause

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
NATIVE_RESOURCES = {"cpu", "memory", "ephemeral-storage", "storage", "pods"}
NAME_RULES = {"Namespace": "label", "Service": "label", "Role": "path", "ClusterRole": "path",
              "RoleBinding": "path", "ClusterRoleBinding": "path", "Event": "path"}


def _label_errors(value: str, field: str) -> list[Cause]:
    return [Cause.make("FieldValueInvalid", field,
                       f'Invalid value: "{value}": a lowercase RFC 1123 label must consist of lower case '
                       f"alphanumeric characters or '-', and must start and end with an alphanumeric character")] \
        if len(value) > 63 or not _DNS_LABEL.match(value) else []


def _subdomain_errors(value: str, field: str) -> list[Cause]:
    return [Cause.make("FieldValueInvalid", field,
                       f'Invalid value: "{value}": a lowercase RFC 1123 subdomain must consist of lower case '
                       f"alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")] \
        if len(value) > 253 or not _DNS_SUBDOMAIN.match(value) else []


def name_errors(kind: str, name: str, field: str = "metadata.name") -> list[Cause]:
    """Name format rules per kind (DNS label, DNS subdomain or path segment)."""
    rule = NAME_RULES.get(kind, "subdomain")
    if rule == "label":
        return _label_errors(name, field)
    if rule == "path":
        if name in (".", "..") or "/" in name or "%" in name:
            return [Cause.make("FieldValueInvalid", field, f'Invalid value: "{name}": may not contain \'/\' or \'%\'')]
        return []
    return _subdomain_errors(name, field)


def _qualified_key_errors(key: str, field: str) -> list[Cause]:
    prefix, _, name = key.rpartition("/")
    if (prefix and _subdomain_errors(prefix, field)) or not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return [Cause.make("FieldValueInvalid", field,
                           f'Invalid value: "{key}": name part must consist of alphanumeric characters, \'-\', '
                           f"'_' or '.', and must start and end with an alphanumeric character")]
    return []


def labels_errors(labels: dict | None, field: str) -> list[Cause]:
    causes = []
    for key, value in (labels or {}).items():
        causes += _qualified_key_errors(key, field)
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(Cause.make("FieldValueInvalid", f"{field}", f'Invalid value: "{value}": a valid label '
                                     f"must be an empty string or consist of alphanumeric characters, '-', '_' or '.'"))
    return causes


def meta_errors(obj: dict, kind: str) -> list[Cause]:
    meta = obj.get("metadata") or {}
    causes = []
    if not meta.get("name"):
        causes.append(Cause.make("FieldValueRequired", "metadata.name", "Required value: name or generateName is required"))
    else:
        causes += name_errors(kind, meta["name"])
    causes += labels_errors(meta.get("labels"), "metadata.labels")
    for key in (meta.get("annotations") or {}):
        causes += _qualified_key_errors(key, "metadata.annotations")
    return causes


def _is_extended(resource: str) -> bool:
    return resource not in NATIVE_RESOURCES and not resource.startswith("hugepages-") and \
        not resource.startswith("requests.") and "/" in resource and \
        not resource.split("/", 1)[0].endswith("kubernetes.io")


def _resources_errors(resources: dict, field: str) -> list[Cause]:
    causes = []
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    parsed: dict[str, dict] = {"limits": {}, "requests": {}}
    for section, values in (("limits", limits), ("requests", requests)):
        for name, value in values.items():
            path = f"{field}.{section}[{name}]"
            try:
                parsed[section][name] = quantity.parse(value)
            except quantity.QuantityError as exc:
                causes.append(Cause.make("FieldValueInvalid", path, f"Invalid value: {value!r}: {exc}"))
                continue
            if parsed[section][name] < 0:
                causes.append(Cause.make("FieldValueInvalid", path, f'Invalid value: "{value}": must be greater than or equal to 0'))
            if _is_extended(name) and parsed[section][name].denominator != 1:
                causes.append(Cause.make("FieldValueInvalid", path, f'Invalid value: "{value}": must be an integer'))
    for name, request in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if _is_extended(name):
            if limit is None:
                causes.append(Cause.make("FieldValueRequired", f"{field}.limits",
                                         f"Required value: Limit must be set for non overcommitable resources"))
            elif limit != request:
                causes.append(Cause.make("FieldValueInvalid", f"{field}.requests[{name}]",
                                         f'Invalid value: "{requests[name]}": must be equal to {name} limit of {limits[name]}'))
        elif limit is not None and request > limit:
            causes.append(Cause.make("FieldValueInvalid", f"{field}.requests[{name}]",
                                     f'Invalid value: "{requests[name]}": must be less than or equal to {name} limit of {limits[name]}'))
    return causes


def pod_spec_errors(spec: dict, field: str) -> list[Cause]:
    """Validation of a PodSpec at ``field`` (``spec`` or ``spec.template.spec``)."""
    causes: list[Cause] = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append(Cause.make("FieldValueRequired", f"{field}.containers", "Required value"))
    volumes = {}
    for index, volume in enumerate(spec.get("volumes") or []):
        name = volume.get("name") or ""
        causes += _label_errors(name, f"{field}.volumes[{index}].name")
        if name in volumes:
            causes.append(Cause.make("FieldValueDuplicate", f"{field}.volumes[{index}].name", f'Duplicate value: "{name}"'))
        volumes[name] = volume
    seen: set[str] = set()
    for section in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(section) or []):
            path = f"{field}.{section}[{index}]"
            name = container.get("name") or ""
            if not name:
                causes.append(Cause.make("FieldValueRequired", f"{path}.name", "Required value"))
            else:
                causes += _label_errors(name, f"{path}.name")
            if name in seen:
                causes.append(Cause.make("FieldValueDuplicate", f"{path}.name", f'Duplicate value: "{name}"'))
            seen.add(name)
            if not container.get("image"):
                causes.append(Cause.make("FieldValueRequired", f"{path}.image", "Required value"))
            for p_index, port in enumerate(container.get("ports") or []):
                number = port.get("containerPort")
                if not isinstance(number, int) or not 0 < number < 65536:
                    causes.append(Cause.make("FieldValueInvalid", f"{path}.ports[{p_index}].containerPort",
                                             f"Invalid value: {number}: must be between 1 and 65535, inclusive"))
                if port.get("protocol") not in (None, "TCP", "UDP", "SCTP"):
                    causes.append(Cause.make("FieldValueNotSupported", f"{path}.ports[{p_index}].protocol",
                                             f'Unsupported value: "{port.get("protocol")}": supported values: "SCTP", "TCP", "UDP"'))
            mounts: set[str] = set()
            for m_index, mount in enumerate(container.get("volumeMounts") or []):
                if mount.get("name") not in volumes:
                    causes.append(Cause.make("FieldValueNotFound", f"{path}.volumeMounts[{m_index}].name",
                                             f'Not found: "{mount.get("name")}"'))
                mount_path = mount.get("mountPath") or ""
                if not mount_path:
                    causes.append(Cause.make("FieldValueRequired", f"{path}.volumeMounts[{m_index}].mountPath", "Required value"))
                elif mount_path in mounts:
                    causes.append(Cause.make("FieldValueInvalid", f"{path}.volumeMounts[{m_index}].mountPath",
                                             f'Invalid value: "{mount_path}": must be unique'))
                mounts.add(mount_path)
                if (mount.get("subPath") or "").startswith("/") or ".." in (mount.get("subPath") or "").split("/"):
                    causes.append(Cause.make("FieldValueInvalid", f"{path}.volumeMounts[{m_index}].subPath",
                                             f'Invalid value: "{mount.get("subPath")}": must be a relative path without \'..\''))
            causes += _resources_errors(container.get("resources") or {}, f"{path}.resources")
    if spec.get("restartPolicy") not in (None, "Always", "OnFailure", "Never"):
        causes.append(Cause.make("FieldValueNotSupported", f"{field}.restartPolicy",
                                 f'Unsupported value: "{spec.get("restartPolicy")}": supported values: "Always", "OnFailure", "Never"'))
    for index, toleration in enumerate(spec.get("tolerations") or []):
        path = f"{field}.tolerations[{index}]"
        operator = toleration.get("operator") or "Equal"
        if operator not in ("Equal", "Exists"):
            causes.append(Cause.make("FieldValueNotSupported", f"{path}.operator",
                                     f'Unsupported value: "{operator}": supported values: "Equal", "Exists"'))
        if operator == "Exists" and toleration.get("value"):
            causes.append(Cause.make("FieldValueInvalid", f"{path}.operator",
                                     f'Invalid value: "{toleration.get("value")}": value must be empty when `operator` is \'Exists\''))
        if not toleration.get("key") and operator != "Exists":
            causes.append(Cause.make("FieldValueInvalid", f"{path}.operator",
                                     f'Invalid value: "{operator}": operator must be Exists when `key` is empty, '
                                     f"which means \"match all values and all keys\""))
        if toleration.get("effect") not in (None, "", "NoSchedule", "PreferNoSchedule", "NoExecute"):
            causes.append(Cause.make("FieldValueNotSupported", f"{path}.effect",
                                     f'Unsupported value: "{toleration.get("effect")}": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'))
    causes += labels_errors(spec.get("nodeSelector"), f"{field}.nodeSelector")
    return causes


def _template_errors(obj: dict, restart_policies=("Always",)) -> list[Cause]:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    causes = []
    selector = spec.get("selector")
    labels = (template.get("metadata") or {}).get("labels") or {}
    if obj.get("kind") != "Job":
        if not selector:
            causes.append(Cause.make("FieldValueRequired", "spec.selector", "Required value"))
        elif not match_label_selector(selector, labels):
            causes.append(Cause.make("FieldValueInvalid", "spec.template.metadata.labels",
                                     f"Invalid value: {labels}: `selector` does not match template `labels`"))
    causes += labels_errors(labels, "spec.template.metadata.labels")
    pod_spec = template.get("spec") or {}
    causes += pod_spec_errors(pod_spec, "spec.template.spec")
    policy = pod_spec.get("restartPolicy")
    if policy and policy not in restart_policies:
        causes.append(Cause.make("FieldValueNotSupported", "spec.template.spec.restartPolicy",
                                 f'Unsupported value: "{policy}": supported values: {", ".join(map(repr, restart_policies))}'))
    return causes


def _service_errors(obj: dict) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = []
    if spec.get("type", "ClusterIP") not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        causes.append(Cause.make("FieldValueNotSupported", "spec.type", f'Unsupported value: "{spec.get("type")}"'))
    if spec.get("type") != "ExternalName" and not spec.get("ports") and spec.get("clusterIP") != "None":
        causes.append(Cause.make("FieldValueRequired", "spec.ports", "Required value"))
    names = set()
    for index, port in enumerate(spec.get("ports") or []):
        number = port.get("port")
        if not isinstance(number, int) or not 0 < number < 65536:
            causes.append(Cause.make("FieldValueInvalid", f"spec.ports[{index}].port",
                                     f"Invalid value: {number}: must be between 1 and 65535, inclusive"))
        if len(spec.get("ports")) > 1 and not port.get("name"):
            causes.append(Cause.make("FieldValueRequired", f"spec.ports[{index}].name", "Required value"))
        if port.get("name") in names:
            causes.append(Cause.make("FieldValueDuplicate", f"spec.ports[{index}].name", f'Duplicate value: "{port.get("name")}"'))
        names.add(port.get("name"))
    return causes


def _pvc_errors(obj: dict) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = []
    if not spec.get("accessModes"):
        causes.append(Cause.make("FieldValueRequired", "spec.accessModes", "Required value: at least 1 access mode is required"))
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        causes.append(Cause.make("FieldValueRequired", "spec.resources[storage]", "Required value"))
    elif not quantity.is_valid(storage):
        causes.append(Cause.make("FieldValueInvalid", "spec.resources[storage]", f"Invalid value: {storage!r}"))
    return causes


def _crd_errors(obj: dict) -> list[Cause]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    causes = []
    expected = f"{names.get('plural')}.{spec.get('group')}"
    if obj["metadata"].get("name") != expected:
        causes.append(Cause.make("FieldValueInvalid", "metadata.name",
                                 f'Invalid value: "{obj["metadata"].get("name")}": must be spec.names.plural+"."+spec.group'))
    versions = spec.get("versions") or []
    if sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(Cause.make("FieldValueInvalid", "spec.versions", "Invalid value: must have exactly one version marked as storage version"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(Cause.make("FieldValueNotSupported", "spec.scope", f'Unsupported value: "{spec.get("scope")}"'))
    return causes


def _data_key_errors(obj: dict) -> list[Cause]:
    causes = []
    for section in ("data", "binaryData", "stringData"):
        for key in (obj.get(section) or {}):
            if len(key) > 253 or not _CONFIG_KEY.match(key):
                causes.append(Cause.make("FieldValueInvalid", f"{section}[{key}]",
                                         f"Invalid value: \"{key}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"))
    return causes


def object_errors(obj: dict) -> list[Cause]:
    """All semantic checks for a new or updated object."""
    kind = obj.get("kind", "")
    causes = meta_errors(obj, kind)
    if kind == "Pod":
        causes += pod_spec_errors(obj.get("spec") or {}, "spec")
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        causes += _template_errors(obj)
    elif kind == "Job":
        causes += _template_errors(obj, ("OnFailure", "Never"))
    elif kind == "Service":
        causes += _service_errors(obj)
    elif kind == "PersistentVolumeClaim":
        causes += _pvc_errors(obj)
    elif kind == "CustomResourceDefinition":
        causes += _crd_errors(obj)
    elif kind in ("ConfigMap", "Secret"):
        causes += _data_key_errors(obj)
    return causes


_POD_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "nodeName",
                "schedulingGates")


def update_errors(old: dict, new: dict) -> list[Cause]:
    """Fields that may not change on update (pod specs, PVC specs, service cluster IPs)."""
    kind = new.get("kind")
    if kind == "Pod":
        def strip(spec: dict) -> dict:
            spec = {k: v for k, v in (spec or {}).items() if k not in _POD_MUTABLE}
            for section in ("containers", "initContainers"):
                spec[section] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(section) or []]
            return spec
        if strip(old.get("spec")) != strip(new.get("spec")):
            return [Cause.make("FieldValueForbidden", "spec",
                               "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
                               "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                               "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                               "(allow it to be set to 1 if it was previously negative)")]
    if kind == "PersistentVolumeClaim":
        def strip_pvc(spec: dict) -> dict:
            return {k: v for k, v in (spec or {}).items() if k not in ("resources", "volumeAttributesClassName", "volumeName")}
        if strip_pvc(old.get("spec")) != strip_pvc(new.get("spec")):
            return [Cause.make("FieldValueForbidden", "spec",
                               "Forbidden: spec is immutable after creation except resources.requests and "
                               "volumeAttributesClassName for bound claims")]
    if kind == "Service":
        before, after = (old.get("spec") or {}).get("clusterIP"), (new.get("spec") or {}).get("clusterIP")
        if after and before and after != before:
            return [Cause.make("FieldValueInvalid", "spec.clusterIPs[0]", "Invalid value: field is immutable")]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        if (old.get("spec") or {}).get("selector") != (new.get("spec") or {}).get("selector"):
            return [Cause.make("FieldValueInvalid", "spec.selector", "Invalid value: field is immutable")]
    return []

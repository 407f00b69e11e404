"""Kubernetes client helpers for the notebooks: a client for the deployment's cluster and
small queries that return plain rows (lists of dicts) ready for a DataFrame.

The same calls work against EKS and the sandbox cluster. Rows use kubectl's vocabulary
(ready ``1/1``, status, node, instance type...) so tables read like the walkthrough.
"""

from __future__ import annotations

import json
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from .errors import KubeError

ProgressCallback = Callable[[str, str, str], None]
Rows = list[dict[str, Any]]
KARPENTER_GROUP, KARPENTER_AWS_GROUP = "karpenter.sh", "karpenter.k8s.aws"
EXTENDED = ("nvidia.com/gpu", "aws.amazon.com/neuron")


# -- clients ------------------------------------------------------------------------------------------
def load_client(kubeconfig: str | Path | dict | None = None, context: str | None = None):
    """A ``kubernetes.client.ApiClient`` from a kubeconfig file path or dict (None: $KUBECONFIG)."""
    from kubernetes import config

    if isinstance(kubeconfig, dict):
        return config.new_client_from_config_dict(kubeconfig, context=context)
    return config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None, context=context)


def cluster_client(cluster: str, target: str, region: str):
    """An ApiClient for an EKS cluster, built from DescribeCluster + an EKS token (both targets)."""
    from .aws import eks

    return load_client(eks.build_kubeconfig(cluster, target, region))


def client_for(params):
    """An ApiClient for a deployment's cluster (``params``: DeploymentParameters)."""
    return cluster_client(params.cluster_name, params.target, params.region)


def _get(api, path: str, **query) -> dict:
    """GET a Kubernetes API path, returning the decoded JSON (no model conversion)."""
    params = [(k, v) for k, v in query.items() if v not in (None, "")]
    response = api.call_api(path, "GET", query_params=params, header_params={"Accept": "application/json"},
                            auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True)
    return json.loads(response.data)


def _list(api, path: str, namespace: str | None = None, label_selector: str | None = None,
          field_selector: str | None = None) -> list[dict]:
    prefix, _, plural = path.rpartition("/")
    full = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else path
    try:
        return _get(api, full, labelSelector=label_selector, fieldSelector=field_selector).get("items", [])
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status == 404:
            return []
        raise KubeError(f"listing {full} failed: {exc}") from exc


# -- formatting ---------------------------------------------------------------------------------------
def _quantity(value) -> Fraction:
    from kubernetes.utils.quantity import parse_quantity

    try:
        return Fraction(parse_quantity(value)) if value not in (None, "") else Fraction(0)
    except ValueError:
        return Fraction(0)


def _gib(value) -> float:
    return round(float(_quantity(value)) / 2**30, 1)


def _cores(value) -> float:
    return round(float(_quantity(value)), 2)


# -- rows ---------------------------------------------------------------------------------------------
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def _table(api, path: str, namespace: str | None = None, label_selector: str | None = None,
           field_selector: str | None = None) -> list[tuple[dict[str, Any], dict]]:
    """``(columns, object)`` per item, as the API server prints it for ``kubectl get``: the server
    computes STATUS, AGE and the rest, on EKS and on the sandbox alike (``includeObject=Object``
    gives each row its object)."""
    prefix, _, plural = path.rpartition("/")
    full = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else path
    query = [(k, v) for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector),
                                 ("includeObject", "Object")) if v]
    try:
        response = api.call_api(full, "GET", query_params=query, header_params={"Accept": TABLE_ACCEPT},
                                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True)
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return []
        raise KubeError(f"listing {full} failed: {exc}") from exc
    table = json.loads(response.data)
    names = [column["name"] for column in table.get("columnDefinitions") or []]
    return [(dict(zip(names, row.get("cells") or [])), row.get("object") or {}) for row in table.get("rows") or []]


def _ready(cell: str) -> tuple[int, int]:
    ready, _, total = str(cell).partition("/")
    return (int(ready), int(total)) if ready.isdigit() and total.isdigit() else (0, 0)


def pods(api, namespace: str | None = None, label_selector: str | None = None,
         field_selector: str | None = None) -> Rows:
    """Pods (all namespaces when ``namespace`` is None): namespace, pod, ready, status, restarts, node, ip, age, is_ready."""
    rows = []
    for columns, pod in _table(api, "/api/v1/pods", namespace, label_selector, field_selector):
        ready, total = _ready(columns.get("Ready", ""))
        rows.append({
            "namespace": pod["metadata"].get("namespace", ""),
            "pod": pod["metadata"]["name"],
            "ready": columns.get("Ready", ""),
            "status": columns.get("Status", ""),
            "restarts": int(str(columns.get("Restarts", 0)).split()[0] or 0),
            "node": (pod.get("spec") or {}).get("nodeName") or "",
            "ip": (pod.get("status") or {}).get("podIP") or "",
            "age": columns.get("Age", ""),
            "is_ready": total > 0 and ready == total,
        })
    return rows


def nodes(api, label_selector: str | None = None) -> Rows:
    """Nodes: node, instance_type, zone, capacity_type, pool (NodePool or node group), ready, cpu/memory
    allocatable, GPU and Neuron capacity and allocatable, pods, age."""
    rows = []
    for columns, node in _table(api, "/api/v1/nodes", label_selector=label_selector):
        labels = node["metadata"].get("labels") or {}
        status = node.get("status") or {}
        capacity, allocatable = status.get("capacity") or {}, status.get("allocatable") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        rows.append({
            "node": node["metadata"]["name"],
            "instance_type": labels.get("node.kubernetes.io/instance-type", ""),
            "zone": labels.get("topology.kubernetes.io/zone", ""),
            "capacity_type": labels.get("karpenter.sh/capacity-type") or
            labels.get("eks.amazonaws.com/capacityType", "").lower().replace("_", "-"),
            "pool": labels.get("karpenter.sh/nodepool") or labels.get("eks.amazonaws.com/nodegroup", ""),
            "ready": ready,
            "cpu": _cores(allocatable.get("cpu")),
            "memory_gib": _gib(allocatable.get("memory")),
            "gpu_capacity": int(_quantity(capacity.get("nvidia.com/gpu"))),
            "gpu_allocatable": int(_quantity(allocatable.get("nvidia.com/gpu"))),
            "mig": ", ".join(f"{k.split('/', 1)[1]}={v}" for k, v in sorted(allocatable.items())
                             if k.startswith("nvidia.com/mig-")),
            "neuron": int(_quantity(allocatable.get("aws.amazon.com/neuron"))),
            "pods": int(_quantity(allocatable.get("pods"))),
            "age": columns.get("Age", ""),
        })
    return rows


def pvcs(api, namespace: str | None = None) -> Rows:
    """Persistent volume claims: namespace, pvc, status, volume, capacity, access_modes, storage_class."""
    rows = []
    for columns, pvc in _table(api, "/api/v1/persistentvolumeclaims", namespace):
        status = pvc.get("status") or {}
        rows.append({
            "namespace": pvc["metadata"]["namespace"],
            "pvc": pvc["metadata"]["name"],
            "status": columns.get("Status") or status.get("phase", "Pending"),
            "volume": (pvc.get("spec") or {}).get("volumeName", ""),
            "capacity": (status.get("capacity") or {}).get("storage", ""),
            "access_modes": ",".join(status.get("accessModes") or (pvc.get("spec") or {}).get("accessModes") or []),
            "storage_class": (pvc.get("spec") or {}).get("storageClassName") or "",
            "age": columns.get("Age", ""),
        })
    return rows


def _requirement_values(requirements: list[dict], key: str) -> str:
    for requirement in requirements:
        if requirement.get("key") == key:
            return f"{requirement.get('operator')} {','.join(requirement.get('values') or [])}".strip()
    return ""


def nodepools(api) -> Rows:
    """Karpenter NodePools: nodepool, nodeclass, instance families/sizes/types, capacity types, taints,
    labels, limits, consolidation, nodes, ready."""
    rows = []
    for pool in _list(api, f"/apis/{KARPENTER_GROUP}/v1/nodepools"):
        spec = pool.get("spec") or {}
        template = spec.get("template") or {}
        tspec = template.get("spec") or {}
        requirements = tspec.get("requirements") or []
        disruption = spec.get("disruption") or {}
        status = pool.get("status") or {}
        rows.append({
            "nodepool": pool["metadata"]["name"],
            "nodeclass": (tspec.get("nodeClassRef") or {}).get("name", ""),
            "instance_family": _requirement_values(requirements, "karpenter.k8s.aws/instance-family"),
            "instance_size": _requirement_values(requirements, "karpenter.k8s.aws/instance-size"),
            "instance_type": _requirement_values(requirements, "node.kubernetes.io/instance-type"),
            "capacity_type": _requirement_values(requirements, "karpenter.sh/capacity-type"),
            "labels": ", ".join(f"{k}={v}" for k, v in sorted(((template.get("metadata") or {}).get("labels") or {}).items())),
            "taints": ", ".join(f"{t.get('key')}:{t.get('effect')}" for t in tspec.get("taints") or []),
            "limits": ", ".join(f"{k}={v}" for k, v in sorted((spec.get("limits") or {}).items())),
            "consolidation": f"{disruption.get('consolidationPolicy', '')} after {disruption.get('consolidateAfter', '')}",
            "nodes": int(status.get("nodes") or 0),
            "ready": any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []),
        })
    return rows


def ec2nodeclasses(api) -> Rows:
    """Karpenter EC2NodeClasses: name, role, ami (alias or ids), ready."""
    rows = []
    for nodeclass in _list(api, f"/apis/{KARPENTER_AWS_GROUP}/v1/ec2nodeclasses"):
        spec = nodeclass.get("spec") or {}
        terms = spec.get("amiSelectorTerms") or []
        rows.append({
            "ec2nodeclass": nodeclass["metadata"]["name"],
            "role": spec.get("role") or spec.get("instanceProfile", ""),
            "ami": ", ".join(t.get("alias") or t.get("id") or t.get("name", "") for t in terms),
            "ready": any(c.get("type") == "Ready" and c.get("status") == "True"
                         for c in (nodeclass.get("status") or {}).get("conditions") or []),
        })
    return rows


def placement(api, namespace: str | None = None, label_selector: str | None = None) -> Rows:
    """Where pods landed: pod, uid, status, node, instance_type, nodepool, cpu/memory/GPU requests, ip.

    Requests are what the scheduler reserved for the pod (``platform.scheduling.pod_requests``:
    init containers and pod overhead included); extended resources are requested as their limits.
    """
    from .platform.scheduling import pod_requests

    node_info = {n["node"]: n for n in nodes(api)}
    rows = []
    for columns, pod in _table(api, "/api/v1/pods", namespace, label_selector):
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        info = node_info.get(node_name, {})
        requests = pod_requests(pod)
        rows.append({
            "namespace": pod["metadata"]["namespace"],
            "pod": pod["metadata"]["name"],
            "uid": pod["metadata"].get("uid", ""),
            "status": columns.get("Status", ""),
            "node": node_name,
            "instance_type": info.get("instance_type", ""),
            "nodepool": info.get("pool", ""),
            "cpu_request": float(requests.get("cpu", 0)),
            "memory_request_gib": round(float(requests.get("memory", 0)) / 2**30, 2),
            "gpu_request": int(requests.get("nvidia.com/gpu", 0)),
            "extended": ", ".join(f"{k}={int(v)}" for k, v in sorted(requests.items())
                                  if "/" in k and k != "nvidia.com/gpu"),
            "ip": (pod.get("status") or {}).get("podIP") or "",
        })
    return rows


def events(api, namespace: str | None = None, involved_name: str | None = None,
           involved_uid: str | None = None) -> Rows:
    """Events, oldest first: last_seen, type, reason, object, message, count.

    ``involved_uid`` keeps one incarnation of an object: a user's pod deleted and started again
    keeps its name, and the events of the old pod stay listed under that name for an hour.
    """
    terms = [f"involvedObject.name={involved_name}" if involved_name else "",
             f"involvedObject.uid={involved_uid}" if involved_uid else ""]
    selector = ",".join(t for t in terms if t) or None
    items = _table(api, "/api/v1/events", namespace, field_selector=selector)
    items.sort(key=lambda item: item[1].get("lastTimestamp") or item[1]["metadata"].get("creationTimestamp") or "")
    return [{"last_seen": columns.get("Last Seen", ""),
             "type": e.get("type", ""), "reason": e.get("reason", ""),
             "object": f"{(e.get('involvedObject') or {}).get('kind', '').lower()}/{(e.get('involvedObject') or {}).get('name', '')}",
             "message": e.get("message", ""), "count": e.get("count", 1)} for columns, e in items]


def node(api, name: str) -> dict:
    """One node as the API has it (metadata, labels, status with capacity and allocatable)."""
    return _get(api, f"/api/v1/nodes/{name}")


def exec_in_pod(api, namespace: str, pod: str, command: list[str], container: str | None = None,
                timeout: float = 60.0) -> tuple[int, str, str]:
    """Run ``command`` in a running pod, as ``kubectl exec`` does: (exit code, stdout, stderr).

    Uses the pods/exec WebSocket API (EKS and the sandbox serve it alike). KubeError when the
    API refuses (the pod does not run, the command is not in the image)."""
    from kubernetes import client
    from kubernetes.stream import stream

    core = client.CoreV1Api(api)
    options = {"container": container} if container else {}
    try:
        session = stream(core.connect_get_namespaced_pod_exec, pod, namespace, command=command, stdin=False,
                         stdout=True, stderr=True, tty=False, _preload_content=False, **options)
        session.run_forever(timeout=timeout)
        stdout, stderr = session.read_stdout(), session.read_stderr()
        code = session.returncode
        session.close()
    except Exception as exc:
        raise KubeError(f"exec in {namespace}/{pod} ({' '.join(command)[:60]}) failed: {exc}") from exc
    return (code if code is not None else -1), stdout, stderr


# -- waiting ------------------------------------------------------------------------------------------
def wait_for(check: Callable[[], Any], description: str, timeout: float = 600.0, interval: float = 2.0,
             progress: ProgressCallback | None = None) -> Any:
    """Call ``check`` until it returns something truthy; report progress; KubeError on timeout."""
    report = progress or (lambda *_: None)
    started = time.monotonic()
    report(description, "running", "")
    last_error = None
    while True:
        try:
            result = check()
            if result:
                report(description, "done", f"{time.monotonic() - started:.0f}s")
                return result
        except KubeError as exc:
            last_error = exc
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            report(description, "failed", f"timed out after {elapsed:.0f}s")
            raise KubeError(f"timed out after {timeout:.0f}s waiting for {description}"
                            + (f" (last error: {last_error})" if last_error else ""))
        report(description, "running", f"{elapsed:.0f}s")
        time.sleep(interval)


def wait_for_pods(api, namespace: str, label_selector: str | None = None, count: int = 1, timeout: float = 600.0,
                  progress: ProgressCallback | None = None) -> Rows:
    """Wait until at least ``count`` pods matching the selector are Ready; returns their rows."""
    def ready() -> Rows | None:
        rows = pods(api, namespace, label_selector)
        good = [r for r in rows if r["is_ready"]]
        return rows if len(good) >= count else None
    return wait_for(ready, f"{count} ready pod(s) in {namespace}" + (f" ({label_selector})" if label_selector else ""),
                    timeout, progress=progress)


def wait_for_nodes(api, label_selector: str | None = None, count: int = 1, timeout: float = 600.0,
                   progress: ProgressCallback | None = None) -> Rows:
    """Wait until at least ``count`` Ready nodes match the selector; returns their rows."""
    def ready() -> Rows | None:
        rows = [r for r in nodes(api, label_selector) if r["ready"]]
        return rows if len(rows) >= count else None
    return wait_for(ready, f"{count} ready node(s)" + (f" ({label_selector})" if label_selector else ""),
                    timeout, progress=progress)

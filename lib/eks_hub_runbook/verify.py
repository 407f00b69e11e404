"""03_verify's checks: the walkthrough's verification steps, each as a table with pass/fail.

The blueprint's step 4 runs ``kubectl get pods -A``, ``kubectl get pods -n jupyterhub``,
looks at the Karpenter pools (``kubectl get nodepools,ec2nodeclasses`` today, not the
old ``provisioners``), ``kubectl get pvc -A`` and opens the hub. Each function here
does one of those through the Kubernetes API (rows from :mod:`eks_hub_runbook.kube`),
adds a ``status`` column saying whether it is what a healthy deployment shows, and
keeps columns that change from run to run (ages, IPs) out of the tables.
"""

from __future__ import annotations

from typing import Any

import yaml

from . import kube
from .hub import HubClient
from .params import DeploymentParameters
from .platform import facts
from .platform.values import hub_namespace

Rows = list[dict[str, Any]]
# What the platform creates, read from its own manifests and values (platform/facts.py).
NAMESPACE = hub_namespace()
EXPECTED_POOLS = facts.nodepools()
EXPECTED_NODECLASSES = facts.nodeclasses()
CLAIM_PURPOSES = {  # what each of the platform's claims is for, in the walkthrough's words
    "efs-persist": "each user's home, /home/jovyan (sub-folder per user)",
    "efs-persist-shared": "/home/shared, mounted in every user pod",
    facts.HUB_DATABASE_CLAIM: "the hub's database (EBS gp3)",
}
EXPECTED_PVCS = {name: CLAIM_PURPOSES.get(name, "") for name in facts.claims()}
EXPECTED_STORAGE_CLASSES = facts.storage_classes()
DEVICE_PLUGIN_CONFIG = facts.device_plugin_config_map()
TIME_SLICING_REPLICAS = facts.time_slicing_replicas()

KUBECTL = {
    "kubeconfig": "aws eks --region {region} update-kubeconfig --name {cluster}",
    "namespaces": "kubectl get pods -A",
    "hub pods": "kubectl get pods -n jupyterhub -o wide",
    "nodes": "kubectl get nodes -L node.kubernetes.io/instance-type,karpenter.sh/nodepool",
    "nodepools": "kubectl get nodepools,ec2nodeclasses",
    "pvcs": "kubectl get pvc -A",
    "storage classes": "kubectl get storageclass",
    "device plugin": "kubectl get configmap nvidia-device-plugin-config -n nvidia-device-plugin -o yaml",
    "hub": "curl -s <hub URL>/hub/api/",
}


def kubectl_rows(params: DeploymentParameters) -> Rows:
    """The kubectl commands that show the same as this notebook's tables."""
    return [{"check": name, "kubectl": command.format(region=params.region, cluster=params.cluster_name)}
            for name, command in KUBECTL.items()]


def cluster_rows(params: DeploymentParameters, api) -> Rows:
    """The cluster answers, with the server version (the same client both targets use)."""
    from kubernetes import client

    try:
        version = client.VersionApi(api).get_code()
    except Exception as exc:  # noqa: BLE001 - any failure means the cluster is not reachable
        return [{"check": "cluster API reachable", "status": "fail", "detail": f"{type(exc).__name__}: {exc}"[:200]}]
    wanted = params.kubernetes_version
    got = f"{version.major}.{str(version.minor).rstrip('+')}"
    return [
        {"check": "cluster API reachable", "status": "pass", "detail": f"EKS cluster {params.cluster_name}"},
        {"check": "Kubernetes version", "status": "pass" if got == wanted else "warn", "detail": f"{got} (asked for {wanted})"},
    ]


def namespace_rows(api) -> Rows:
    """``kubectl get pods -A`` summarised per namespace: pods, ready, not ready."""
    summary: dict[str, dict[str, int]] = {}
    for row in kube.pods(api):
        entry = summary.setdefault(row["namespace"], {"pods": 0, "ready": 0, "succeeded": 0})
        entry["pods"] += 1
        if row["is_ready"]:
            entry["ready"] += 1
        elif row["status"] in ("Completed", "Succeeded"):
            entry["succeeded"] += 1
    rows = []
    for namespace, entry in sorted(summary.items()):
        waiting = entry["pods"] - entry["ready"] - entry["succeeded"]
        rows.append({"namespace": namespace, "pods": entry["pods"], "ready": entry["ready"],
                     "status": "pass" if waiting == 0 else "fail",
                     "detail": "all ready" if waiting == 0 else f"{waiting} not ready"})
    return rows


def hub_pod_rows(params: DeploymentParameters, api) -> Rows:
    """``kubectl get pods -n jupyterhub``: every pod Running and ready (no ages or IPs); the hub
    and proxy pods must be there."""
    rows = [{"pod": r["pod"], "ready": r["ready"], "pod status": r["status"], "node": r["node"],
             "status": "pass" if r["is_ready"] or r["status"] in ("Completed", "Succeeded") else "fail"}
            for r in kube.pods(api, NAMESPACE)]
    if not rows:
        rows.append({"pod": "(none)", "ready": "", "pod status": "", "node": "", "status": "fail"})
    return rows


def node_rows(api) -> Rows:
    """Nodes with their pool, instance type and GPU capacity/allocatable (names are EC2 private DNS)."""
    return [{"node": r["node"], "instance type": r["instance_type"], "pool": r["pool"], "zone": r["zone"],
             "cpu": r["cpu"], "memory (GiB)": r["memory_gib"], "nvidia.com/gpu": f"{r['gpu_capacity']}/{r['gpu_allocatable']}",
             "status": "pass" if r["ready"] else "fail"}
            for r in sorted(kube.nodes(api), key=lambda n: (n["pool"], n["node"]))]


def nodepool_rows(api) -> Rows:
    """NodePools: each expected pool exists and is Ready; instance families and taints shown."""
    found = {r["nodepool"]: r for r in kube.nodepools(api)}
    rows = []
    for name in sorted(set(EXPECTED_POOLS) | set(found)):
        r = found.get(name)
        if r is None:
            rows.append({"nodepool": name, "nodeclass": "", "instances": "", "taints": "", "nodes": 0,
                         "status": "fail", "detail": "missing: a profile selects it"})
            continue
        instances = r["instance_type"] or " ".join(x for x in (r["instance_family"], r["instance_size"]) if x)
        rows.append({"nodepool": name, "nodeclass": r["nodeclass"], "instances": instances, "taints": r["taints"],
                     "nodes": r["nodes"], "status": "pass" if r["ready"] else "fail",
                     "detail": r["consolidation"] if r["ready"] else "not Ready"})
    return rows


def nodeclass_rows(api) -> Rows:
    """EC2NodeClasses: each expected class exists and is Ready."""
    found = {r["ec2nodeclass"]: r for r in kube.ec2nodeclasses(api)}
    return [{"ec2nodeclass": name, "role": found[name]["role"] if name in found else "",
             "ami": found[name]["ami"] if name in found else "",
             "status": "pass" if name in found and found[name]["ready"] else "fail"}
            for name in sorted(set(EXPECTED_NODECLASSES) | set(found))]


def _storage_classes(api) -> dict[str, Any]:
    from kubernetes import client

    return {sc.metadata.name: sc for sc in client.StorageV1Api(api).list_storage_class().items}


def pvc_rows(api) -> Rows:
    """The walkthrough's PVCs: efs-persist, efs-persist-shared (RWX, Bound) and the hub database.

    A PVC of a ``WaitForFirstConsumer`` class stays Pending until a pod uses it; that is
    reported as ``info`` when no pod mounts it yet.
    """
    from kubernetes import client

    classes = _storage_classes(api)
    found = {r["pvc"]: r for r in kube.pvcs(api, NAMESPACE)}
    users = {volume.persistent_volume_claim.claim_name
             for pod in client.CoreV1Api(api).list_namespaced_pod(NAMESPACE).items
             for volume in pod.spec.volumes or [] if volume.persistent_volume_claim}
    rows = []
    for name in sorted(set(EXPECTED_PVCS) | set(found)):
        r = found.get(name)
        if r is None:
            rows.append({"pvc": name, "pvc status": "missing", "capacity": "", "access modes": "", "storage class": "",
                         "used for": EXPECTED_PVCS.get(name, ""), "status": "fail"})
            continue
        status = "pass" if r["status"] == "Bound" else "fail"
        binding = getattr(classes.get(r["storage_class"]), "volume_binding_mode", "")
        if r["status"] == "Pending" and binding == "WaitForFirstConsumer" and name not in users:
            status = "info"
        rows.append({"pvc": name, "pvc status": r["status"], "capacity": r["capacity"], "access modes": r["access_modes"],
                     "storage class": r["storage_class"], "used for": EXPECTED_PVCS.get(name, "user volume"), "status": status})
    return rows


def storage_class_rows(api) -> Rows:
    """gp3 (default, EBS CSI) and efs-sc (EFS CSI) exist with the right provisioners."""
    classes = _storage_classes(api)
    rows = []
    for name in sorted(set(EXPECTED_STORAGE_CLASSES) | set(classes)):
        sc = classes.get(name)
        if sc is None:
            rows.append({"storage class": name, "provisioner": "", "default": "", "binding": "", "status": "fail"})
            continue
        default = (sc.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
        wanted = EXPECTED_STORAGE_CLASSES.get(name)
        ok = wanted is None or (sc.provisioner == wanted and (name != "gp3" or default))
        rows.append({"storage class": name, "provisioner": sc.provisioner, "default": "yes" if default else "",
                     "binding": sc.volume_binding_mode or "Immediate", "status": "pass" if ok else "fail"})
    return rows


def device_plugin_rows(api) -> Rows:
    """The NVIDIA device plugin's configs: time-slicing with 4 replicas (the blueprint shipped none)."""
    from kubernetes import client

    namespace, name = DEVICE_PLUGIN_CONFIG
    try:
        config_map = client.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    except client.ApiException as exc:
        return [{"config": name, "strategy": "", "sharing": "", "status": "fail", "detail": f"ConfigMap missing (HTTP {exc.status})"}]
    rows = []
    for config_name, text in sorted((config_map.data or {}).items()):
        config = yaml.safe_load(text) or {}
        strategy = (config.get("flags") or {}).get("migStrategy", "none")
        replicas = {r.get("name"): r.get("replicas") for r in ((config.get("sharing") or {}).get("timeSlicing") or {}).get("resources") or []}
        sharing = ", ".join(f"{k} x{v}" for k, v in replicas.items()) or "none"
        status = "pass"
        detail = ""
        if config_name == "time-slicing":
            status = "pass" if replicas.get("nvidia.com/gpu") == TIME_SLICING_REPLICAS else "fail"
            detail = (f"default for g5 nodes: one GPU advertised as {TIME_SLICING_REPLICAS}" if status == "pass"
                      else f"expected {TIME_SLICING_REPLICAS} replicas")
        rows.append({"config": config_name, "strategy": strategy, "sharing": sharing, "status": status, "detail": detail})
    if "time-slicing" not in (config_map.data or {}):
        rows.append({"config": "time-slicing", "strategy": "", "sharing": "", "status": "fail", "detail": "missing"})
    return rows


def hub_rows(params: DeploymentParameters, url: str, verify: bool | str = True) -> Rows:
    """The hub answers through its public entry (proxy), with the JupyterHub version and login method."""
    hub = HubClient(url, verify=verify)
    try:
        info = hub.health()
    except Exception as exc:  # noqa: BLE001 - reported as a failed check
        return [{"check": "hub API answers", "status": "fail", "detail": str(exc)[:200]}]
    rows = [{"check": "hub API answers", "status": "pass", "detail": f"JupyterHub {info.get('version', '?')}"}]
    import requests

    login = requests.get(f"{url.rstrip('/')}/hub/login", verify=verify, timeout=30)
    text = login.text if login.status_code == 200 else ""
    if params.auth == "dummy":
        ok = 'name="password"' in text or "password" in text
        rows.append({"check": "login page offers the dummy form", "status": "pass" if ok else "fail",
                     "detail": "user name + any password" if ok else f"HTTP {login.status_code}"})
    else:
        ok = "oauth_login" in text
        rows.append({"check": "login page offers OAuth sign-in", "status": "pass" if ok else "fail",
                     "detail": f"{params.auth} provider" if ok else f"HTTP {login.status_code}"})
    return rows


def summary(**tables: Rows) -> Rows:
    """One row per table: how many checks passed, failed or are informational."""
    rows = []
    for name, table in tables.items():
        statuses = [r.get("status") for r in table]
        failed = statuses.count("fail")
        rows.append({"table": name.replace("_", " "), "checks": len(statuses), "passed": statuses.count("pass"),
                     "failed": failed, "status": "fail" if failed else "pass"})
    return rows

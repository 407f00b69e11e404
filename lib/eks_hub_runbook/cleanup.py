"""Ordered teardown of a deployment: nothing left behind, and harmless to run twice.

The blueprint's cleanup left VPCs, load balancers and Cognito pools behind (users then
hit "security group and subnet belong to different networks" on the next install).
The order here avoids each cause:

1. **drain the cluster** (if it still answers): delete the NodePools (Karpenter then
   terminates its nodes), LoadBalancer Services (the load balancer controller deletes
   their NLBs) and the hub's PVCs (the EBS CSI driver deletes their volumes);
2. **sweep what Kubernetes created in AWS** and is still there, found by the tags the
   controllers put on it: Karpenter's instances, load balancers, target groups and
   security groups tagged ``elbv2.k8s.aws/cluster=<name>``, EBS volumes of PVCs,
   leftover network interfaces of the VPC CNI (the lookups are :mod:`.aws.leftovers`'s;
   this module deletes what they find, in order);
3. **staged Terraform destroy** (:mod:`eks_hub_runbook.terraform`);
4. optionally the **ACM certificate** imported by 01_certificate;
5. a **sweep by tag** (:func:`sweep`, :mod:`.aws.sweep`): whatever still carries the deployment's
   tags (left by a SIGKILLed apply or destroy) is deleted in dependency order;
6. a **leftovers scan** by tag that must come back empty;
7. on the sandbox, **stop the sandbox services** unless asked to keep them.

Before the drain, :func:`usage` notes what ran (the cluster's creation time, the Karpenter nodes);
after the destroy, :func:`spend` turns it into the run's estimated spend (:mod:`.cost`).

Each step reports rows (``step``, ``resource``, ``id``, ``action``) for a table.
Every deletion treats "not found" as done, so a second run finds nothing to do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from botocore.exceptions import ClientError

from .aws import acm, leftovers
from .aws.leftovers import cluster_owned_tag  # noqa: F401 - callers read it here
from .aws.session import client
from .errors import CleanupError
from .params import DeploymentParameters

ProgressCallback = Callable[[str, str, str], None]


@dataclass
class Found:
    """A resource Kubernetes created in AWS, to delete."""

    kind: str
    id: str
    name: str = ""

    def row(self, action: str) -> dict[str, str]:
        """The resource as a row of the sweep's table, with what was done to it."""
        return {"resource": self.kind, "id": self.id, "name": self.name, "action": action}


def _error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


# --------------------------------------------------------------------------- find

# What the sweep deletes, in deletion order: the instances first (they hold network interfaces
# and volumes), load balancers before their target groups, security groups once nothing uses them.
SWEEP: tuple[tuple[str, Callable[[str, str, str], list[leftovers.Resource]]], ...] = (
    ("EC2 instance (Karpenter)", leftovers.karpenter_instances),
    ("load balancer", leftovers.load_balancers),
    ("target group", leftovers.target_groups),
    ("EBS volume (PVC)", leftovers.pvc_volumes),
    ("security group", leftovers.load_balancer_security_groups),
    ("network interface", leftovers.cni_network_interfaces),
)


def kubernetes_created(params: DeploymentParameters) -> list[Found]:
    """Everything Kubernetes created in AWS for the cluster that still exists, in deletion order."""
    return [Found(kind, resource.id, resource.name)
            for kind, lookup in SWEEP
            for resource in lookup(params.cluster_name, params.target, params.region)]


# --------------------------------------------------------------------------- delete


def _retry(action: Callable[[], Any], what: str, attempts: int = 12, delay: float = 5.0,
           retry_codes: tuple[str, ...] = ("DependencyViolation", "ResourceInUse", "VolumeInUse", "InvalidParameterValue")) -> None:
    """Run ``action``; on a dependency error wait and retry (AWS releases ENIs and attachments slowly)."""
    for attempt in range(1, attempts + 1):
        try:
            action()
            return
        except ClientError as exc:
            code = _error_code(exc)
            if code.endswith("NotFound") or code in ("LoadBalancerNotFound", "TargetGroupNotFound"):
                return
            if code in retry_codes and attempt < attempts:
                time.sleep(delay)
                continue
            raise CleanupError(f"could not delete {what}: {code}: {exc.response['Error'].get('Message', '')}") from None


def _wait_terminated(params: DeploymentParameters, instance_ids: list[str], timeout: float) -> None:
    ec2 = client("ec2", params.target, params.region)
    deadline = time.monotonic() + timeout
    while instance_ids and time.monotonic() < deadline:
        reply = ec2.describe_instances(InstanceIds=instance_ids)
        states = [i["State"]["Name"] for r in reply.get("Reservations", []) for i in r.get("Instances", [])]
        if all(state == "terminated" for state in states):
            return
        time.sleep(5)


def _wait_lbs_gone(params: DeploymentParameters, arns: list[str], timeout: float) -> None:
    elb = client("elbv2", params.target, params.region)
    deadline = time.monotonic() + timeout
    while arns and time.monotonic() < deadline:
        try:
            if not elb.describe_load_balancers(LoadBalancerArns=arns).get("LoadBalancers"):
                return
        except ClientError as exc:
            if _error_code(exc) == "LoadBalancerNotFound":
                return
            raise
        time.sleep(5)


def delete_kubernetes_created(params: DeploymentParameters, progress: ProgressCallback | None = None,
                              timeout: float = 600.0) -> list[dict[str, str]]:
    """Delete what Kubernetes created in AWS (instances, LBs, TGs, volumes, SGs, ENIs). Idempotent.

    Returns one row per resource deleted (empty when there was nothing, e.g. a second run).
    """
    report = progress or (lambda *_: None)
    step = "delete what Kubernetes created in AWS"
    report(step, "running", "scanning by tag")
    found = kubernetes_created(params)
    ec2 = client("ec2", params.target, params.region)
    elb = client("elbv2", params.target, params.region)
    rows: list[dict[str, str]] = []
    instances = [f.id for f in found if f.kind.startswith("EC2 instance")]
    if instances:
        report(step, "running", f"terminating {len(instances)} Karpenter instance(s)")
        _retry(lambda: ec2.terminate_instances(InstanceIds=instances), "Karpenter instances")
        _wait_terminated(params, instances, timeout)
    lbs = [f.id for f in found if f.kind == "load balancer"]
    for arn in lbs:
        report(step, "running", f"deleting load balancer {arn.rsplit('/', 2)[-2]}")
        _retry(lambda arn=arn: elb.delete_load_balancer(LoadBalancerArn=arn), f"load balancer {arn}")
    _wait_lbs_gone(params, lbs, timeout)
    for item in found:
        if item.kind == "target group":
            _retry(lambda item=item: elb.delete_target_group(TargetGroupArn=item.id), f"target group {item.id}")
        elif item.kind.startswith("EBS volume"):
            report(step, "running", f"deleting volume {item.id}")
            _retry(lambda item=item: ec2.delete_volume(VolumeId=item.id), f"volume {item.id} ({item.name})")
        elif item.kind == "security group":
            _retry(lambda item=item: ec2.delete_security_group(GroupId=item.id), f"security group {item.id}")
        elif item.kind == "network interface":
            _retry(lambda item=item: ec2.delete_network_interface(NetworkInterfaceId=item.id), f"network interface {item.id}")
        rows.append(item.row("terminated" if item.kind.startswith("EC2") else "deleted"))
    report(step, "done", "")
    return rows


# --------------------------------------------------------------------------- the whole teardown


def prepare_target(params: DeploymentParameters) -> None:
    """Make sure the target's local services run, if it has any (a second cleanup starts them to scan)."""
    from . import targets
    from .notebook.display import require_pass

    require_pass(targets.of(params).service_rows(params, hub_tools=False), "local services", name_column="check")


def inventory_rows(params: DeploymentParameters) -> list[dict[str, Any]]:
    """What the deployment has in AWS now, counted by service and type (before the teardown)."""
    counts: dict[tuple[str, str], int] = {}
    for row in leftovers.scan(params.deployment, params.target, params.region, strict=False):
        key = (row["service"], row["type"])
        counts[key] = counts.get(key, 0) + 1
    rows = [{"service": s, "type": t, "count": n} for (s, t), n in sorted(counts.items())]
    return rows or [{"service": "(none)", "type": "nothing to delete", "count": 0}]


# --------------------------------------------------------------------------- what ran, what it cost


@dataclass
class Usage:
    """What a deployment ran: since when (its EKS cluster's creation; None when it is gone) and the
    Karpenter nodes (:class:`eks_hub_runbook.cost.NodeRun`)."""

    started: Any
    nodes: list

    def rows(self) -> list[dict[str, str]]:
        """The cluster and each node with its start (and end, for a node already terminated)."""
        rows = [{"what": "deployment (EKS cluster created)", "instance type": "",
                 "since": self.started.isoformat(timespec="seconds") if self.started else "(no cluster)", "until": "now"}]
        rows += [{"what": f"{n.pool} node {n.name}", "instance type": n.instance_type,
                  "since": n.started.isoformat(timespec="seconds"),
                  "until": n.ended.isoformat(timespec="seconds") if n.ended else "now"} for n in self.nodes]
        return rows


def _cluster_created(params: DeploymentParameters):
    """When the deployment's EKS cluster was created (UTC), or None when there is none."""
    import datetime as dt

    from botocore.exceptions import BotoCoreError

    try:
        created = client("eks", params.target, params.region).describe_cluster(name=params.cluster_name)["cluster"].get("createdAt")
    except (ClientError, BotoCoreError):
        return None
    if isinstance(created, str):
        created = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    return created.astimezone(dt.timezone.utc) if created else None


def _cluster_nodes(params: DeploymentParameters) -> dict[str, Any]:
    """The cluster's Karpenter nodes as NodeRuns, by EC2 instance id (else node name)."""
    from kubernetes import client as k8s

    from .cost import NodeRun

    api = _cluster_api(params)
    if api is None:
        return {}
    nodes = {}
    for node in k8s.CoreV1Api(api).list_node(label_selector=leftovers.KARPENTER_NODEPOOL_TAG).items:
        labels = node.metadata.labels or {}
        key = ((node.spec.provider_id or "").rsplit("/", 1)[-1]) or node.metadata.name
        nodes[key] = NodeRun(node.metadata.name, labels.get("node.kubernetes.io/instance-type", ""),
                             labels.get(leftovers.KARPENTER_NODEPOOL_TAG, ""), node.metadata.creation_timestamp)
    return nodes


def _terminated_at(instance: dict[str, Any]):
    """When EC2 terminated an instance, from its state transition reason (``User initiated (2026-12-01 10:00:00 GMT)``)."""
    import datetime as dt
    import re

    match = re.search(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?:GMT|UTC)\)", instance.get("StateTransitionReason") or "")
    return dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc) if match else None


def _karpenter_instances(params: DeploymentParameters) -> dict[str, Any]:
    """The EC2 instances Karpenter launched for the cluster, terminated ones included (EC2 lists those
    for about an hour), as NodeRuns by instance id."""
    from botocore.exceptions import BotoCoreError

    from .cost import NodeRun

    ec2 = client("ec2", params.target, params.region)
    filters = [{"Name": f"tag:{leftovers.cluster_owned_tag(params.cluster_name)}", "Values": ["owned"]},
               {"Name": "tag-key", "Values": [leftovers.KARPENTER_NODEPOOL_TAG]}]
    try:
        pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
        instances = [i for page in pages for r in page.get("Reservations", []) for i in r.get("Instances", [])]
    except (ClientError, BotoCoreError):
        return {}
    runs = {}
    for instance in instances:
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags") or []}
        ended = _terminated_at(instance) if instance.get("State", {}).get("Name") in ("shutting-down", "terminated") else None
        runs[instance["InstanceId"]] = NodeRun(instance["InstanceId"], instance.get("InstanceType", ""),
                                               tags.get(leftovers.KARPENTER_NODEPOOL_TAG, ""), instance["LaunchTime"], ended)
    return runs


def usage(params: DeploymentParameters) -> Usage:
    """What ran, read before the drain: the cluster's creation time and the Karpenter nodes the cluster
    lists, plus the instances EC2 still lists that the cluster no longer does (terminated by consolidation)."""
    nodes = {**_karpenter_instances(params), **_cluster_nodes(params)}
    return Usage(_cluster_created(params), sorted(nodes.values(), key=lambda n: (n.started, n.name)))


def spend(params: DeploymentParameters, ran: Usage):
    """The run's estimated spend (:func:`eks_hub_runbook.cost.spend`) up to now: the fixed part over the
    deployment's lifetime plus the hours of each node in ``ran``."""
    from . import cost

    return cost.spend(params, ran.started, ran.nodes)


def _cluster_api(params: DeploymentParameters):
    """A Kubernetes client for the deployment's cluster, or None if it is gone or does not answer."""
    from . import kube
    from .aws import eks

    try:
        facts = eks.describe(params.cluster_name, params.target, params.region)
    except Exception:  # noqa: BLE001 - no cluster: nothing to drain
        return None
    if facts.get("status") not in (None, "ACTIVE", "UPDATING"):
        return None
    try:
        api = kube.client_for(params)
        from kubernetes import client

        client.VersionApi(api).get_code()
        return api
    except Exception:  # noqa: BLE001 - an unreachable API cannot be drained; the sweep below still runs
        return None


def drain_cluster(params: DeploymentParameters, progress: ProgressCallback | None = None,
                  timeout: float = 600.0) -> list[dict[str, str]]:
    """Delete what makes controllers create AWS resources: LoadBalancer Services, NodePools, PVCs.

    The controllers then delete the NLB, terminate Karpenter's nodes and delete the EBS
    volumes themselves. Waits (bounded) for Karpenter's nodes to go. Returns one row per
    object deleted; empty when the cluster is gone (a second run).
    """
    from kubernetes import client, dynamic

    report = progress or (lambda *_: None)
    step = "drain the cluster"
    report(step, "running", "connecting")
    api = _cluster_api(params)
    if api is None:
        report(step, "skipped", "no cluster")
        return []
    core = client.CoreV1Api(api)
    rows: list[dict[str, str]] = []
    for service in core.list_service_for_all_namespaces().items:
        if service.spec.type == "LoadBalancer":
            core.delete_namespaced_service(service.metadata.name, service.metadata.namespace)
            rows.append({"resource": "Service (LoadBalancer)", "id": f"{service.metadata.namespace}/{service.metadata.name}",
                         "name": "its load balancer is deleted by the controller", "action": "deleted"})
    dyn = dynamic.DynamicClient(api)
    try:
        nodepools = dyn.resources.get(api_version="karpenter.sh/v1", kind="NodePool")
        for pool in nodepools.get().items:
            nodepools.delete(name=pool.metadata.name)
            rows.append({"resource": "NodePool", "id": pool.metadata.name, "name": "Karpenter terminates its nodes",
                         "action": "deleted"})
    except dynamic.exceptions.ResourceNotFoundError:
        pass
    for pvc in core.list_namespaced_persistent_volume_claim("jupyterhub").items:
        core.delete_namespaced_persistent_volume_claim(pvc.metadata.name, "jupyterhub")
        rows.append({"resource": "PersistentVolumeClaim", "id": f"jupyterhub/{pvc.metadata.name}",
                     "name": pvc.spec.storage_class_name or "", "action": "deleted"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [n.metadata.name for n in core.list_node(label_selector="karpenter.sh/nodepool").items]
        if not left:
            break
        report(step, "running", f"waiting for {len(left)} Karpenter node(s) to terminate")
        time.sleep(5)
    report(step, "done", "")
    return rows


def destroy_stage_names() -> list[str]:
    from . import terraform

    return [stage.name for stage in terraform.DESTROY_STAGES]


def destroy(params: DeploymentParameters, progress: ProgressCallback | None = None) -> list[dict[str, Any]]:
    """Terraform's staged destroy; Kubernetes-created leftovers are swept again before the network goes.

    Skipped (no rows) when the deployment has no Terraform state: nothing was applied,
    or an earlier cleanup finished. The working folder is removed after a full destroy.
    """
    from . import terraform
    from .deploy import _StageLog, workspace

    report = progress or (lambda *_: None)
    arn = ""
    if params.uses_domain:  # the variables must match the apply's: the same certificate
        arn = acm.recorded_arn(params) or next(iter(acm.find_imported(params)), "")
    ws = workspace(params, arn)
    if not terraform.state_list(ws):
        for name in destroy_stage_names():
            report(name, "skipped", "nothing in the Terraform state")
        terraform.remove(ws)
        return []
    results = terraform.teardown(ws, log=_StageLog(report, "destroy"), bar=False,
                                 before_network=lambda: delete_kubernetes_created(params))
    terraform.remove(ws)
    return [r.as_row() for r in results]


def certificate_rows(params: DeploymentParameters, delete: bool) -> list[dict[str, str]]:
    """Delete the ACM certificate(s) 01_certificate imported, if asked; else say it is kept."""
    imported = acm.find_imported(params)
    if not delete:
        return [{"resource": "ACM certificate", "id": arn, "name": params.domain, "action": "kept (delete_certificate=False)"}
                for arn in imported]
    return [{"resource": "ACM certificate", "id": arn, "name": params.domain, "action": "deleted"}
            for arn in acm.delete(params)]


def sweep(params: DeploymentParameters, delete_certificate: bool = False, progress: ProgressCallback | None = None,
          passes: int = 60, delay: float = 20.0) -> list[dict[str, str]]:
    """Delete whatever still carries the deployment's tags after the destroy (:func:`.aws.sweep.sweep`).

    What a SIGKILLed apply or destroy, or a controller racing the destroy, left behind goes here, in
    dependency order. The certificates 01_certificate imported stay unless ``delete_certificate``.
    Returns one row per resource (``service``, ``kind``, ``id``, ``action``, ``result``); empty when
    nothing was left (:func:`sweep_rows` says so in a table).
    """
    from .aws import sweep as by_tag

    keep = () if delete_certificate else acm.find_imported(params)
    return by_tag.sweep(params.deployment, params.target, params.region, keep=keep, passes=passes, delay=delay,
                        progress=progress)


def sweep_rows(swept: list[dict[str, str]]) -> list[dict[str, str]]:
    """The sweep's rows for 05's table; one row saying "nothing left to sweep" when there were none."""
    return swept or [{"service": "", "kind": "", "id": "", "action": "", "result": "nothing left to sweep"}]


def leftover_rows(params: DeploymentParameters) -> list[dict[str, str]]:
    """Everything that still belongs to the deployment (by tag and name); must be empty.

    The certificates 01_certificate imported do not count: :func:`certificate_rows` deleted them,
    or they are kept on purpose (``delete_certificate=False``) for the next deployment.
    """
    rows = leftovers.scan(params.deployment, params.target, params.region, strict=False)
    if not any(row["service"] == "acm" and row["type"] == "certificate" for row in rows):
        return rows
    kept = set(acm.find_imported(params))
    return [row for row in rows if not (row["service"] == "acm" and row["id"] in kept)]


def finish(params: DeploymentParameters, keep_sandbox: bool, certificate_kept: bool) -> list[dict[str, str]]:
    """Forget the deployment's records (but a kept certificate's ARN) and stop the target's local
    services unless kept."""
    from . import records, targets

    keep = ("certificate_arn",) if certificate_kept else ()
    names = [name for name in records.recall_all(params.deployment) if name not in keep]
    if names:
        records.forget(params.deployment, *names)
    rows = [{"item": "records of the deployment", "state": f"forgotten ({len(names)})" if names else "none"}]
    return rows + targets.of(params).finish(params, keep_sandbox)

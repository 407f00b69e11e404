"""Karpenter v1: NodePools, EC2NodeClasses and NodeClaims.

- Provisioning: a pod the scheduler marked Unschedulable that fits a NodePool
  (requirements, template labels, taints, limits) is nominated to an in-flight
  NodeClaim that still has room, or gets a new NodeClaim of the cheapest instance
  type that fits; after ``RUNBOOK_SANDBOX_NODE_DELAY`` seconds the Node registers.
  A claim counts as in flight until its node is Initialized (the device plugins
  registered the expected devices), so a pod waiting for its GPU node does not
  trigger a second node.
- Like the real Karpenter it counts physical GPUs only (it does not know about
  time-slicing replicas, upstream karpenter issue 729), unless a NodeOverlay says otherwise:
  with the ``NodeOverlay`` feature gate on (the Karpenter Deployment's ``FEATURE_GATES``),
  NodeOverlays add or override extended resources and adjust prices of the instance types they
  select, in the simulation and in the NodeClaims (:mod:`.nodeoverlays`; their status conditions
  ValidationSucceeded and Ready as upstream). Deliberate sandbox allowance:
  a ``nvidia.com/mig-<profile>`` request is satisfiable by GPUs that can be partitioned,
  up to the most slices of that profile one of their layouts has (the catalog's
  ``MIG_LAYOUTS``) per GPU.
- Instance types are the catalog's (``eks_hub_runbook.instance_types``), their capacity
  and allocatable those their nodes report (``nodes.capacity`` / ``nodes.allocatable``), with
  the root volume (ephemeral storage) of the EC2NodeClass's ``/dev/xvda`` block device
  mapping (20 GiB when it has none, the AL2023 default).
- Disruption: a node whose non-DaemonSet pods stayed the same for the NodePool's
  ``consolidateAfter`` is removed when it is empty (policy WhenEmpty or
  WhenEmptyOrUnderutilized) or, with WhenEmptyOrUnderutilized, when all its pods fit on the
  other nodes (one such node per pass, the least loaded first; its pods are evicted). A pod
  annotated ``karpenter.sh/do-not-disrupt: "true"`` (or the annotation on the node) blocks both,
  with a ``DisruptionBlocked`` event as upstream. Replacement by a cheaper node, drift and
  expiry are not emulated.
- Status: EC2NodeClasses become Ready; NodePools report nodes and resources.
"""

from __future__ import annotations

import asyncio
import logging
from fractions import Fraction

from eks_hub_runbook import instance_types
from .. import node_figures, quantity, scheduling
from eks_hub_runbook.instance_types import InstanceType
from ..nodes import NodeAddressPool, build_node, is_ready
from ..nodes import allocatable as node_allocatable, capacity as node_capacity
from ..objects import clone, owner_reference, parse_duration, random_hex, random_suffix
from ..objects import set_condition as _set_condition
from . import nodeoverlays
from .base import Controller
from .scheduler import is_pending


def set_condition(status: dict, type_: str, value: str, reason: str = "", message: str = "",
                  heartbeat: bool = False) -> bool:
    """``objects.set_condition`` for Karpenter's objects, whose conditions are metav1.Conditions:
    ``message`` is required by their CRD schemas (it may be empty), so it is always present;
    otherwise a later apply of the object fails validation (422 on status.conditions[].message)."""
    changed = _set_condition(status, type_, value, reason, message, heartbeat)
    for cond in status.get("conditions") or []:
        cond.setdefault("message", "")
    return changed


log = logging.getLogger(__name__)

PODS, NODES = ("", "pods"), ("", "nodes")
NODEPOOLS, NODECLAIMS = ("karpenter.sh", "nodepools"), ("karpenter.sh", "nodeclaims")
NODECLASSES = ("karpenter.k8s.aws", "ec2nodeclasses")
NODEOVERLAYS = ("karpenter.sh", "nodeoverlays")
DAEMONSETS, DEPLOYMENTS = ("apps", "daemonsets"), ("apps", "deployments")
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage", "pods")
TERMINATION_FINALIZER = "karpenter.sh/termination"
SPOT_DISCOUNT = 0.35
MIG_PREFIX = "nvidia.com/mig-"
COMPONENT = "karpenter"
DISRUPTED_TAINT = {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}


def _unschedulable(pod: dict) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled":
            return cond.get("status") == "False" and cond.get("reason") == "Unschedulable"
    return False


def _claim_ready(claim: dict, condition: str) -> bool:
    for cond in (claim.get("status") or {}).get("conditions") or []:
        if cond.get("type") == condition:
            return cond.get("status") == "True"
    return False


class Karpenter(Controller):
    name = "karpenter"
    watches = (PODS, NODES, NODEPOOLS, NODECLAIMS, NODECLASSES, DAEMONSETS, NODEOVERLAYS, DEPLOYMENTS)
    debounce = 0.2

    def __init__(self, runtime):
        super().__init__(runtime)
        self.addresses: NodeAddressPool = runtime.node_addresses
        self._nominations: dict[str, dict[str, dict[str, Fraction]]] = {}  # claim -> pod uid -> requests
        self._launches: dict[str, asyncio.Task] = {}
        self._stable_since: dict[str, tuple[frozenset, float]] = {}  # node -> (its pods, since when)
        self._blocked: dict[str, str] = {}  # node -> the do-not-disrupt message last recorded
        self._reported: dict[str, str] = {}
        self._overlays = nodeoverlays.Overlays()

    def interested(self, key, change) -> bool:
        if key == DEPLOYMENTS:  # only Karpenter's own Deployment says something (its feature gates)
            return any((obj["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == nodeoverlays.KARPENTER_APP
                       for obj in (change.obj, change.old) if obj)
        if key == PODS:
            pod, old = change.obj, change.old
            if change.type == "DELETED" or old is None:
                return True
            return _unschedulable(pod) != _unschedulable(old) or \
                (pod.get("spec") or {}).get("nodeName") != (old.get("spec") or {}).get("nodeName") or \
                (pod.get("status") or {}).get("phase") != (old.get("status") or {}).get("phase")
        return True

    def _installed(self) -> bool:
        return self.cluster.registry.by_key(*NODEPOOLS) is not None and \
            self.cluster.registry.by_key(*NODECLAIMS) is not None

    async def reconcile(self) -> None:
        if not self._installed():
            return
        self._reconcile_nodeclasses()
        self._overlays = self._resolve_overlays()
        self._terminate_claims()
        self._initialize_claims()
        self._provision()
        self._consolidate()
        self._nodepool_status()

    def reset(self) -> None:
        """Forget in-flight work (the cluster was wiped)."""
        for task in self._launches.values():
            task.cancel()
        self._launches.clear()
        self._nominations.clear()
        self._stable_since.clear()
        self._blocked.clear()
        self._reported.clear()
        self._overlays = nodeoverlays.Overlays()

    async def stop(self) -> None:
        self.reset()
        await super().stop()

    # -- node classes ---------------------------------------------------------------------------------
    def _reconcile_nodeclasses(self) -> None:
        if self.cluster.registry.by_key(*NODECLASSES) is None:
            return
        region = self.settings.region
        for nodeclass in self.cluster.store.list(NODECLASSES):
            if _claim_ready(nodeclass, "Ready"):
                continue

            def ready(obj: dict):
                status = obj.setdefault("status", {})
                status.setdefault("amis", [{"id": f"ami-0{random_hex(16)}", "name": "amazon-eks-node-al2023-x86_64-standard-1.32-v20250818",
                                            "requirements": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}])
                status.setdefault("subnets", [{"id": f"subnet-0{random_hex(16)}", "zone": z, "zoneID": f"usw2-az{i + 1}"}
                                              for i, z in enumerate(self.addresses.zones(region))])
                status.setdefault("securityGroups", [{"id": f"sg-0{random_hex(16)}", "name": "karpenter-node"}])
                status.setdefault("instanceProfile", f"{obj['metadata']['name']}_{random_hex(8)}")
                for kind in ("AMIsReady", "SubnetsReady", "SecurityGroupsReady", "InstanceProfileReady",
                             "ValidationSucceeded", "Ready"):
                    set_condition(status, kind, "True", kind)
            self.cluster.mutate(NODECLASSES, "", nodeclass["metadata"]["name"], ready)

    # -- node overlays ----------------------------------------------------------------------------------
    def _resolve_overlays(self) -> nodeoverlays.Overlays:
        """The NodeOverlays applied to every pool's offerings (none while the feature gate is off)."""
        store = self.cluster.store
        if self.cluster.registry.by_key(*NODEOVERLAYS) is None or not nodeoverlays.feature_enabled(store.list(DEPLOYMENTS)):
            return nodeoverlays.Overlays()
        overlays = [o for o in store.list(NODEOVERLAYS) if not o["metadata"].get("deletionTimestamp")]
        if not overlays:
            return nodeoverlays.Overlays()
        offerings: dict[tuple[str, str], list[dict[str, str]]] = {}
        zones = self.addresses.zones(self.settings.region)
        for pool in self._pools():
            requirements = self._requirements(pool)
            for instance in instance_types.CATALOG.values():
                for zone in zones:
                    for capacity_type in ("on-demand", "spot"):
                        labels = self._claim_labels(pool, instance, zone, capacity_type)
                        if all(scheduling.match_expression(r, labels) for r in requirements if r.get("key") in labels):
                            offerings.setdefault((pool["metadata"]["name"], instance.name), []).append(labels)
        resolved = nodeoverlays.resolve(overlays, offerings)
        for overlay in overlays:
            reason, message = resolved.problems.get(overlay["metadata"]["name"], ("", ""))

            def update(obj: dict, reason=reason, message=message):
                status = obj.setdefault("status", {})
                valid = "False" if reason else "True"
                set_condition(status, "ValidationSucceeded", valid, reason or "ValidationSucceeded", message)
                set_condition(status, "Ready", valid, "UnhealthyDependents" if reason else "Ready",
                              f"ValidationSucceeded=False: {message}" if reason else "")
            updated = clone(overlay)
            update(updated)
            if _strip_times(updated.get("status")) != _strip_times(overlay.get("status")):
                self.cluster.mutate(NODEOVERLAYS, "", overlay["metadata"]["name"], update)
        return resolved

    def _extended(self, pool_name: str, instance: InstanceType) -> dict[str, Fraction]:
        """The extended resources Karpenter expects of an instance type in a pool: its devices, overlaid."""
        return {**instance_types.expected_extended_resources(instance), **self._overlays.capacity(pool_name, instance.name)}

    # -- provisioning -------------------------------------------------------------------------------------
    def _pools(self) -> list[dict]:
        pools = [p for p in self.cluster.store.list(NODEPOOLS) if not p["metadata"].get("deletionTimestamp")]
        return sorted(pools, key=lambda p: (-((p.get("spec") or {}).get("weight") or 0), p["metadata"]["name"]))

    def _nodeclass_ready(self, pool: dict) -> bool:
        ref = (((pool.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeClassRef") or {}
        nodeclass = self.cluster.store.get(NODECLASSES, "", ref.get("name", ""))
        return nodeclass is not None and _claim_ready(nodeclass, "Ready")

    def _root_volume_gib(self, template_spec: dict) -> float:
        """The root volume, GiB, of the nodes of a NodePool template's EC2NodeClass."""
        ref = template_spec.get("nodeClassRef") or {}
        nodeclass = self.cluster.store.get(NODECLASSES, "", ref.get("name", "")) or {}
        return node_figures.root_volume_gib((nodeclass.get("spec") or {}).get("blockDeviceMappings"))

    def _provision(self) -> None:
        store = self.cluster.store
        pending = [p for p in store.list(PODS, predicate=is_pending)
                   if _unschedulable(p) and not scheduling.is_daemonset_pod(p)]
        live_uids = {p["metadata"]["uid"] for p in pending}
        for claim_name, pods in list(self._nominations.items()):
            for uid in list(pods):
                if uid not in live_uids:
                    del pods[uid]
        if not pending:
            return
        claims = {c["metadata"]["name"]: c for c in store.list(NODECLAIMS)}
        nominated = {uid for pods in self._nominations.values() for uid in pods}
        pools = self._pools()
        pending.sort(key=lambda p: -float(scheduling.pod_requests(p).get("cpu", 0)))
        for pod in pending:
            uid = pod["metadata"]["uid"]
            if uid in nominated:
                continue
            requests = scheduling.pod_requests(pod)
            claim = self._fit_in_flight(pod, requests, claims)
            if claim is None:
                claim = self._new_claim(pod, requests, pools)
                if claim is None:
                    continue
                claims[claim["metadata"]["name"]] = claim
            self._nominations.setdefault(claim["metadata"]["name"], {})[uid] = requests
            nominated.add(uid)
            self.cluster.record_event(pod, "Nominated", f"Pod should schedule on: nodeclaim/{claim['metadata']['name']}",
                                      component=COMPONENT)

    def _fit_in_flight(self, pod: dict, requests: dict, claims: dict) -> dict | None:
        for name, claim in claims.items():
            if claim["metadata"].get("deletionTimestamp") or _claim_ready(claim, "Initialized"):
                continue
            labels = claim["metadata"].get("labels") or {}
            if scheduling.untolerated_taints(pod, (claim.get("spec") or {}).get("taints")):
                continue
            if not scheduling.node_matches(pod, labels, ""):
                continue
            capacity = self._claim_allocatable(claim)
            used: dict[str, Fraction] = {}
            for other in self._nominations.get(name, {}).values():
                scheduling.add(used, other)
            if not self._missing(requests, capacity, used, labels):
                return claim
        return None

    @staticmethod
    def _claim_allocatable(claim: dict) -> dict[str, Fraction]:
        return scheduling.resource_map((claim.get("status") or {}).get("allocatable"))

    @staticmethod
    def _missing(requests: dict, capacity: dict, used: dict, labels: dict) -> list[str]:
        """Resources a node with these labels lacks for ``requests`` (MIG allowance included)."""
        layouts = instance_types.MIG_LAYOUTS.get(labels.get("karpenter.k8s.aws/instance-gpu-name", ""), {})
        for name in requests:
            if name.startswith(MIG_PREFIX) and layouts:
                profile = name[len(MIG_PREFIX):]
                per_gpu = max((layout.get(profile, 0) for layout in layouts.values()), default=0)
                gpus = int(labels.get("karpenter.k8s.aws/instance-gpu-count", "0"))
                capacity = {**capacity, name: Fraction(per_gpu * gpus)}
        return scheduling.insufficient(requests, capacity, used)

    def _requirements(self, pool: dict) -> list[dict]:
        return (((pool.get("spec") or {}).get("template") or {}).get("spec") or {}).get("requirements") or []

    def _allowed(self, requirements: list[dict], key: str, candidates: list[str]) -> list[str]:
        return [c for c in candidates if all(scheduling.match_expression(r, {key: c}) for r in requirements
                                             if r.get("key") == key)]

    def _daemonset_overhead(self, labels: dict, taints: list[dict]) -> dict[str, Fraction]:
        overhead: dict[str, Fraction] = {}
        for ds in self.cluster.store.list(DAEMONSETS):
            template = {"spec": ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}, "metadata": {}}
            if scheduling.untolerated_taints(template, taints) or not scheduling.node_matches(template, labels, ""):
                continue
            scheduling.add(overhead, scheduling.pod_requests(template))
        return overhead

    def _pool_usage(self, pool_name: str) -> dict[str, Fraction]:
        usage: dict[str, Fraction] = {}
        for claim in self.cluster.store.list(NODECLAIMS):
            if (claim["metadata"].get("labels") or {}).get("karpenter.sh/nodepool") == pool_name:
                scheduling.add(usage, scheduling.resource_map((claim.get("status") or {}).get("capacity")))
        return usage

    def _new_claim(self, pod: dict, requests: dict, pools: list[dict]) -> dict | None:
        region = self.settings.region
        reasons = []
        for pool in pools:
            pool_name = pool["metadata"]["name"]
            if not self._nodeclass_ready(pool):
                reasons.append(f'nodepool "{pool_name}" has no ready nodeclass')
                continue
            template = ((pool.get("spec") or {}).get("template") or {})
            template_spec = template.get("spec") or {}
            taints = template_spec.get("taints") or []
            if scheduling.untolerated_taints(pod, taints):
                reasons.append(f'incompatible with nodepool "{pool_name}", did not tolerate '
                               f'{scheduling.describe_taint(scheduling.untolerated_taints(pod, taints)[0])}')
                continue
            requirements = self._requirements(pool)
            zones = self._allowed(requirements, "topology.kubernetes.io/zone", self.addresses.zones(region))
            capacity_types = self._allowed(requirements, "karpenter.sh/capacity-type", ["on-demand", "spot"]) \
                if any(r.get("key") == "karpenter.sh/capacity-type" for r in requirements) else ["on-demand"]
            limits = scheduling.resource_map((pool.get("spec") or {}).get("limits"))
            usage = self._pool_usage(pool_name) if limits else {}
            disk_gib = self._root_volume_gib(template_spec)
            best: tuple[float, InstanceType, str, str, dict] | None = None
            for instance in instance_types.CATALOG.values():
                for zone in zones:
                    for capacity_type in capacity_types:
                        labels = self._claim_labels(pool, instance, zone, capacity_type)
                        if not all(scheduling.match_expression(r, labels) for r in requirements
                                   if r.get("key") in labels):
                            continue
                        if not scheduling.node_matches(pod, labels, ""):
                            continue
                        extended = self._extended(pool_name, instance)
                        allocatable = {**node_allocatable(instance, disk_gib), **extended}
                        overhead = self._daemonset_overhead(labels, taints)
                        if self._missing(requests, allocatable, overhead, labels):
                            continue
                        capacity = {**node_capacity(instance, disk_gib), **extended}
                        if any(usage.get(r, 0) + capacity.get(r, 0) > limit for r, limit in limits.items()):
                            continue
                        price = self._overlays.price(pool_name, instance.name, zone, capacity_type,
                                                     instance.price * (SPOT_DISCOUNT if capacity_type == "spot" else 1.0))
                        if best is None or price < best[0]:
                            best = (price, instance, zone, capacity_type, labels)
            if best is None:
                reasons.append(f'incompatible with nodepool "{pool_name}", no instance type satisfied resources '
                               f'{{{", ".join(f"{k}: {quantity.format_for(k, v)}" for k, v in sorted(requests.items()))}}} and requirements')
                continue
            _, instance, zone, capacity_type, labels = best
            return self._create_claim(pool, instance, zone, capacity_type, labels, requests)
        message = "Failed to schedule pod, " + ("; ".join(reasons) if reasons else "no nodepools found")
        if self._reported.get(pod["metadata"]["uid"]) != message:
            self._reported[pod["metadata"]["uid"]] = message
            self.cluster.record_event(pod, "FailedScheduling", message, "Warning", component=COMPONENT)
        return None

    def _claim_labels(self, pool: dict, instance: InstanceType, zone: str, capacity_type: str) -> dict[str, str]:
        template = (pool.get("spec") or {}).get("template") or {}
        ref = ((template.get("spec") or {}).get("nodeClassRef") or {})
        labels = {**instance.labels(), "topology.kubernetes.io/zone": zone,
                  "topology.kubernetes.io/region": self.settings.region,
                  "karpenter.sh/capacity-type": capacity_type, "karpenter.sh/nodepool": pool["metadata"]["name"],
                  "karpenter.k8s.aws/ec2nodeclass": ref.get("name", "")}
        for requirement in self._requirements(pool):
            key = requirement.get("key")
            if key not in labels and requirement.get("operator") == "In" and requirement.get("values"):
                labels[key] = requirement["values"][0]
        labels.update((template.get("metadata") or {}).get("labels") or {})
        return labels

    def _create_claim(self, pool: dict, instance: InstanceType, zone: str, capacity_type: str,
                      labels: dict, requests: dict) -> dict:
        template = (pool.get("spec") or {}).get("template") or {}
        spec = template.get("spec") or {}
        name = f"{pool['metadata']['name']}-{random_suffix(5)}"
        disk_gib = self._root_volume_gib(spec)
        extended = self._extended(pool["metadata"]["name"], instance)
        capacity = {**node_capacity(instance, disk_gib), **extended}
        allocatable = {**node_allocatable(instance, disk_gib), **extended}
        claim = {
            "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": {
                "name": name, "labels": labels, "finalizers": [TERMINATION_FINALIZER],
                "annotations": {"karpenter.sh/nodepool-hash": random_hex(16), "karpenter.sh/nodepool-hash-version": "v3",
                                "karpenter.k8s.aws/ec2nodeclass-hash": random_hex(16),
                                **((template.get("metadata") or {}).get("annotations") or {})},
                "ownerReferences": [owner_reference(pool, controller=False, block=True)],
            },
            "spec": {
                "nodeClassRef": spec.get("nodeClassRef"),
                "requirements": [*[r for r in self._requirements(pool) if r.get("key") != "node.kubernetes.io/instance-type"],
                                 {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [instance.name]}],
                "resources": {"requests": {k: quantity.format_for(k, v) for k, v in requests.items()}},
                **({"taints": spec["taints"]} if spec.get("taints") else {}),
                **({"startupTaints": spec["startupTaints"]} if spec.get("startupTaints") else {}),
                "expireAfter": spec.get("expireAfter", "720h"),
            },
            "status": {
                "capacity": {k: quantity.format_for(k, v) for k, v in capacity.items()},
                "allocatable": {k: quantity.format_for(k, v) for k, v in allocatable.items()},
                "conditions": [],
            },
        }
        set_condition(claim["status"], "Launched", "Unknown", "AwaitingReconciliation", "object is awaiting reconciliation")
        created = self.cluster.create_internal(NODECLAIMS, claim)
        self._launches[name] = asyncio.get_running_loop().create_task(
            self._launch(name, instance, zone, labels, spec), name=f"launch-{name}")
        log.info("karpenter: nodeclaim %s (%s, %s) for pool %s", name, instance.name, zone, pool["metadata"]["name"])
        return created

    async def _launch(self, name: str, instance: InstanceType, zone: str, labels: dict, spec: dict) -> None:
        try:
            await asyncio.sleep(self.settings.node_delay / 2)
            instance_id = f"i-0{random_hex(16)}"
            claim = self.cluster.store.get(NODECLAIMS, "", name)
            if claim is None or claim["metadata"].get("deletionTimestamp"):
                return

            def launched(obj: dict):
                obj["status"]["providerID"] = f"aws:///{zone}/{instance_id}"
                obj["status"]["imageID"] = f"ami-0{random_hex(16)}"
                set_condition(obj["status"], "Launched", "True", "Launched")
            claim = self.cluster.mutate(NODECLAIMS, "", name, launched)
            if claim is not None:
                self.cluster.record_event(claim, "Launched", f"Status condition transitioned, Type: Launched, Status: "
                                          f"Unknown -> True, Reason: Launched", component=COMPONENT)
            await asyncio.sleep(self.settings.node_delay / 2)
            claim = self.cluster.store.get(NODECLAIMS, "", name)
            if claim is None or claim["metadata"].get("deletionTimestamp"):
                return
            ip = self.addresses.allocate(zone)
            taints = (spec.get("taints") or []) + (spec.get("startupTaints") or [])
            node = build_node(instance, ip, zone, self.settings.region,
                              {**labels, "karpenter.sh/registered": "true"}, taints,
                              disk_gib=self._root_volume_gib(spec), instance_id=instance_id,
                              annotations={"karpenter.sh/nodepool-hash": claim["metadata"]["annotations"].get(
                                  "karpenter.sh/nodepool-hash", "")})
            node["metadata"]["ownerReferences"] = [owner_reference(claim, controller=False, block=True)]
            node["metadata"]["finalizers"] = [TERMINATION_FINALIZER]
            node["spec"]["providerID"] = claim["status"]["providerID"]
            node = self.cluster.create_internal(NODES, node)

            def registered(obj: dict):
                obj["status"]["nodeName"] = node["metadata"]["name"]
                set_condition(obj["status"], "Registered", "True", "Registered")
            claim = self.cluster.mutate(NODECLAIMS, "", name, registered)
            if claim is not None:
                self.cluster.record_event(claim, "Registered", f"Status condition transitioned, Type: Registered, "
                                          f"Status: Unknown -> True, Reason: Registered", component=COMPONENT)
            self.kick()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("karpenter: launching %s failed", name)
        finally:
            self._launches.pop(name, None)

    def _initialize_claims(self) -> None:
        """A claim is Initialized once its node is Ready with the expected devices registered: the
        instance type's devices and every extended resource the claim requests (an overlay's
        ``nvidia.com/gpu`` replicas are requested, so the device plugin must have advertised them)."""
        for claim in self.cluster.store.list(NODECLAIMS):
            node_name = (claim.get("status") or {}).get("nodeName")
            if not node_name or _claim_ready(claim, "Initialized") or claim["metadata"].get("deletionTimestamp"):
                continue
            node = self.cluster.store.get(NODES, "", node_name)
            if node is None or not is_ready(node):
                continue
            allocatable = scheduling.allocatable(node)
            instance = instance_types.get((claim["metadata"].get("labels") or {}).get("node.kubernetes.io/instance-type", ""))
            expected = set(instance_types.expected_extended_resources(instance) if instance else ())
            requested = scheduling.resource_map(((claim.get("spec") or {}).get("resources") or {}).get("requests"))
            expected |= {r for r, v in requested.items() if v > 0 and r not in STANDARD_RESOURCES
                         and not r.startswith("hugepages-")}
            if any(allocatable.get(r, 0) <= 0 and not (r == "nvidia.com/gpu" and any(k.startswith(MIG_PREFIX) for k in allocatable))
                   for r in expected):
                continue
            startup = {(t.get("key"), t.get("effect")) for t in (claim.get("spec") or {}).get("startupTaints") or []}

            def initialize_node(obj: dict):
                obj["metadata"].setdefault("labels", {})["karpenter.sh/initialized"] = "true"
                if startup:
                    obj["spec"]["taints"] = [t for t in obj["spec"].get("taints") or []
                                             if (t.get("key"), t.get("effect")) not in startup]
            self.cluster.mutate(NODES, "", node_name, initialize_node)

            def initialized(obj: dict):
                set_condition(obj["status"], "Initialized", "True", "Initialized")
                set_condition(obj["status"], "Ready", "True", "Ready")
            claim = self.cluster.mutate(NODECLAIMS, "", claim["metadata"]["name"], initialized)
            if claim is not None:
                self.cluster.record_event(claim, "Initialized", "Status condition transitioned, Type: Initialized, "
                                          "Status: Unknown -> True, Reason: Initialized", component=COMPONENT)
                self._nominations.pop(claim["metadata"]["name"], None)

    # -- disruption -------------------------------------------------------------------------------------------
    def _consolidate(self) -> None:
        loop = asyncio.get_running_loop()
        store = self.cluster.store
        pods_on: dict[str, list[dict]] = {}
        for pod in store.list(PODS, predicate=lambda p: bool((p.get("spec") or {}).get("nodeName"))):
            if not scheduling.is_terminal(pod) and not scheduling.is_daemonset_pod(pod):
                pods_on.setdefault(pod["spec"]["nodeName"], []).append(pod)
        pools = {p["metadata"]["name"]: p for p in store.list(NODEPOOLS)}
        seen, underutilized = set(), []
        for claim in store.list(NODECLAIMS):
            name = claim["metadata"]["name"]
            node_name = (claim.get("status") or {}).get("nodeName")
            if not node_name or claim["metadata"].get("deletionTimestamp") or not _claim_ready(claim, "Initialized"):
                continue
            seen.add(node_name)
            pods = pods_on.get(node_name, [])
            pool = pools.get((claim["metadata"].get("labels") or {}).get("karpenter.sh/nodepool", ""))
            disruption = ((pool or {}).get("spec") or {}).get("disruption") or {}
            policy = disruption.get("consolidationPolicy", "WhenEmptyOrUnderutilized")
            after = parse_duration(disruption.get("consolidateAfter", "0s")) if pool is not None else 0.0
            if self._nominations.get(name) or after is None or (pods and policy != "WhenEmptyOrUnderutilized") \
                    or policy not in ("WhenEmpty", "WhenEmptyOrUnderutilized"):
                self._stable_since.pop(node_name, None)
                continue
            # consolidateAfter counts from the node's last pod change (upstream: a pod scheduled or removed)
            signature = frozenset(p["metadata"]["uid"] for p in pods)
            since = self._stable_since.get(node_name)
            if since is None or since[0] != signature:
                since = self._stable_since[node_name] = (signature, loop.time())
            remaining = since[1] + after - loop.time()
            if remaining > 0:
                self.wake_at(remaining + 0.05)
                continue
            node = store.get(NODES, "", node_name)
            if node is None:
                continue
            blocker = self._disruption_blocker(node, pods)
            if blocker:
                if self._blocked.get(node_name) != blocker:
                    self._blocked[node_name] = blocker
                    self.cluster.record_event(node, "DisruptionBlocked", f"Cannot disrupt Node: {blocker}",
                                              component=COMPONENT)
                    self.cluster.record_event(claim, "DisruptionBlocked", f"Cannot disrupt NodeClaim: {blocker}",
                                              component=COMPONENT)
                continue
            self._blocked.pop(node_name, None)
            if not pods:
                self._disrupt(claim, node, "Empty")
            else:
                underutilized.append((claim, node, pods))
        # one under-utilised node per pass (upstream's single-node consolidation): the least loaded first
        underutilized.sort(key=lambda c: (len(c[2]), sum(float(scheduling.pod_requests(p).get("cpu", 0)) for p in c[2])))
        for claim, node, pods in underutilized:
            if self._fits_elsewhere(pods, node["metadata"]["name"]):
                self._disrupt(claim, node, "Underutilized")
                break
        for node_name in list(self._stable_since):
            if node_name not in seen:
                del self._stable_since[node_name]
                self._blocked.pop(node_name, None)

    @staticmethod
    def _disruption_blocker(node: dict, pods: list[dict]) -> str:
        """Why a node may not be disrupted (upstream's wording), or "" when it may."""
        if (node["metadata"].get("annotations") or {}).get(DO_NOT_DISRUPT) == "true":
            return f'disruption is blocked through the "{DO_NOT_DISRUPT}" annotation'
        for pod in pods:
            if (pod["metadata"].get("annotations") or {}).get(DO_NOT_DISRUPT) == "true":
                return f'pod "{pod["metadata"]["namespace"]}/{pod["metadata"]["name"]}" has "{DO_NOT_DISRUPT}" annotation'
        return ""

    def _fits_elsewhere(self, pods: list[dict], node_name: str) -> bool:
        """Whether every pod fits on the other schedulable nodes (their taints, labels and free allocatable)."""
        store = self.cluster.store
        others = [n for n in store.list(NODES) if n["metadata"]["name"] != node_name and is_ready(n)
                  and not n["metadata"].get("deletionTimestamp") and not (n.get("spec") or {}).get("unschedulable")]
        used: dict[str, dict[str, Fraction]] = {n["metadata"]["name"]: {} for n in others}
        for pod in store.list(PODS, predicate=lambda p: (p.get("spec") or {}).get("nodeName") in used):
            if not scheduling.is_terminal(pod):
                scheduling.add(used[pod["spec"]["nodeName"]], scheduling.pod_requests(pod))
        for pod in sorted(pods, key=lambda p: -float(scheduling.pod_requests(p).get("cpu", 0))):
            requests = scheduling.pod_requests(pod)
            for other in others:
                other_name = other["metadata"]["name"]
                if scheduling.untolerated_taints(pod, (other.get("spec") or {}).get("taints")) or \
                        not scheduling.node_matches(pod, other["metadata"].get("labels") or {}, other_name) or \
                        scheduling.insufficient(requests, scheduling.allocatable(other), used[other_name]):
                    continue
                scheduling.add(used[other_name], requests)
                break
            else:
                return False
        return True

    def _disrupt(self, claim: dict, node: dict, reason: str) -> None:
        self._stable_since.pop(node["metadata"]["name"], None)
        self.cluster.record_event(claim, "DisruptionTerminating", f"Disrupting NodeClaim: {reason}", component=COMPONENT)
        self.cluster.record_event(node, "DisruptionTerminating", f"Disrupting Node: {reason}", component=COMPONENT)
        self.cluster.delete(self.cluster.resource(*NODECLAIMS), "", claim["metadata"]["name"])

    def _terminate_claims(self) -> None:
        """Claims being deleted (consolidation, kubectl delete, pool removal): drain, delete node, finish."""
        store = self.cluster.store
        pools = {p["metadata"]["name"] for p in store.list(NODEPOOLS) if not p["metadata"].get("deletionTimestamp")}
        for claim in store.list(NODECLAIMS):
            name = claim["metadata"]["name"]
            if not claim["metadata"].get("deletionTimestamp"):
                if (claim["metadata"].get("labels") or {}).get("karpenter.sh/nodepool") not in pools:
                    self.cluster.delete(self.cluster.resource(*NODECLAIMS), "", name)
                else:
                    node_name = (claim.get("status") or {}).get("nodeName")
                    if node_name and _claim_ready(claim, "Registered") and store.get(NODES, "", node_name) is None:
                        self.cluster.delete(self.cluster.resource(*NODECLAIMS), "", name)
                continue
            task = self._launches.pop(name, None)
            if task:
                task.cancel()
            self._nominations.pop(name, None)
            node_name = (claim.get("status") or {}).get("nodeName")
            node = store.get(NODES, "", node_name) if node_name else None
            if node is not None:
                self._drain_and_delete(node)
                if store.get(NODES, "", node_name) is not None:
                    self.wake_at(0.5)
                    continue
            self.cluster.mutate(NODECLAIMS, "", name, lambda obj: obj["metadata"].__setitem__(
                "finalizers", [f for f in obj["metadata"].get("finalizers") or [] if f != TERMINATION_FINALIZER]))
        for node in store.list(NODES):
            if node["metadata"].get("deletionTimestamp") and TERMINATION_FINALIZER in (node["metadata"].get("finalizers") or []):
                self._drain_and_delete(node)

    def _drain_and_delete(self, node: dict) -> None:
        node_name = node["metadata"]["name"]
        store = self.cluster.store

        def taint(obj: dict):
            taints = obj["spec"].setdefault("taints", [])
            if not any(t.get("key") == DISRUPTED_TAINT["key"] for t in taints):
                taints.append(dict(DISRUPTED_TAINT))
            obj["spec"]["unschedulable"] = True
        self.cluster.mutate(NODES, "", node_name, taint)
        remaining = 0
        for pod in store.list(PODS, predicate=lambda p: (p.get("spec") or {}).get("nodeName") == node_name):
            if not scheduling.untolerated_taints(pod, [DISRUPTED_TAINT]):
                # Karpenter's drain leaves pods that tolerate its taint (daemons such as aws-node,
                # whose DaemonSet would put them straight back); they go with the node.
                continue
            remaining += 1
            if not pod["metadata"].get("deletionTimestamp"):
                self.cluster.delete(self.cluster.resource(*PODS), pod["metadata"]["namespace"], pod["metadata"]["name"])
        if remaining:
            return
        ip = next((a["address"] for a in (node.get("status") or {}).get("addresses") or [] if a.get("type") == "InternalIP"), None)
        if ip:
            self.addresses.release(ip)
        self.cluster.remove(NODES, "", node_name)

    # -- status ----------------------------------------------------------------------------------------------
    def _nodepool_status(self) -> None:
        claims = self.cluster.store.list(NODECLAIMS)
        for pool in self.cluster.store.list(NODEPOOLS):
            pool_name = pool["metadata"]["name"]
            resources: dict[str, Fraction] = {}
            nodes = 0
            for claim in claims:
                if (claim["metadata"].get("labels") or {}).get("karpenter.sh/nodepool") != pool_name:
                    continue
                if (claim.get("status") or {}).get("nodeName"):
                    nodes += 1
                    scheduling.add(resources, scheduling.resource_map((claim.get("status") or {}).get("capacity")))
            ready = self._nodeclass_ready(pool)

            def update(obj: dict):
                status = obj.setdefault("status", {})
                status["nodes"] = nodes
                status["resources"] = {k: quantity.format_for(k, v) for k, v in sorted(resources.items())
                                       if not k.startswith("hugepages")} | {"nodes": str(nodes)}
                set_condition(status, "ValidationSucceeded", "True", "ValidationSucceeded")
                set_condition(status, "NodeClassReady", "True" if ready else "False",
                              "NodeClassReady" if ready else "NodeClassNotReady",
                              "" if ready else "NodeClass not found or not ready")
                set_condition(status, "Ready", "True" if ready else "False", "Ready" if ready else "UnhealthyDependents",
                              "" if ready else "NodeClassReady=False")
            before = clone(pool.get("status") or {})
            updated = clone(pool)
            update(updated)
            if _strip_times(updated.get("status")) != _strip_times(before):
                self.cluster.mutate(NODEPOOLS, "", pool_name, update)


def _strip_times(status: dict | None) -> dict:
    status = clone(status or {})
    for cond in status.get("conditions") or []:
        cond.pop("lastTransitionTime", None)
    return status

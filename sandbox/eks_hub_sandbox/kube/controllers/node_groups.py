"""EKS managed node groups, read from the local AWS every ``RUNBOOK_SANDBOX_AWS_SYNC`` seconds.

For every node group of every EKS cluster there, ``desiredSize`` nodes of its instance
type (default m5.xlarge) exist, labelled ``eks.amazonaws.com/nodegroup``,
``eks.amazonaws.com/capacityType`` and the node group's own labels and taints, and
the node group's root volume (its ``diskSize``, else the ``/dev/xvda`` mapping of its
launch template, else the AL2023 AMI's 20 GiB) as ephemeral storage. The
first cluster's name becomes the cluster name the other controllers tag AWS resources
with. When every cluster this emulator has seen is gone from AWS, the cluster state is
wiped as a deleted cluster's would be (pods stopped, objects gone; AWS resources such
as load balancers stay behind, as on AWS).
"""

from __future__ import annotations

import asyncio
import logging

from botocore.exceptions import ClientError

from eks_hub_runbook import instance_types
from .. import bootstrap, node_figures
from ..aws import AwsUnavailable
from ..nodes import build_node
from .base import Controller

log = logging.getLogger(__name__)

NODES = ("", "nodes")
PODS = ("", "pods")
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


class NodeGroups(Controller):
    name = "eks-node-groups"
    watches = ()

    def __init__(self, runtime):
        super().__init__(runtime)
        self.known_clusters: set[str] = set()
        self._poller: asyncio.Task | None = None

    def start(self) -> None:
        super().start()
        self._poller = asyncio.get_running_loop().create_task(self._poll(), name="node-group-sync")

    async def stop(self) -> None:
        if self._poller:
            self._poller.cancel()
        await super().stop()

    async def _poll(self) -> None:
        while True:
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except AwsUnavailable:
                pass
            except Exception:
                log.exception("node group sync failed")
            await asyncio.sleep(self.settings.aws_sync_interval)

    async def reconcile(self) -> None:
        """Nothing on store changes: the work happens in ``sync`` on a timer."""

    async def sync(self) -> None:
        aws = self.runtime.aws
        if aws is None or not aws.configured:
            return
        clusters = sorted((await aws.call("eks", "list_clusters")).get("clusters") or [])
        if self.known_clusters and not (self.known_clusters & set(clusters)):
            log.warning("EKS cluster(s) %s deleted in AWS: wiping the cluster state", sorted(self.known_clusters))
            await self.runtime.wipe()
            self.known_clusters = set()
        self.known_clusters |= set(clusters)
        self.runtime.cluster_name = clusters[0] if clusters else "sandbox"
        wanted: dict[str, dict] = {}
        for cluster in clusters:
            for group in (await aws.call("eks", "list_nodegroups", clusterName=cluster)).get("nodegroups") or []:
                info = (await aws.call("eks", "describe_nodegroup", clusterName=cluster, nodegroupName=group))["nodegroup"]
                if info.get("status") in ("DELETING", "DELETE_FAILED"):
                    continue
                if not info.get("diskSize") and info.get("launchTemplate"):
                    info = {**info, "diskSize": await self._launch_template_disk(info["launchTemplate"])}
                wanted[group] = info
        self._scale(wanted)

    async def _launch_template_disk(self, template: dict) -> int | None:
        """The root (``/dev/xvda``) volume size, GiB, of a node group's launch template version."""
        query = {"LaunchTemplateId": template["id"]} if template.get("id") else {"LaunchTemplateName": template.get("name")}
        try:
            versions = (await self.runtime.aws.call("ec2", "describe_launch_template_versions", **query,
                                                    Versions=[str(template.get("version") or "$Default")]))
        except ClientError as exc:
            log.warning("node groups: launch template %s unreadable (%s); root volume taken as %s GiB",
                        template, exc, node_figures.DEFAULT_ROOT_VOLUME_GIB)
            return None
        for version in versions.get("LaunchTemplateVersions") or []:
            for mapping in (version.get("LaunchTemplateData") or {}).get("BlockDeviceMappings") or []:
                if mapping.get("DeviceName") == "/dev/xvda" and (mapping.get("Ebs") or {}).get("VolumeSize"):
                    return int(mapping["Ebs"]["VolumeSize"])
        return None

    def _scale(self, wanted: dict[str, dict]) -> None:
        existing: dict[str, list[dict]] = {}
        for node in self.cluster.store.list(NODES):
            group = (node["metadata"].get("labels") or {}).get(NODEGROUP_LABEL)
            if group:
                existing.setdefault(group, []).append(node)
        for group, nodes in existing.items():
            desired = int(((wanted.get(group) or {}).get("scalingConfig") or {}).get("desiredSize", 0)) if group in wanted else 0
            for node in sorted(nodes, key=lambda n: n["metadata"]["creationTimestamp"], reverse=True)[:max(len(nodes) - desired, 0)]:
                self._remove_node(node)
        for group, info in wanted.items():
            desired = int((info.get("scalingConfig") or {}).get("desiredSize", 0))
            for _ in range(max(desired - len(existing.get(group, [])), 0)):
                self._add_node(group, info)

    def _add_node(self, group: str, info: dict) -> None:
        region = self.settings.region
        instance = instance_types.get((info.get("instanceTypes") or ["m5.xlarge"])[0]) or instance_types.get("m5.xlarge")
        zone = self.runtime.node_addresses.next_zone(region)
        ip = self.runtime.node_addresses.allocate(zone)
        labels = {NODEGROUP_LABEL: group,
                  "eks.amazonaws.com/nodegroup-image": info.get("releaseVersion") and f"ami-0{abs(hash(info['releaseVersion'])) % 16**16:016x}" or "ami-0sandbox",
                  "eks.amazonaws.com/capacityType": info.get("capacityType", "ON_DEMAND"),
                  **(info.get("labels") or {})}
        taints = [{"key": t["key"], **({"value": t["value"]} if t.get("value") else {}),
                   "effect": EFFECTS.get(t.get("effect", ""), "NoSchedule")} for t in info.get("taints") or []]
        node = build_node(instance, ip, zone, region, labels, taints, disk_gib=int(info.get("diskSize") or node_figures.DEFAULT_ROOT_VOLUME_GIB))
        self.cluster.create_internal(NODES, node)
        log.info("node group %s: node %s (%s)", group, node["metadata"]["name"], instance.name)

    def _remove_node(self, node: dict) -> None:
        name = node["metadata"]["name"]
        for pod in self.cluster.store.list(PODS, predicate=lambda p: (p.get("spec") or {}).get("nodeName") == name):
            self.cluster.delete(self.cluster.resource(*PODS), pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.cluster.remove(NODES, "", name)


async def wipe_cluster(runtime) -> None:
    """Forget every object (stopping pods first), then recreate the bootstrap objects."""
    cluster = runtime.cluster
    kubelet = runtime.controller("kubelet")
    if kubelet is not None:
        await asyncio.gather(*(w.terminate(0.5, remove=False) for w in list(kubelet.workers.values())),
                             return_exceptions=True)
    for key in cluster.store.keys():
        for obj in cluster.store.list(key):
            cluster.remove(key, obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
    for controller in runtime.controllers.values():
        reset = getattr(controller, "reset", None)
        if reset:
            reset()
    bootstrap.install(cluster)

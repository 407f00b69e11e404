"""In-process controllers of the sandbox cluster, one small module each:

- ``namespaces``: deletes the contents of terminating namespaces;
- ``garbage_collector``: ownerReferences cascade;
- ``workloads``: Deployments -> ReplicaSets -> pods, DaemonSets -> a pod per eligible node;
- ``device_plugins``: NVIDIA (time-slicing, MIG) and Neuron extended resources on nodes;
- ``volume_binder`` (+ ``ebs_csi``, ``efs_csi`` provisioners): claims, volumes, reclaim;
- ``scheduler``: binds pods to nodes;
- ``karpenter``: NodePools -> NodeClaims -> Nodes, consolidation of empty nodes;
- ``kubelet``: runs pods as local processes;
- ``service_proxy`` (kube-proxy): Service addresses -> ready pods;
- ``load_balancer``: Services of type LoadBalancer -> NLBs in the local AWS;
- ``node_groups``: EKS managed node groups -> nodes; cluster deleted in AWS -> state wiped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .device_plugins import DevicePlugins
from .ebs_csi import EbsProvisioner
from .efs_csi import EfsProvisioner
from .garbage_collector import GarbageCollector
from .karpenter import Karpenter
from .kubelet import Kubelet
from .load_balancer import LoadBalancerController
from .namespaces import NamespaceController
from .node_groups import NodeGroups
from .scheduler import Scheduler
from .service_proxy import ServiceProxy
from .volume_binder import VolumeBinder
from .workloads import DaemonSets, Deployments, ReplicaSets

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .base import Controller


def build_controllers(runtime: "Runtime") -> list["Controller"]:
    """Create every controller (registered in ``runtime.controllers``), in start order."""
    binder = VolumeBinder(runtime)
    binder.register(EbsProvisioner(runtime))
    binder.register(EfsProvisioner(runtime))
    controllers: list = [
        NamespaceController(runtime),
        GarbageCollector(runtime),
        Deployments(runtime),
        ReplicaSets(runtime),
        DaemonSets(runtime),
        DevicePlugins(runtime),
        binder,
        Scheduler(runtime),
        Karpenter(runtime),
        Kubelet(runtime),
        ServiceProxy(runtime),
        LoadBalancerController(runtime),
        NodeGroups(runtime),
    ]
    for controller in controllers:
        runtime.controllers[controller.name] = controller
    return controllers

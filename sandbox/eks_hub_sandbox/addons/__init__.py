"""The cluster add-ons' own workloads in the sandbox cluster (issue 13).

On EKS ``kubectl get pods -A`` shows coredns, aws-node, kube-proxy, the CSI drivers, the
pod identity agent, the load balancer controller, Karpenter and the device plugins. The
sandbox plays their behaviour with in-process controllers of the cluster emulator; this
package adds their Deployments and DaemonSets as the add-ons and charts render them
(``workloads.yaml``, built by :mod:`.workloads`), so their pods appear, take node resources
as on EKS, and say that they are emulated. :mod:`eks_hub_sandbox.install` creates them.
"""

from __future__ import annotations

from .workloads import (DATA_FILE, Entry, WorkloadDataError, addon_objects, addons, annotation_key, not_modelled,
                        release_objects, releases)

__all__ = ["DATA_FILE", "Entry", "WorkloadDataError", "addon_objects", "addons", "annotation_key", "not_modelled",
           "release_objects", "releases"]

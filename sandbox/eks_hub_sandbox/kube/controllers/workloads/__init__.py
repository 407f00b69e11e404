"""The workload controllers of the controller-manager, one module each:

- ``deployments``: Deployments -> ReplicaSets (rollouts in ``rollout``);
- ``replicasets``: ReplicaSets -> pods;
- ``daemonsets``: DaemonSets -> one pod per eligible node (rules in ``placement``);

``pods`` holds the pure builders and pod states they share, ``keyed`` their base: a loop
that syncs only the objects a change concerns.
"""

from .daemonsets import DaemonSets
from .deployments import Deployments
from .replicasets import ReplicaSets

__all__ = ["DaemonSets", "Deployments", "ReplicaSets"]

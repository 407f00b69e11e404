"""Staged apply and destroy, like the blueprint's install.sh / cleanup.sh (with retries).

Apply: the network (plus the foundations that need no cluster: KMS key, interruption
queue, EFS), then the cluster with its nodes and add-ons, then everything else. Destroy in reverse: what runs in the cluster (add-ons, pod identities), the cluster
itself, an optional hook (e.g. delete load balancers the controller made, which would
otherwise keep the subnets busy), then everything else. Each stage is an ordinary,
resumable terraform run: after any failure, running the same function again converges.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import commands
from .progress import LogCallback, print_line
from .retry import RetryPolicy
from .workspace import Workspace


@dataclass(frozen=True)
class Stage:
    """One targeted run. Empty ``targets`` means the whole configuration."""

    name: str
    targets: tuple[str, ...] = ()


APPLY_STAGES = (
    # Network first (as install.sh does), together with the other foundations that depend on
    # nothing in the cluster, so their provider waits overlap with the network's.
    Stage("network", (
        "aws_route.public_internet",
        "aws_route.private_nat",
        "aws_route_table_association.public",
        "aws_route_table_association.private",
        "aws_route_table_association.pods",
        "aws_kms_alias.eks",
        "aws_cloudwatch_event_target.karpenter",
        "aws_efs_mount_target.this",
    )),
    Stage("cluster", ("aws_eks_cluster.this", "aws_eks_node_group.core", "aws_eks_addon.this")),
    Stage("everything"),
)

DESTROY_STAGES = (
    Stage("cluster add-ons", ("aws_eks_addon.this", "aws_eks_pod_identity_association.this")),
    Stage("cluster", ("aws_eks_cluster.this",)),
    Stage("everything"),
)


@dataclass(frozen=True)
class StageResult:
    """One row of a staged run's summary."""

    stage: str
    command: str
    resources: int
    attempts: int
    seconds: float

    def as_row(self) -> dict:
        return {"stage": self.stage, "command": self.command, "resources": self.resources,
                "attempts": self.attempts, "seconds": round(self.seconds, 1)}


def deploy(workspace: Workspace, log: LogCallback | None = print_line, bar: bool = True,
           retry: RetryPolicy = RetryPolicy(), stages: tuple[Stage, ...] = APPLY_STAGES) -> list[StageResult]:
    """Apply the root module stage by stage. Returns one row per stage.

    ``init`` runs only when the workspace lacks its provider or lock file (02's plan has just made
    sure of both); a module changed since then is initialized again when terraform asks for it."""
    commands.ensure_initialized(workspace, log=log)
    results = []
    for stage in stages:
        started = time.monotonic()
        outcome = commands.apply(workspace, targets=stage.targets, log=log, bar=bar, retry=retry,
                                 title=f"apply: {stage.name}")
        results.append(StageResult(stage.name, "apply", outcome.done, outcome.attempts, time.monotonic() - started))
    return results


def teardown(workspace: Workspace, log: LogCallback | None = print_line, bar: bool = True,
             retry: RetryPolicy = RetryPolicy(), before_network: Callable[[], None] | None = None,
             stages: tuple[Stage, ...] = DESTROY_STAGES) -> list[StageResult]:
    """Destroy stage by stage, calling ``before_network`` once the cluster is gone."""
    commands.ensure_initialized(workspace, log=log)
    results = []
    for stage in stages:
        if not stage.targets and before_network is not None:
            before_network()
        started = time.monotonic()
        outcome = commands.destroy(workspace, targets=stage.targets, log=log, bar=bar, retry=retry,
                                   title=f"destroy: {stage.name}")
        results.append(StageResult(stage.name, "destroy", outcome.done, outcome.attempts, time.monotonic() - started))
    return results

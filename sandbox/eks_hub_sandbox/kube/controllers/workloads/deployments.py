"""The Deployment controller: one ReplicaSet per pod template (``<deployment>-<hash>``,
selected by the ``pod-template-hash`` label), a template change rolls to a new one
(RollingUpdate within maxSurge / maxUnavailable, or Recreate), ``spec.replicas`` scales
the current one, old ReplicaSets beyond ``revisionHistoryLimit`` are deleted, and the
status carries the counts and the Available / Progressing conditions that
``kubectl rollout status`` reads."""

from __future__ import annotations

from datetime import datetime, timezone

from ...errors import ApiError
from ...objects import clone, now, owner_reference
from . import rollout
from .keyed import PODS, KeyedController
from .pods import TEMPLATE_HASH_LABEL, comparable, controlled_by, controller_ref, is_terminal, template_hash, without_hash_label
from .replicasets import REPLICASETS

DEPLOYMENTS = ("apps", "deployments")
COMPONENT = "deployment-controller"


def revision_of(rs: dict) -> int:
    """The ``deployment.kubernetes.io/revision`` of a ReplicaSet (0 when absent)."""
    try:
        return int((rs["metadata"].get("annotations") or {}).get(rollout.REVISION, "0"))
    except ValueError:
        return 0


def find_new_replica_set(deployment: dict, replica_sets: list[dict]) -> dict | None:
    """The oldest ReplicaSet whose template is the Deployment's (ignoring the hash label)."""
    template = without_hash_label((deployment.get("spec") or {}).get("template") or {})
    matching = [rs for rs in replica_sets
                if without_hash_label((rs.get("spec") or {}).get("template") or {}) == template]
    matching.sort(key=lambda rs: (rs["metadata"].get("creationTimestamp") or "", rs["metadata"]["name"]))
    return matching[0] if matching else None


def new_replica_set(deployment: dict, replicas: int, revision: int, collision_count: int | None = None) -> dict:
    """The ReplicaSet a Deployment creates for its current template."""
    spec = deployment.get("spec") or {}
    template = comparable(spec.get("template") or {})
    pod_hash = template_hash(template, collision_count)
    template.setdefault("metadata", {}).setdefault("labels", {})[TEMPLATE_HASH_LABEL] = pod_hash
    selector = clone(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[TEMPLATE_HASH_LABEL] = pod_hash
    surge, _ = rollout.surge_and_unavailable(deployment)
    annotations = {k: v for k, v in (deployment["metadata"].get("annotations") or {}).items()
                   if k not in rollout.NOT_COPIED}
    annotations.update({rollout.REVISION: str(revision), rollout.DESIRED_REPLICAS: str(rollout.replicas_of(deployment)),
                        rollout.MAX_REPLICAS: str(rollout.replicas_of(deployment) + surge)})
    rs_spec = {"replicas": replicas, "selector": selector, "template": template}
    if spec.get("minReadySeconds"):
        rs_spec["minReadySeconds"] = spec["minReadySeconds"]
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{deployment['metadata']['name']}-{pod_hash}",
                         "namespace": deployment["metadata"].get("namespace") or "default",
                         "labels": dict(template["metadata"]["labels"]), "annotations": annotations,
                         "ownerReferences": [owner_reference(deployment)]},
            "spec": rs_spec}


class Deployments(KeyedController):
    """Deployments -> ReplicaSets."""

    name = "deployment-controller"
    primary = DEPLOYMENTS
    kind = "Deployment"
    watches = (DEPLOYMENTS, REPLICASETS, PODS)

    def __init__(self, runtime):
        super().__init__(runtime)
        self.replicasets = self.cluster.resource(*REPLICASETS)

    def route(self, key, change) -> None:
        if key == DEPLOYMENTS:
            meta = change.obj["metadata"]
            self.mark(meta.get("namespace") or "", meta["name"])
        elif key == REPLICASETS:
            self.mark_owner(change.old)
            self.mark_owner(change.obj)
            self.mark_adopters(change)
        elif change.type == "DELETED":  # Recreate waits for the old pods to be gone
            ref = controller_ref(change.obj)
            if ref is not None and ref.get("kind") == "ReplicaSet":
                self.mark_owner(self.cluster.store.get(REPLICASETS, change.obj["metadata"]["namespace"],
                                                       ref.get("name", "")))

    # -- sync ------------------------------------------------------------------------------------
    def sync(self, deployment: dict) -> None:
        meta = deployment["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        spec = deployment.get("spec") or {}
        replica_sets = self.claim(REPLICASETS, deployment, spec.get("selector") or {})
        new_rs = find_new_replica_set(deployment, replica_sets)
        created = False
        if not meta.get("deletionTimestamp") and not spec.get("paused"):
            olds = [rs for rs in replica_sets if rs is not new_rs]
            recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
            if new_rs is None and not (recreate and self._old_pods_remain(deployment, olds)):
                new_rs = self._create(deployment, olds)
                created = new_rs is not None
            elif new_rs is not None:
                self._sync_revision(deployment, new_rs, olds)
            if recreate:
                self._recreate(deployment, new_rs, olds)
            else:
                self._rolling(deployment, new_rs, olds)
            self._cleanup(deployment, olds)
            replica_sets = [rs for rs in self.cluster.store.list(REPLICASETS, namespace) if controlled_by(rs, deployment)]
            new_rs = find_new_replica_set(deployment, replica_sets)
        if new_rs is not None:
            self._annotate_revision(deployment, revision_of(new_rs))
        status, wait = rollout.deployment_status(deployment, new_rs, replica_sets, now(), created,
                                                 datetime.now(timezone.utc))
        self.write_status(deployment, status)
        if wait is not None:
            self.later(namespace, name, wait)

    def _create(self, deployment: dict, olds: list[dict]) -> dict | None:
        revision = max([revision_of(rs) for rs in olds] or [0]) + 1
        collisions = (deployment.get("status") or {}).get("collisionCount")
        if (deployment.get("spec") or {}).get("strategy", {}).get("type") == "Recreate":
            replicas = rollout.replicas_of(deployment)
        else:
            replicas = rollout.new_replicas(deployment, 0, sum(rollout.replicas_of(rs) for rs in olds))
        body = new_replica_set(deployment, replicas, revision, collisions)
        namespace = deployment["metadata"]["namespace"]
        existing = self.cluster.store.get(REPLICASETS, namespace, body["metadata"]["name"])
        if existing is not None:
            # a different template (or another owner) holds the name: count a collision, a new hash next time
            self.cluster.mutate(DEPLOYMENTS, namespace, deployment["metadata"]["name"], lambda d: d.setdefault(
                "status", {}).__setitem__("collisionCount", (d["status"].get("collisionCount") or 0) + 1))
            return None
        try:
            created = self.cluster.create(self.cluster.resource(*REPLICASETS), namespace, body)
        except ApiError as exc:
            self.cluster.record_event(deployment, "FailedCreate", f"Failed to create new replica set "
                                      f'"{body["metadata"]["name"]}": {exc.message}', "Warning", component=COMPONENT)
            self.later(namespace, deployment["metadata"]["name"], 2.0)
            return None
        if replicas:
            self.cluster.record_event(deployment, "ScalingReplicaSet",
                                      f"Scaled up replica set {created['metadata']['name']} from 0 to {replicas}",
                                      component=COMPONENT)
        return created

    def _sync_revision(self, deployment: dict, new_rs: dict, olds: list[dict]) -> None:
        """A template seen before (a rollback) becomes the newest revision again."""
        wanted = max([revision_of(rs) for rs in olds] or [0]) + 1
        current = revision_of(new_rs)
        if current >= wanted:
            return

        def change(rs: dict) -> None:
            annotations = rs["metadata"].setdefault("annotations", {})
            history = [h for h in annotations.get(rollout.REVISION_HISTORY, "").split(",") if h]
            if current:
                annotations[rollout.REVISION_HISTORY] = ",".join(history + [str(current)])
            annotations[rollout.REVISION] = str(wanted)
        self.cluster.mutate(REPLICASETS, new_rs["metadata"]["namespace"], new_rs["metadata"]["name"], change)

    def _annotate_revision(self, deployment: dict, revision: int) -> None:
        if not revision or (deployment["metadata"].get("annotations") or {}).get(rollout.REVISION) == str(revision):
            return
        self.cluster.mutate(DEPLOYMENTS, deployment["metadata"]["namespace"], deployment["metadata"]["name"],
                            lambda d: d["metadata"].setdefault("annotations", {}).__setitem__(
                                rollout.REVISION, str(revision)))

    def _scale(self, deployment: dict, rs: dict, replicas: int) -> None:
        """Set a ReplicaSet's replicas and its desired/max annotations; records ScalingReplicaSet."""
        surge, _ = rollout.surge_and_unavailable(deployment)
        desired = rollout.replicas_of(deployment)
        before = rollout.replicas_of(rs)

        def change(current: dict) -> None:
            if current["spec"].get("replicas") != replicas:  # a spec change, as the API server counts it
                current["metadata"]["generation"] = (current["metadata"].get("generation") or 0) + 1
            current["spec"]["replicas"] = replicas
            annotations = current["metadata"].setdefault("annotations", {})
            annotations[rollout.DESIRED_REPLICAS] = str(desired)
            annotations[rollout.MAX_REPLICAS] = str(desired + surge)
        self.cluster.mutate(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], change)
        if before != replicas:
            direction = "up" if replicas > before else "down"
            self.cluster.record_event(deployment, "ScalingReplicaSet", f"Scaled {direction} replica set "
                                      f"{rs['metadata']['name']} from {before} to {replicas}", component=COMPONENT)

    def _rolling(self, deployment: dict, new_rs: dict | None, olds: list[dict]) -> None:
        olds = sorted(olds, key=lambda rs: (rs["metadata"].get("creationTimestamp") or "", rs["metadata"]["name"]))
        total = sum(rollout.replicas_of(rs) for rs in olds) + rollout.replicas_of(new_rs)
        new_spec = rollout.replicas_of(new_rs)
        if new_rs is not None:
            target = rollout.new_replicas(deployment, new_spec, total)
            if target != new_spec or self._annotations_stale(deployment, new_rs):
                self._scale(deployment, new_rs, target)
                new_spec = target
        new_available = int(((new_rs or {}).get("status") or {}).get("availableReplicas", 0) or 0)
        entries = [(rs["metadata"]["name"], rollout.replicas_of(rs),
                    int((rs.get("status") or {}).get("availableReplicas", 0) or 0)) for rs in olds]
        targets = rollout.scale_down_targets(deployment, new_spec, new_available, entries)
        for rs in olds:
            if rs["metadata"]["name"] in targets:
                self._scale(deployment, rs, targets[rs["metadata"]["name"]])

    def _recreate(self, deployment: dict, new_rs: dict | None, olds: list[dict]) -> None:
        scaled = False
        for rs in olds:
            if rollout.replicas_of(rs):
                self._scale(deployment, rs, 0)
                scaled = True
        if scaled or new_rs is None or self._old_pods_remain(deployment, olds):
            return
        if rollout.replicas_of(new_rs) != rollout.replicas_of(deployment) or self._annotations_stale(deployment, new_rs):
            self._scale(deployment, new_rs, rollout.replicas_of(deployment))

    def _old_pods_remain(self, deployment: dict, olds: list[dict]) -> bool:
        uids = {rs["metadata"]["uid"] for rs in olds}
        if not uids:
            return False
        for pod in self.cluster.store.list(PODS, deployment["metadata"]["namespace"]):
            ref = controller_ref(pod)
            if ref is not None and ref.get("uid") in uids and not is_terminal(pod):
                return True
        return False

    @staticmethod
    def _annotations_stale(deployment: dict, rs: dict) -> bool:
        surge, _ = rollout.surge_and_unavailable(deployment)
        desired = rollout.replicas_of(deployment)
        annotations = rs["metadata"].get("annotations") or {}
        return annotations.get(rollout.DESIRED_REPLICAS) != str(desired) or \
            annotations.get(rollout.MAX_REPLICAS) != str(desired + surge)

    def _cleanup(self, deployment: dict, olds: list[dict]) -> None:
        """Delete scaled-down old ReplicaSets beyond ``revisionHistoryLimit`` (oldest revisions first)."""
        limit = (deployment.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        candidates = [self.cluster.store.get(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
                      for rs in olds]
        candidates = [rs for rs in candidates if rs is not None and not rs["metadata"].get("deletionTimestamp")]
        excess = len(candidates) - int(limit)
        if excess <= 0:
            return
        idle = [rs for rs in candidates if not rollout.replicas_of(rs) and not (rs.get("status") or {}).get("replicas")]
        idle.sort(key=lambda rs: (revision_of(rs), rs["metadata"].get("creationTimestamp") or ""))
        for rs in idle[:excess]:
            try:
                self.cluster.delete(self.replicasets, rs["metadata"]["namespace"], rs["metadata"]["name"])
            except ApiError:
                pass

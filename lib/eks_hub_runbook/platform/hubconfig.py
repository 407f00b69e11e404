"""The z2jh chart's translation of its values into JupyterHub / KubeSpawner traitlets.

The chart's ``jupyterhub_config.py`` reads the values and sets traitlets; this module
does the same for the parts the platform uses, so the sandbox hub and the tests run
KubeSpawner with exactly the configuration the chart would give it on EKS:

- ``singleuser.*`` -> KubeSpawner traits (profile_list, resources, extraEnv, nodeSelector,
  tolerations, service account, image, cmd, storage volumes and mounts, ...)
- ``scheduling.*`` -> scheduler name, priority class, node-purpose affinity, the
  ``hub.jupyter.org/dedicated`` tolerations
- ``hub.*`` -> JupyterHub traits, ``hub.config`` passed through class by class
- ``hub.extraEnv`` -> the hub container's ``env`` (``valueFrom`` kept for the kubelet)
- ``cull.*`` -> the ``jupyterhub-idle-culler`` hub service and its role (:func:`idle_culler`)

Values are first merged over the chart's own defaults (``values.yaml`` of the pinned
chart release, carried in ``third_party/``), as helm does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from traitlets.config import Config

from .. import third_party
from .templating import deep_merge, load_yaml

CHART_VERSION = third_party.Z2JH.removeprefix("z2jh-")
CHART_NAME = "jupyterhub"
CULLER = "jupyterhub-idle-culler"  # the chart's service and role name
CHART_HUB_URL = "http://localhost:8081"  # where the chart's culler reaches the hub (same pod)


def chart_defaults_file() -> Path:
    return third_party.file(third_party.Z2JH, "values.yaml")


def chart_defaults() -> dict:
    """The chart's default values (its ``values.yaml``)."""
    return load_yaml(chart_defaults_file()) or {}


def effective_values(values: Mapping[str, Any]) -> dict:
    """User values merged over the chart defaults, as ``helm install -f`` would."""
    return deep_merge(chart_defaults(), values)


def _get(values: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = values
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return default if node is None else node


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def _as_list(items: Any) -> list:
    """extraVolumes & co. may be a list or a dict keyed by a descriptive name."""
    if not items:
        return []
    return list(items.values()) if isinstance(items, Mapping) else list(items)


def _environment(extra_env: Any) -> dict[str, Any]:
    """``extraEnv`` (dict or list of EnvVar) as KubeSpawner.environment."""
    if isinstance(extra_env, list):
        return {item["name"]: item.get("value", {k: v for k, v in item.items() if k != "name"}) for item in extra_env}
    env = {}
    for key, value in (extra_env or {}).items():
        if isinstance(value, Mapping):
            value = dict(value)
            name = value.pop("name", key)
            env[name] = value.get("value", value) if set(value) == {"value"} else value
        else:
            env[key] = str(value)
    return env


_SINGLEUSER_TRAITS = (
    ("start_timeout", None), ("image_pull_policy", "image.pullPolicy"), ("events_enabled", "events"),
    ("extra_labels", None), ("extra_annotations", None), ("uid", None), ("fs_gid", None),
    ("service_account", "serviceAccountName"), ("storage_extra_labels", "storage.extraLabels"),
    ("tolerations", "extraTolerations"), ("node_selector", None),
    ("node_affinity_required", "extraNodeAffinity.required"), ("node_affinity_preferred", "extraNodeAffinity.preferred"),
    ("pod_affinity_required", "extraPodAffinity.required"), ("pod_affinity_preferred", "extraPodAffinity.preferred"),
    ("pod_anti_affinity_required", "extraPodAntiAffinity.required"),
    ("pod_anti_affinity_preferred", "extraPodAntiAffinity.preferred"),
    ("lifecycle_hooks", None), ("init_containers", None), ("extra_containers", None),
    ("mem_limit", "memory.limit"), ("mem_guarantee", "memory.guarantee"),
    ("cpu_limit", "cpu.limit"), ("cpu_guarantee", "cpu.guarantee"),
    ("extra_resource_limits", "extraResource.limits"), ("extra_resource_guarantees", "extraResource.guarantees"),
    ("profile_list", None), ("extra_pod_config", None), ("allow_privilege_escalation", None),
)
_HUB_TRAITS = (
    "concurrent_spawn_limit", "active_server_limit", "base_url", "allow_named_servers",
    "named_server_limit_per_user", "authenticate_prometheus", "redirect_to_server",
    "shutdown_on_logout", "template_paths", "template_vars",
)


def spawner_config(values: Mapping[str, Any], *, namespace: str = "jupyterhub", release: str = "jupyterhub") -> Config:
    """KubeSpawner / Spawner traitlets from (already effective) values, as the chart sets them."""
    c = Config()
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.KubeSpawner.namespace = namespace
    c.KubeSpawner.common_labels = {
        "app": values.get("nameOverride") or CHART_NAME,
        "heritage": "jupyterhub",
        "chart": f"{CHART_NAME}-{CHART_VERSION}",
        "release": release,
    }
    for trait, key in _SINGLEUSER_TRAITS:
        value = _get(values, "singleuser." + (key or _camel(trait)))
        if value is not None:
            c.KubeSpawner[trait] = value
    env = _environment(_get(values, "singleuser.extraEnv"))
    if env:
        c.KubeSpawner.environment = env
    image = _get(values, "singleuser.image.name")
    if image:
        tag = _get(values, "singleuser.image.tag")
        c.KubeSpawner.image = f"{image}:{tag}" if tag else image
    cmd = _get(values, "singleuser.cmd")
    if cmd:
        c.Spawner.cmd = [cmd] if isinstance(cmd, str) else list(cmd)
    default_url = _get(values, "singleuser.defaultUrl")
    if default_url:
        c.Spawner.default_url = default_url
    failure_limit = _get(values, "hub.consecutiveFailureLimit")
    if failure_limit is not None:
        c.Spawner.consecutive_failure_limit = failure_limit

    _scheduling(c, values, release)
    _storage(c, values)
    if _get(values, "singleuser.cloudMetadata.blockWithIptables", False):
        c.KubeSpawner.init_containers = [*_get(values, "singleuser.initContainers", []), block_cloud_metadata(values)]
    return c


def block_cloud_metadata(values: Mapping[str, Any]) -> dict:
    """The chart's ``block-cloud-metadata`` init container (``singleuser.cloudMetadata.blockWithIptables``):
    the network-tools image (tag ``set-by-chartpress`` is the chart's version) drops the pod's
    TCP traffic to the metadata IP on port 80, privileged, as root with NET_ADMIN."""
    tools = _get(values, "singleuser.networkTools.image", {})
    tag = tools.get("tag")
    container = {
        "name": "block-cloud-metadata",
        "image": f"{tools.get('name')}:{CHART_VERSION if tag in (None, 'set-by-chartpress') else tag}",
        "command": ["iptables", "--append", "OUTPUT", "--protocol", "tcp", "--destination",
                    _get(values, "singleuser.cloudMetadata.ip", "169.254.169.254"),
                    "--destination-port", "80", "--jump", "DROP"],
        "securityContext": {"privileged": True, "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
    }
    resources = _get(values, "singleuser.networkTools.resources")
    if resources:
        container["resources"] = resources
    return container


def _scheduling(c: Config, values: Mapping[str, Any], release: str) -> None:
    if _get(values, "scheduling.userScheduler.enabled", False):
        c.KubeSpawner.scheduler_name = f"{release}-user-scheduler"
    if _get(values, "scheduling.podPriority.enabled", False):
        c.KubeSpawner.priority_class_name = f"{release}-default-priority"
    match = _get(values, "scheduling.userPods.nodeAffinity.matchNodePurpose", "prefer")
    term = {"matchExpressions": [{"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}]}
    if match == "prefer":
        c.KubeSpawner.node_affinity_preferred = [*c.KubeSpawner.get("node_affinity_preferred", []),
                                                 {"weight": 100, "preference": term}]
    elif match == "require":
        c.KubeSpawner.node_affinity_required = [*c.KubeSpawner.get("node_affinity_required", []), term]
    elif match != "ignore":
        raise ValueError(f"unrecognized scheduling.userPods.nodeAffinity.matchNodePurpose: {match!r}")
    c.KubeSpawner.tolerations = [
        *c.KubeSpawner.get("tolerations", []),
        *({"key": key, "operator": "Equal", "value": "user", "effect": "NoSchedule"}
          for key in ("hub.jupyter.org/dedicated", "hub.jupyter.org_dedicated")),
    ]


def _storage(c: Config, values: Mapping[str, Any]) -> None:
    storage_type = _get(values, "singleuser.storage.type")
    home = _get(values, "singleuser.storage.homeMountPath", "/home/jovyan")
    volumes: list = []
    mounts: list = []
    if storage_type == "static":
        volumes.append({"name": "home", "persistentVolumeClaim": {"claimName": _get(values, "singleuser.storage.static.pvcName")}})
        mounts.append({"mountPath": home, "name": "home", "subPath": _get(values, "singleuser.storage.static.subPath")})
    elif storage_type != "none":
        # The platform uses EFS static volumes; per-user dynamic PVCs are not translated.
        raise ValueError(f"singleuser.storage.type {storage_type!r} is not supported (use static or none)")
    volumes += _as_list(_get(values, "singleuser.storage.extraVolumes"))
    mounts += _as_list(_get(values, "singleuser.storage.extraVolumeMounts"))
    c.KubeSpawner.volumes = volumes
    c.KubeSpawner.volume_mounts = mounts


def idle_culler(values: Mapping[str, Any], hub_url: str = CHART_HUB_URL) -> tuple[dict, dict] | None:
    """The chart's ``cull`` block as a JupyterHub service and its role, or None when
    ``cull.enabled`` is false.

    As z2jh's ``jupyterhub_config.py``: ``python3 -m jupyterhub_idle_culler --url=<hub>/hub/api``
    with ``--timeout``, ``--cull-every``, ``--concurrency``, ``--cull-users``,
    ``--cull-admin-users=false``, ``--remove-named-servers`` and ``--max-age`` as set, and a
    role with only the scopes the culler needs (``admin:users`` only when it culls users).
    ``hub_url``: where the hub's API listens, seen from inside the hub pod (the chart: localhost)."""
    if not _get(values, "cull.enabled", False):
        return None
    scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    api_path = "/".join(part for part in (str(_get(values, "hub.baseUrl", "/")).strip("/"), "hub/api") if part)
    command = ["python3", "-m", "jupyterhub_idle_culler", f"--url={hub_url.rstrip('/')}/{api_path}"]
    for key, flag in (("timeout", "--timeout"), ("every", "--cull-every"), ("concurrency", "--concurrency")):
        value = _get(values, f"cull.{key}")
        if value:
            command.append(f"{flag}={value}")
    if _get(values, "cull.users"):
        command.append("--cull-users")
        scopes.append("admin:users")
    if not _get(values, "cull.adminUsers"):
        command.append("--cull-admin-users=false")
    if _get(values, "cull.removeNamedServers"):
        command.append("--remove-named-servers")
    max_age = _get(values, "cull.maxAge")
    if max_age:
        command.append(f"--max-age={max_age}")
    return {"name": CULLER, "command": command}, {"name": CULLER, "scopes": scopes, "services": [CULLER]}


def hub_config(
    values: Mapping[str, Any],
    *,
    namespace: str = "jupyterhub",
    release: str = "jupyterhub",
    hub_url: str = CHART_HUB_URL,
) -> Config:
    """The whole hub configuration: JupyterHub traits, the spawner, the idle culler and ``hub.config``.

    ``hub_url``: the hub's own API address for the services it runs (the chart's localhost)."""
    c = spawner_config(values, namespace=namespace, release=release)
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    culler = idle_culler(values, hub_url)
    if culler:
        c.JupyterHub.services.append(culler[0])
        c.JupyterHub.load_roles.append(culler[1])
    c.JupyterHub.cleanup_servers = False  # user pods outlive a hub restart, as in the chart
    c.JupyterHub.last_activity_interval = 60
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
    for trait in _HUB_TRAITS:
        value = _get(values, "hub." + _camel(trait))
        if value is not None:
            c.JupyterHub[trait] = value
    for class_name, traits in (_get(values, "hub.config") or {}).items():
        c[class_name].merge(Config(traits))
    return c


def hub_env_vars(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``hub.extraEnv`` as the hub container's ``env`` (EnvVar objects), as the chart renders
    it: plain values as strings, ``valueFrom`` (e.g. a ``secretKeyRef``) as written."""
    env = []
    for name, value in _environment(_get(values, "hub.extraEnv")).items():
        if isinstance(value, Mapping):
            env.append({"name": name, **{k: v for k, v in value.items() if k == "valueFrom"}})
        else:
            env.append({"name": name, "value": str(value)})
    return env

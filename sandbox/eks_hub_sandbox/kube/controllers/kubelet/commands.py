"""What a container runs locally, and with which environment.

The container's ``command``/``args`` run as a local process when the executable
exists on this machine (the repository's virtualenv ``bin`` first, then ``PATH``;
an absolute path inside the image falls back to its file name). Known image
entrypoints are mapped: the Jupyter Docker Stacks start scripts (and an image with
no command, when JupyterHub spawned it: ``JUPYTERHUB_API_TOKEN`` is set) run
``jupyterhub-singleuser``; ``tini --`` is dropped. Anything else (system images whose
binaries are not here) runs an idle placeholder, and the pod log says so.

Pod networking is emulated by rewriting ``0.0.0.0`` in arguments and environment
values to the pod's own loopback IP (``JUPYTERHUB_SERVICE_URL=http://0.0.0.0:8888/...``
makes the single-user server bind its pod IP, which is where KubeSpawner connects).
Containers get the service environment variables the kubelet writes (``<NAME>_SERVICE_HOST``
and the Docker-links ``<NAME>_PORT_...`` forms) for the Services of their namespace, with the
address the sandbox's kube-proxy serves each Service on.
"""

from __future__ import annotations

import base64
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from eks_hub_runbook.paths import node_bin

from ... import quantity
from .network import service_address

VENV_BIN = str(Path(sys.executable).parent)
NODE_BIN = str(node_bin("configurable-http-proxy").parent)  # the repository's npm tools
JUPYTER_START_SCRIPTS = {"start-notebook.sh", "start-notebook.py", "start-singleuser.sh", "start-singleuser.py", "start.sh"}
JUPYTER_COMMANDS = {"jupyterhub-singleuser", "jupyter-labhub", "jupyter", "jupyter-lab", "jupyter-notebook",
                    "jupyter-server"}
HOST_NETWORK_TOOLS = {"iptables", "ip6tables", "iptables-legacy", "iptables-nft", "nft"}
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ContainerConfigError(Exception):
    """A referenced ConfigMap/Secret key is missing (CreateContainerConfigError)."""


@dataclass
class Command:
    argv: list[str] | None  # None: run the idle placeholder
    note: str = ""


def search_path() -> str:
    return os.pathsep.join([VENV_BIN, NODE_BIN, os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")])


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion (``$$`` escapes; unknown references stay as written)."""
    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return _REFERENCE.sub(replace, text)


def _field_value(pod: dict, path: str) -> str:
    match = re.match(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return (pod["metadata"].get(match.group(1)) or {}).get(match.group(2), "")
    node = pod
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, list):
        return ",".join(item.get("ip", "") if isinstance(item, dict) else str(item) for item in node)
    return "" if node is None else str(node)


def _resource_value(container: dict, ref: dict) -> str:
    section, _, name = ref.get("resource", "").partition(".")
    value = ((container.get("resources") or {}).get(section) or {}).get(name)
    if value is None:
        return "0"
    divisor = quantity.parse(ref.get("divisor") or "1")
    return str(math.ceil(quantity.parse(value) / divisor))


def _lookup(store, kind: str, namespace: str, name: str, key: str | None, optional: bool):
    obj = store.get(("", kind), namespace, name)
    if obj is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind[:-1]} "{name}" not found')
    if kind == "secrets":
        data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
    else:
        data = dict(obj.get("data") or {})
    if key is None:
        return data
    if key not in data:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind[:-1]} {namespace}/{name}")
    return data[key]


def service_env(pod: dict, store, seed: str) -> dict[str, str]:
    """The service environment variables of the pod's namespace (none with
    ``enableServiceLinks: false``), as the kubelet writes them, with each Service's address on
    this machine (:func:`.network.service_address`) as its host."""
    if (pod.get("spec") or {}).get("enableServiceLinks") is False:
        return {}
    env: dict[str, str] = {}
    for svc in store.list(("", "services"), pod["metadata"]["namespace"]):
        spec = svc.get("spec") or {}
        cluster_ip, ports = spec.get("clusterIP"), spec.get("ports") or []
        if not cluster_ip or cluster_ip == "None" or not ports:
            continue
        host = service_address(cluster_ip, seed)
        name = svc["metadata"]["name"].upper().replace("-", "_")
        env[f"{name}_SERVICE_HOST"] = host
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            protocol = port.get("protocol", "TCP")
            if port.get("name"):
                env[f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
            prefix = f"{name}_PORT_{port['port']}_{protocol}"
            env.update({prefix: f"{protocol.lower()}://{host}:{port['port']}", f"{prefix}_PROTO": protocol.lower(),
                        f"{prefix}_PORT": str(port["port"]), f"{prefix}_ADDR": host})
        env[f"{name}_PORT"] = f"{ports[0].get('protocol', 'TCP').lower()}://{host}:{ports[0]['port']}"
    return env


def container_env(pod: dict, container: dict, store, services: dict[str, str] | None = None) -> dict[str, str]:
    """The container's environment from ``envFrom`` and ``env`` (with valueFrom and $(VAR)),
    over the service environment variables ``services`` (which ``$(VAR)`` may name too)."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = dict(services or {})
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, ref in (("configmaps", source.get("configMapRef")), ("secrets", source.get("secretRef"))):
            if ref:
                data = _lookup(store, kind, namespace, ref.get("name", ""), None, bool(ref.get("optional")))
                env.update({prefix + k: v for k, v in (data or {}).items()})
    for item in container.get("env") or []:
        name = item.get("name")
        if "value" in item or not item.get("valueFrom"):
            env[name] = expand(str(item.get("value", "")), env)
            continue
        source = item["valueFrom"]
        if "fieldRef" in source:
            env[name] = _field_value(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            env[name] = _resource_value(container, source["resourceFieldRef"])
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            kind = "configmaps" if "configMapKeyRef" in source else "secrets"
            ref = source.get("configMapKeyRef") or source.get("secretKeyRef")
            value = _lookup(store, kind, namespace, ref.get("name", ""), ref.get("key"), bool(ref.get("optional")))
            if value is not None:
                env[name] = value
    return env


def _rewrite_any_address(value: str, pod_ip: str) -> str:
    return value.replace("0.0.0.0", pod_ip)


def resolve(container: dict, env: dict[str, str], pod_ip: str) -> Command:
    """The local argv for a container, or a placeholder with the reason."""
    command = [expand(str(part), env) for part in container.get("command") or []]
    args = [expand(str(part), env) for part in container.get("args") or []]
    argv = command + args
    if not argv:
        if env.get("JUPYTERHUB_API_TOKEN"):
            argv = ["jupyterhub-singleuser"]
        else:
            return Command(None, f"the image's default entrypoint of {container.get('image')} is not available locally")
    if Path(argv[0]).name == "tini":
        rest = argv[1:]
        while rest and rest[0].startswith("-"):
            flag = rest.pop(0)
            if flag == "--":
                break
        argv = rest
        if not argv:
            return Command(None, "tini without a command")
    if Path(argv[0]).name in JUPYTER_START_SCRIPTS:
        argv = (["jupyterhub-singleuser"] if env.get("JUPYTERHUB_API_TOKEN") else ["jupyter", "lab"]) + argv[1:]
    executable = argv[0]
    if Path(executable).name in HOST_NETWORK_TOOLS:
        # e.g. z2jh's block-cloud-metadata init container: pods share the machine's network
        # namespace here, so its firewall rule would change the machine's, not the pod's.
        return Command(None, f'"{Path(executable).name}" of image {container.get("image")} would change this machine\'s '
                             "network (pods have no network namespace of their own here); not run")
    found = shutil.which(executable, path=search_path()) if "/" not in executable else (
        executable if os.access(executable, os.X_OK) else shutil.which(Path(executable).name, path=search_path()))
    if not found:
        return Command(None, f'executable "{executable}" of image {container.get("image")} is not available locally')
    argv = [found] + [_rewrite_any_address(a, pod_ip) for a in argv[1:]]
    name = Path(found).name
    if name in JUPYTER_COMMANDS:
        if name in ("jupyter", "jupyter-lab", "jupyter-notebook", "jupyter-server") and \
                not any(a.startswith(("--ip", "--ServerApp.ip")) for a in argv):
            argv.append(f"--ip={pod_ip}")
        if os.geteuid() == 0 and not any("allow_root" in a or a == "--allow-root" for a in argv):
            argv.append("--ServerApp.allow_root=True")
    return Command(argv)


def process_env(env: dict[str, str], pod: dict, home: Path, pod_ip: str, api_host: str, api_port: int,
                markers: dict[str, str]) -> dict[str, str]:
    """The full environment of a container process (a clean one, not the emulator's)."""
    base = {
        "PATH": search_path(),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOSTNAME": pod["metadata"]["name"],
        "HOME": str(home),
        "KUBERNETES_SERVICE_HOST": api_host,
        "KUBERNETES_SERVICE_PORT": str(api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(api_port),
    }
    result = {**base, **{k: _rewrite_any_address(v, pod_ip) for k, v in env.items()}}
    if "HOME" in env:
        result["HOME"] = str(home)
    result.update(markers)
    return result
